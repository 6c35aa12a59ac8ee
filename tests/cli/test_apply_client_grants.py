"""``nopass apply`` with ``client_grants`` and ``resource_servers[].scopes``: what is stored,
the summary, idempotency, updates, ``--prune``, and each refusal (one line, nothing written).
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.cli.helpers import (
    apply_file,
    changed_tables,
    dump_tables,
    summary_of,
    usage_error,
    write_config as write,
)
from tests.support.config import API_ID, MACHINE_ID, NATIVE_ID, WEB_ID, machine_config
from tests.support.harness import prepare_database

ORIGIN = "http://127.0.0.1:8123"
MANAGEMENT = ORIGIN + "/api/v2/"
GRANT_ID = re.compile(r"^cgr_[A-Za-z0-9]{16}$")


def grants_of(dump: dict[str, list[dict[str, Any]]]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(r["client_id"], r["audience"]): r for r in dump["client_grants"]}


async def test_grants_and_scopes_are_stored_summarised_and_idempotent(
    database_url: str, tmp_path: Path
) -> None:
    path = write(tmp_path / "acme.yaml", machine_config(ORIGIN))
    first = summary_of(apply_file(database_url, path))
    assert [(g["client_id"], g["audience"], g["scope"]) for g in first["client_grants"]] == [
        (MACHINE_ID, API_ID, ["read:things", "write:things"]),
        (MACHINE_ID, MANAGEMENT, ["read:users", "read:logs"]),
    ]
    assert all(GRANT_ID.match(g["id"]) for g in first["client_grants"])
    dump = await dump_tables(database_url)
    grants = grants_of(dump)
    assert set(grants) == {(MACHINE_ID, API_ID), (MACHINE_ID, MANAGEMENT)}
    assert {r["tenant_id"] for r in grants.values()} == {dump["tenants"][0]["id"]}
    [api] = dump["resource_servers"]
    assert api["scopes"][0] == {"value": "read:things", "description": "read things"}

    assert summary_of(apply_file(database_url, path)) == first  # the same grant ids
    assert await dump_tables(database_url) == dump  # nothing written the second time

    changed = machine_config(ORIGIN)
    changed["client_grants"][0]["scope"] = ["delete:things"]
    summary = summary_of(apply_file(database_url, write(tmp_path / "acme.yaml", changed)))
    assert summary["client_grants"][0]["id"] == first["client_grants"][0]["id"]
    after = await dump_tables(database_url)
    assert changed_tables(dump, after) == {"client_grants", "config_state"}
    assert grants_of(after)[(MACHINE_ID, API_ID)]["scope"] == ["delete:things"]


async def test_an_omitted_grant_is_kept_and_goes_with_prune(
    database_url: str, tmp_path: Path
) -> None:
    await prepare_database(database_url, machine_config(ORIGIN))
    smaller = machine_config(ORIGIN)
    smaller["client_grants"] = smaller["client_grants"][:1]
    path = write(tmp_path / "acme.yaml", smaller)
    kept = summary_of(apply_file(database_url, path))
    assert len(kept["client_grants"]) == 1
    assert len((await dump_tables(database_url))["client_grants"]) == 2
    summary_of(apply_file(database_url, path, "--prune"))
    assert set(grants_of(await dump_tables(database_url))) == {(MACHINE_ID, API_ID)}


Mutation = Callable[[dict[str, Any]], None]


def _grant(**grant: Any) -> Mutation:
    def mutate(config: dict[str, Any]) -> None:
        config["client_grants"].append(grant)

    return mutate


def _public_client_credentials(config: dict[str, Any]) -> None:
    config["clients"][0]["grant_types"].append("client_credentials")


def _management_as_api(config: dict[str, Any]) -> None:
    config["resource_servers"].append({"identifier": MANAGEMENT, "name": "Mine"})


REFUSALS: dict[str, tuple[Mutation, list[str]]] = {
    "unknown client": (
        _grant(client_id="No Such App", audience=API_ID, scope=[]),
        ["client_grants[2].client_id", "No Such App"],
    ),
    "unknown audience": (
        _grant(client_id=WEB_ID, audience="https://nowhere.example/", scope=[]),
        ["client_grants[2].audience", "https://nowhere.example/"],
    ),
    "a scope the API does not define": (
        _grant(client_id=WEB_ID, audience=API_ID, scope=["read:things", "fly:things"]),
        ["client_grants[2].scope", "fly:things"],
    ),
    "a scope the Management API does not define": (
        _grant(client_id=WEB_ID, audience=MANAGEMENT, scope=["read:everything"]),
        ["client_grants[2].scope", "read:everything"],
    ),
    "a grant for a public client": (
        _grant(client_id=NATIVE_ID, audience=API_ID, scope=[]),
        ["client_grants[2].client_id", "Native App", "public"],
    ),
    "a duplicate (client, audience), by name and by id": (
        _grant(client_id="Machine App", audience=MANAGEMENT, scope=[]),
        ["client_grants[2]", "duplicate", "Machine App", MANAGEMENT],
    ),
    "a public client with client_credentials": (
        _public_client_credentials,
        ["clients[0].grant_types", "client_credentials", "confidential"],
    ),
    "an API at the Management API's audience": (
        _management_as_api,
        ["resource_servers[1].identifier", "Auth0 Management API"],
    ),
}


async def test_each_bad_grant_is_refused_with_one_line_and_nothing_written(
    database_url: str, tmp_path: Path
) -> None:
    await prepare_database(database_url, machine_config(ORIGIN))
    before = await dump_tables(database_url)
    problems = []
    for i, (case, (mutate, expected)) in enumerate(REFUSALS.items()):
        config = copy.deepcopy(machine_config(ORIGIN))
        mutate(config)
        result = apply_file(database_url, write(tmp_path / f"bad{i}.yaml", config))
        try:
            line = usage_error(result)
            for text in expected:
                assert text in line, f"{text!r} not named in {line!r}"
        except AssertionError as exc:
            problems.append(f"{case}: {exc}")
    assert not problems, "\n".join(problems)
    assert await dump_tables(database_url) == before
