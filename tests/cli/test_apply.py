"""``nopass apply --file``: the file format, the summary, idempotency, strictness, --prune.

Every command runs as a subprocess (``python -m nopass``); the database is inspected directly.
"""

from __future__ import annotations

import copy
import json
import os
import re
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from tests.cli.helpers import (
    Dump,
    apply_file,
    changed_tables,
    dump_tables,
    summary_of,
    usage_error,
    write_config,
)
from tests.support.config import NATIVE_ID, tenant_config
from tests.support.harness import prepare_database

ORIGIN = "http://127.0.0.1:8123"
GENERATED_ID = re.compile(r"^[A-Za-z0-9_-]{32}$")  # secrets.token_urlsafe(24)
GENERATED_SECRET = re.compile(r"^[A-Za-z0-9_-]{64}$")  # secrets.token_urlsafe(48)

# The example of docs/specs/interface.md, as an operator would write it (comments, flow style, bare
# hosts).
EXAMPLE_YAML = """\
tenant:
  name: acme
  # Bare host => https.
  domains: ["http://127.0.0.1:8123", "login.acme.example"]
  friendly_name: Acme
  default_audience: null
  rate_limits:
    start_per_ip_per_hour: 50
    start_per_identity_per_10min: 5
    start_per_identity_per_day: 20
    failures_per_identity_per_15min: 10
    failures_per_ip_per_hour: 100
    sms_per_tenant_per_day: 1000
    allowlist: []
  test_identities:
    - connection: sms
      identifier: "+15005550006"
      code: "424242"
      expires_at: "2027-06-30T00:00:00Z"
resource_servers:
  - identifier: https://api.acme.example
    name: Acme API
    token_lifetime: 86400
    allow_offline_access: true
clients:
  - name: Native App
    client_id: native-app-id
    app_type: native
    token_endpoint_auth_method: none
    grant_types:
      - http://auth0.com/oauth/grant-type/passwordless/otp
      - authorization_code
      - refresh_token
    callbacks: ["https://app.acme.example/callback"]
    allowed_origins: []
    web_origins: []
    cross_origin_auth: false
    jwt_configuration: {lifetime_in_seconds: 36000, alg: RS256}
    refresh_token:
      {rotation_type: rotating, expiration_type: expiring, token_lifetime: 2592000, leeway: 0}
  - name: Web App
    app_type: regular_web
    token_endpoint_auth_method: client_secret_post
    client_secret: optional-fixed-secret
    grant_types:
      [http://auth0.com/oauth/grant-type/passwordless/otp, authorization_code, refresh_token]
    callbacks: ["https://web.acme.example/cb"]
    client_authentication_methods:
      private_key_jwt: {credentials: [{credential_type: public_key, pem: PEM}]}
connections:
  - name: email
    strategy: email
    enabled_clients: ["Native App", "Web App"]
    options:
      totp: {length: 6, time_step: 180}
      disable_signup: false
      brute_force_protection: true
      authParams: {scope: openid}
      email:
        from: "{{ application.name }} <login@acme.example>"
        subject: "Your {{ application.name }} code"
        syntax: liquid
        body: "<p>Code: {{ code }}</p><p><a href=\\"{{ link }}\\">Sign in</a></p>"
  - name: sms
    strategy: sms
    enabled_clients: ["native-app-id"]
    options:
      totp: {length: 6, time_step: 180}
      provider: sms_gateway
      gateway_url: https://sms.acme.example/send
      gateway_authentication: null
      forward_req_info: false
      from: "+15550001234"
      syntax: md_with_macros
      template: "Your code is @@password@@"
      allowed_countries: null
  - name: legacy-db
    strategy: auth0
email_provider:
  name: smtp
  enabled: true
  default_from_address: login@acme.example
  credentials: {smtp_host: 127.0.0.1, smtp_port: 2525, smtp_user: null, smtp_pass: null}
  settings: {starttls: auto}
"""


def _public_pem() -> str:
    key = ec.generate_private_key(ec.SECP256R1()).public_key()
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()


def example_file(directory: Path, fmt: str) -> Path:
    text = EXAMPLE_YAML.replace("pem: PEM", f"pem: {json.dumps(_public_pem())}")
    path = directory / f"acme.{fmt}"
    if fmt == "json":
        path.write_text(json.dumps(yaml.safe_load(text), indent=2))
    else:
        path.write_text(text)
    return path


def base_config() -> dict[str, Any]:
    return tenant_config(ORIGIN)


def _client(dump: Dump, name: str) -> dict[str, Any]:
    [row] = [r for r in dump["clients"] if r["name"] == name]
    return row


def _revision(dump: Dump) -> int:
    [row] = dump["config_state"]
    return int(row["revision"])


@pytest.mark.parametrize("fmt", ["yaml", "json"])
async def test_apply_creates_tenant_prints_summary_and_is_idempotent(
    database_url: str, tmp_path: Path, fmt: str
) -> None:
    path = example_file(tmp_path, fmt)

    first = summary_of(apply_file(database_url, path))
    assert set(first) == {"tenant", "clients", "connections", "client_grants"}
    assert first["client_grants"] == []
    assert first["tenant"] == "acme"
    assert first["connections"] == [
        {"name": "email", "strategy": "email"},
        {"name": "sms", "strategy": "sms"},
        {"name": "legacy-db", "strategy": "auth0"},
    ]
    native, web = first["clients"]
    # The secret was given in the file, so the summary never shows one.
    assert native == {"name": "Native App", "client_id": "native-app-id"}
    assert set(web) == {"name", "client_id"}
    assert web["name"] == "Web App"
    assert GENERATED_ID.match(web["client_id"]), web["client_id"]

    before = await dump_tables(database_url)
    assert [r["name"] for r in before["tenants"]] == ["acme"]
    assert before["config_state"] == [{"id": 1, "revision": 1}]
    assert sorted((r["host"], r["origin"]) for r in before["tenant_domains"]) == [
        ("127.0.0.1:8123", "http://127.0.0.1:8123"),
        ("login.acme.example", "https://login.acme.example"),
    ]
    assert {r["name"] for r in before["clients"]} == {"Native App", "Web App"}
    assert [r["identifier"] for r in before["resource_servers"]] == ["https://api.acme.example"]
    assert [r["name"] for r in before["email_providers"]] == ["smtp"]
    by_name = {r["name"]: r["id"] for r in before["connections"]}
    assert sorted((r["connection_id"], r["client_id"]) for r in before["connection_clients"]) == (
        sorted(
            [
                (by_name["email"], "native-app-id"),
                (by_name["email"], web["client_id"]),
                (by_name["sms"], "native-app-id"),
            ]
        )
    )
    # The fixed client secret is stored hashed, never as given.
    assert "optional-fixed-secret" not in json.dumps(before, default=str)

    second = summary_of(apply_file(database_url, path))
    assert second == first  # the same client_ids, still no secret
    after = await dump_tables(database_url)
    assert after == before  # nothing written, config_state.revision unchanged


async def test_generated_client_id_and_secret_are_stable(database_url: str, tmp_path: Path) -> None:
    config = {
        "tenant": {"name": "gen", "domains": [ORIGIN]},
        "clients": [
            {"name": "Backend", "app_type": "regular_web"},  # confidential by default
            {"name": "Phone", "app_type": "native"},  # public: no secret, ever
            {
                "name": "Basic",
                "app_type": "non_interactive",
                "token_endpoint_auth_method": "client_secret_basic",
            },
        ],
        "connections": [{"name": "email", "strategy": "email", "enabled_clients": ["Phone"]}],
    }
    path = write_config(tmp_path / "gen.json", config)

    first = summary_of(apply_file(database_url, path))
    backend, phone, basic = first["clients"]
    assert set(backend) == {"name", "client_id", "client_secret"}
    assert set(phone) == {"name", "client_id"}
    assert set(basic) == {"name", "client_id", "client_secret"}
    for entry in (backend, phone, basic):
        assert GENERATED_ID.match(entry["client_id"]), entry
    assert GENERATED_SECRET.match(backend["client_secret"])
    assert GENERATED_SECRET.match(basic["client_secret"])
    assert len({backend["client_id"], phone["client_id"], basic["client_id"]}) == 3
    assert backend["client_secret"] != basic["client_secret"]

    before = await dump_tables(database_url)
    stored = json.dumps(before, default=str)
    assert backend["client_secret"] not in stored and basic["client_secret"] not in stored
    assert _client(before, "Backend")["secret_hash"]
    assert _client(before, "Phone")["secret_hash"] is None

    second = summary_of(apply_file(database_url, path))
    assert second["clients"] == [
        {"name": "Backend", "client_id": backend["client_id"]},
        {"name": "Phone", "client_id": phone["client_id"]},
        {"name": "Basic", "client_id": basic["client_id"]},
    ]
    assert await dump_tables(database_url) == before


async def test_changing_a_callback_bumps_the_revision_and_changes_only_that(
    database_url: str, tmp_path: Path
) -> None:
    config = base_config()
    path = write_config(tmp_path / "acme.yaml", config)
    summary_of(apply_file(database_url, path))
    before = await dump_tables(database_url)

    config["clients"][0]["callbacks"] = ["https://app.acme.example/new-callback"]
    write_config(path, config)
    summary = summary_of(apply_file(database_url, path))
    assert all("client_secret" not in c for c in summary["clients"])
    after = await dump_tables(database_url)

    assert changed_tables(before, after) == {"clients", "config_state"}
    assert after["config_state"] == [{"id": 1, "revision": _revision(before) + 1}]
    old, new = _client(before, "Native App"), _client(after, "Native App")
    assert new["settings"]["callbacks"] == ["https://app.acme.example/new-callback"]
    assert {k: v for k, v in new["settings"].items() if k != "callbacks"} == {
        k: v for k, v in old["settings"].items() if k != "callbacks"
    }
    assert {k: v for k, v in new.items() if k != "settings"} == {
        k: v for k, v in old.items() if k != "settings"
    }
    for name in ("Web App", "Other App"):
        assert _client(after, name) == _client(before, name)


async def test_unquoted_yaml_timestamp_is_accepted(database_url: str, tmp_path: Path) -> None:
    """YAML reads ``2027-06-30T00:00:00Z`` unquoted as a timestamp: it is still a timestamp."""
    path = tmp_path / "acme.yaml"
    path.write_text(
        "tenant:\n"
        "  name: acme\n"
        f"  domains: [{ORIGIN}]\n"
        "  test_identities:\n"
        '    - {connection: sms, identifier: "+15005550006", code: "424242",'
        " expires_at: 2027-06-30T00:00:00Z}\n"
        "connections:\n"
        "  - {name: sms, strategy: sms}\n"
    )
    summary_of(apply_file(database_url, path))
    [tenant] = (await dump_tables(database_url))["tenants"]
    [identity] = tenant["test_identities"]
    assert identity["identifier"] == "+15005550006"
    assert identity["expires_at"].startswith("2027-06-30T00:00:00")


# --- strictness -------------------------------------------------------------------------------

Mutation = Callable[[dict[str, Any]], Any]


def _set(path: str, value: Any) -> Mutation:
    """A mutation of the base config: set the value at a dotted path (``clients.0.colour``)."""

    def mutate(config: dict[str, Any]) -> Any:
        *parents, last = path.split(".")
        node: Any = config
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node[part]
        if isinstance(node, list):
            node[int(last)] = value
        else:
            node[last] = value
        return config

    return mutate


# id -> (file name, content: a mutation of the base config or raw text, what the line names)
BAD_INPUTS: dict[str, tuple[str, Mutation | str | None, list[str]]] = {
    "unknown top-level key": ("bad.yaml", _set("colour", "red"), ["colour", "unknown key"]),
    "unknown nested key": ("bad.yaml", _set("clients.0.colour", "red"), ["clients[0].colour"]),
    "bad enum": ("bad.yaml", _set("clients.0.app_type", "desktop"), ["clients[0].app_type"]),
    "totp length 5": (
        "bad.yaml",
        _set("connections.0.options", {"totp": {"length": 5}}),
        ["connections[0].options.totp.length"],
    ),
    "wildcard callback": (
        "bad.yaml",
        _set("clients.0.callbacks", ["https://*.acme.example/callback"]),
        ["clients[0].callbacks", "wildcard"],
    ),
    "unknown enabled client": (
        "bad.yaml",
        _set("connections.0.enabled_clients", ["Native App", "No Such App"]),
        ["connections[0].enabled_clients", "No Such App"],
    ),
    "sms_gateway without gateway_url": (
        "bad.yaml",
        _set("connections.1.options", {"provider": "sms_gateway"}),
        ["connections[1].options.gateway_url"],
    ),
    "invalid liquid": (
        "bad.yaml",
        _set("connections.0.options", {"email": {"body": "<p>{{ code </p>"}}),
        ["connections[0].options.email.body", "Liquid"],
    ),
    "yaml syntax error": ("broken.yaml", "tenant: {name: acme\n  domains: [\n", ["broken.yaml"]),
    "json syntax error": ("broken.json", '{"tenant": {"name": "acme"},}', ["broken.json"]),
    "missing file": ("missing.yaml", None, ["missing.yaml"]),
    "top-level list": ("list.yaml", "- tenant\n- clients\n", ["top level", "tenant"]),
}


def _write_bad(directory: Path, name: str, content: Mutation | str | None) -> Path:
    path = directory / name
    if isinstance(content, str):
        path.write_text(content)
    elif content is not None:
        write_config(path, content(copy.deepcopy(base_config())))
    return path


def _refusal_problems(database_url: str, directory: Path, cases: list[str]) -> list[str]:
    """Run ``apply`` on each bad input (in parallel: each is a Python start-up) and return
    what is wrong with each refusal, one text per broken case."""
    paths = {}
    for i, case in enumerate(cases):
        (directory / f"case{i}").mkdir()
        paths[case] = _write_bad(directory / f"case{i}", *BAD_INPUTS[case][:2])
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        runs = pool.map(lambda c: apply_file(database_url, paths[c]), cases)
        results = dict(zip(cases, runs, strict=True))
    problems = []
    for case, result in results.items():
        try:
            line = usage_error(result)
            for expected in BAD_INPUTS[case][2]:
                assert expected in line, f"{expected!r} not named"
            assert "(file)" not in line or case == "top-level list", "no key named"
        except AssertionError as exc:
            problems.append(f"{case}: {exc} -- stderr={result.stderr!r}")
    return problems


async def test_bad_inputs_are_refused_with_one_line_naming_the_key(
    database_url: str, tmp_path: Path
) -> None:
    """Each bad input: exit 2, nothing on stdout, one line on stderr naming the bad key, and
    the database exactly as the previous (valid) apply left it."""
    await prepare_database(database_url, base_config())  # a valid apply happened before
    before = await dump_tables(database_url)
    problems = _refusal_problems(database_url, tmp_path, list(BAD_INPUTS))
    assert not problems, "\n".join(problems)
    assert await dump_tables(database_url) == before


async def test_bad_input_on_a_fresh_database_creates_no_tenant(
    database_url: str, tmp_path: Path
) -> None:
    await prepare_database(database_url, None)  # schema only
    cases = ["unknown nested key", "yaml syntax error"]
    problems = _refusal_problems(database_url, tmp_path, cases)
    assert not problems, "\n".join(problems)
    dump = await dump_tables(database_url)
    assert {name for name, rows in dump.items() if rows} == {"alembic_version"}


async def test_a_domain_of_another_tenant_is_refused_and_nothing_is_written(
    database_url: str, tmp_path: Path
) -> None:
    await prepare_database(database_url, base_config())
    before = await dump_tables(database_url)

    # The same host, spelled differently: a trailing slash and upper case.
    other = tenant_config("HTTP://127.0.0.1:8123/", name="other")
    for client in other["clients"]:
        client["client_id"] = "other-" + client["client_id"]
    other["tenant"]["domains"].insert(0, "other.example")
    line = usage_error(apply_file(database_url, write_config(tmp_path / "other.yaml", other)))
    assert "tenant.domains" in line
    assert "127.0.0.1:8123" in line
    assert await dump_tables(database_url) == before  # not even the tenant row of "other"


async def test_a_client_id_of_another_tenant_is_refused(database_url: str, tmp_path: Path) -> None:
    await prepare_database(database_url, base_config())
    before = await dump_tables(database_url)

    other = {
        "tenant": {"name": "other", "domains": ["other.example"]},
        "clients": [{"name": "Thief", "client_id": NATIVE_ID}],
    }
    line = usage_error(apply_file(database_url, write_config(tmp_path / "other.yaml", other)))
    assert "client_id" in line and NATIVE_ID in line
    assert await dump_tables(database_url) == before


async def test_a_client_id_cannot_change(database_url: str, tmp_path: Path) -> None:
    config = base_config()
    await prepare_database(database_url, config)
    before = await dump_tables(database_url)

    config["clients"][1]["client_id"] = "a-brand-new-client-id"
    line = usage_error(apply_file(database_url, write_config(tmp_path / "acme.yaml", config)))
    assert "clients[1].client_id" in line
    assert await dump_tables(database_url) == before


# --- --prune ----------------------------------------------------------------------------------


async def test_prune_removes_what_the_file_omits_and_only_with_prune(
    database_url: str, tmp_path: Path
) -> None:
    config = base_config()
    config["resource_servers"] = [{"identifier": "https://api.acme.example", "name": "API"}]
    await prepare_database(database_url, config)
    full = await dump_tables(database_url)
    legacy_id = next(r["id"] for r in full["connections"] if r["name"] == "legacy-db")
    assert any(r["connection_id"] == legacy_id for r in full["connection_clients"])

    smaller = copy.deepcopy(config)
    smaller["clients"] = [c for c in smaller["clients"] if c["name"] != "Other App"]
    smaller["connections"] = [c for c in smaller["connections"] if c["name"] != "legacy-db"]
    smaller["resource_servers"] = []
    path = write_config(tmp_path / "acme.yaml", smaller)

    # Without --prune: the omitted client, connection and API are kept; nothing changes.
    kept = summary_of(apply_file(database_url, path))
    assert [c["name"] for c in kept["clients"]] == ["Native App", "Web App"]
    assert [c["name"] for c in kept["connections"]] == ["email", "sms"]
    assert await dump_tables(database_url) == full

    # With --prune they go, and the revision moves once.
    pruned = summary_of(apply_file(database_url, path, "--prune"))
    assert pruned == kept
    after = await dump_tables(database_url)
    assert sorted(r["name"] for r in after["clients"]) == ["Native App", "Web App"]
    assert sorted(r["name"] for r in after["connections"]) == ["email", "sms"]
    assert after["resource_servers"] == []
    assert all(r["connection_id"] != legacy_id for r in after["connection_clients"])
    assert after["config_state"] == [{"id": 1, "revision": _revision(full) + 1}]
    assert changed_tables(full, after) == {
        "clients",
        "connections",
        "connection_clients",
        "resource_servers",
        "config_state",
    }
