"""Every route of the Management API refuses bad input with a clear 4xx in Auth0's envelope
and writes nothing (docs/specs/management-api.md §1.2-§1.5, §9). On SQLite and PostgreSQL.

``ROUTES`` has one row per route, keyed by ``(method, path)`` as the router declares it
(without the ``/api/v2`` prefix): the scopes the route accepts (in the order its 403 lists
them), a valid sample path (``{user}``, ``{session}``, ``{token}`` and ``{log}`` are filled
with seeded ids; a query string may follow) and, for a route that takes a JSON body, a valid
body (each of its fields is also sent with every other JSON type), and which paging it takes.
``test_the_table_covers_every_route`` fails for a route without a row (and for a row without
a route), so a new endpoint adds one line, e.g.::

    ("DELETE", "/clients/{id}"): Row(("delete:clients",), "/clients/nosuchclient"),
    ("PATCH", "/clients/{id}"): Row(("update:clients",), "/clients/x", body={"name": "n"}),
    ("GET", "/clients"): Row(("read:clients",), paging=OFFSET),

``unknown`` is the status of the sample path with its ids replaced by well-formed unknown
ones (404 for most; 204 for ``DELETE /users/{id}``, which Auth0 answers alike for a user that
does not exist); 2xx answers may write (an audit event), 4xx never.

For every route: no token, a malformed one, an expired one, one for another audience, one
signed by another key (401 ``invalid_token``), one without the route's scopes (403
``insufficient_scope``); every method its path does not take (405). For every id in a path:
a NUL or another control character and a 2000-character id are 400 ``invalid_uri`` (they can
be no id); unexpected characters are an unknown id. For bodies: not JSON, JSON but not an
object, an unknown field, wrong types, a NUL in a string, ``NaN``/``Infinity``/``1e400`` as a
value, objects nested over 64 deep (400 ``invalid_body``), over 1 MiB (413). For paging:
``per_page``, ``page``, ``take`` and ``include_totals`` out of range or of the wrong type
(400 ``invalid_query_string``). Hypothesis adds any text as an id, any query on the list
routes and any typed user body: never more than a clear 4xx, and a 4xx writes nothing.

One app (and database) per backend for the whole module; the routes are enumerated from the
router's OpenAPI paths, because FastAPI keeps included routers lazily in ``router.routes``.
"""

from __future__ import annotations

import contextlib
import functools
import json
import re
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

import pytest
import pytest_asyncio
from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi import FastAPI
from hypothesis import HealthCheck, given, settings, strategies as st
from sqlalchemy import text

from nopass.api.management import router
from nopass.api.management.errors import PREFIX
from nopass.core.management import MANAGEMENT_SCOPES
from nopass.core.models import SigningKey
from tests.support.management import Api, management_app, token
from tests.support.services import throwaway_database

ON_THE_MODULE_LOOP = pytest.mark.asyncio(loop_scope="module")  # the app's loop

OFFSET = frozenset({"offset"})
CHECKPOINT = frozenset({"checkpoint"})
READ_USERS = ("read:users",)
READ_LOGS = ("read:logs", "read:logs_users")
READ_JOBS = ("create:users", "read:users")
READ_CLIENTS = (
    "read:clients",
    "read:client_keys",
    "read:client_credentials",
    "read:client_summary",
)
READ_CONNECTIONS = ("read:connections",)
SEEDED_API, OTHER_API = "https://seeded.example/api", "https://other.example/api"
EMAIL = "ada@acme.example"


@dataclass(frozen=True)
class Row:
    scopes: tuple[str, ...]
    sample: str = ""  # the path (and query) to call; "" for the route's own path
    body: Mapping[str, Any] | None = None  # a valid JSON body, for a route that takes one
    paging: frozenset[str] = field(default_factory=frozenset)
    unknown: int = 404  # the answer for well-formed ids that name nothing
    form: Mapping[str, str] | None = None  # a valid multipart form (with an empty users file)
    array: list[Any] | None = None  # a valid JSON array body (a route whose body is no object)
    opaque: bool = False  # unknown top-level body fields are kept (tenant settings, §5.4)


ROUTES: dict[tuple[str, str], Row] = {
    # users (§3)
    ("GET", "/users"): Row(READ_USERS, paging=OFFSET),
    ("POST", "/users"): Row(
        ("create:users",),
        body={
            "connection": "email",
            "email": "new@acme.example",
            "given_name": "New",
            "email_verified": False,
            "app_metadata": {"plan": "gold"},
        },
    ),
    ("GET", "/users-by-email"): Row(READ_USERS, f"/users-by-email?email={EMAIL}"),
    ("GET", "/users/{user_id}"): Row(READ_USERS, "/users/{user}"),
    ("PATCH", "/users/{user_id}"): Row(
        ("update:users", "update:users_app_metadata"),
        "/users/{user}",
        body={"nickname": "ada", "blocked": False, "user_metadata": {"a": 1}},
    ),
    ("DELETE", "/users/{user_id}"): Row(("delete:users",), "/users/{user}", unknown=204),
    ("GET", "/users/{user_id}/sessions"): Row(
        ("read:sessions",), "/users/{user}/sessions", paging=CHECKPOINT
    ),
    ("DELETE", "/users/{user_id}/sessions"): Row(("delete:sessions",), "/users/{user}/sessions"),
    ("GET", "/users/{user_id}/refresh-tokens"): Row(
        ("read:refresh_tokens",), "/users/{user}/refresh-tokens", paging=CHECKPOINT
    ),
    ("DELETE", "/users/{user_id}/refresh-tokens"): Row(
        ("delete:refresh_tokens",), "/users/{user}/refresh-tokens"
    ),
    ("POST", "/users/{user_id}/revoke-access"): Row(
        ("delete:sessions", "delete:refresh_tokens"),
        "/users/{user}/revoke-access",
        body={"session_id": "{session}", "preserve_refresh_tokens": True},
    ),
    # sessions and refresh tokens by id (§3.9)
    ("GET", "/sessions/{session_id}"): Row(("read:sessions",), "/sessions/{session}"),
    ("DELETE", "/sessions/{session_id}"): Row(("delete:sessions",), "/sessions/{session}"),
    ("GET", "/refresh-tokens/{token_id}"): Row(("read:refresh_tokens",), "/refresh-tokens/{token}"),
    ("DELETE", "/refresh-tokens/{token_id}"): Row(
        ("delete:refresh_tokens",), "/refresh-tokens/{token}"
    ),
    # logs (§4)
    ("GET", "/logs"): Row(READ_LOGS, paging=OFFSET | CHECKPOINT),
    ("GET", "/logs/{log_id}"): Row(READ_LOGS, "/logs/{log}"),
    ("GET", "/users/{user_id}/logs"): Row(
        READ_LOGS, "/users/{user}/logs", paging=OFFSET, unknown=200
    ),
    # user blocks (§6)
    ("GET", "/user-blocks"): Row(READ_USERS, f"/user-blocks?identifier={EMAIL}"),
    ("DELETE", "/user-blocks"): Row(("update:users",), f"/user-blocks?identifier={EMAIL}"),
    ("GET", "/user-blocks/{user_id}"): Row(READ_USERS, "/user-blocks/{user}"),
    ("DELETE", "/user-blocks/{user_id}"): Row(("update:users",), "/user-blocks/{user}"),
    # clients (§5.1)
    ("GET", "/clients"): Row(READ_CLIENTS, paging=OFFSET),
    ("POST", "/clients"): Row(
        ("create:clients",),
        body={"name": "Swept App", "app_type": "spa", "callbacks": ["https://app.example/cb"]},
    ),
    ("GET", "/clients/{client_id}"): Row(READ_CLIENTS, "/clients/{client}"),
    ("PATCH", "/clients/{client_id}"): Row(
        ("update:clients", "update:client_keys", "update:client_credentials"),
        "/clients/{client}",
        body={"description": "swept", "sso_disabled": True},
    ),
    ("DELETE", "/clients/{client_id}"): Row(("delete:clients",), "/clients/{client}"),
    ("POST", "/clients/{client_id}/rotate-secret"): Row(
        ("update:client_keys",), "/clients/{client}/rotate-secret"
    ),
    # connections (§5.2)
    ("GET", "/connections"): Row(READ_CONNECTIONS, paging=OFFSET | CHECKPOINT),
    ("POST", "/connections"): Row(
        ("create:connections",),
        body={"name": "swept-email", "strategy": "email", "display_name": "Swept"},
    ),
    ("GET", "/connections/{connection_id}"): Row(READ_CONNECTIONS, "/connections/{seeded}"),
    ("PATCH", "/connections/{connection_id}"): Row(
        ("update:connections",), "/connections/{seeded}", body={"display_name": "Swept"}
    ),
    ("DELETE", "/connections/{connection_id}"): Row(
        ("delete:connections",), "/connections/{seeded}"
    ),
    ("GET", "/connections/{connection_id}/clients"): Row(
        READ_CONNECTIONS, "/connections/{seeded}/clients", paging=CHECKPOINT
    ),
    ("PATCH", "/connections/{connection_id}/clients"): Row(
        ("update:connections",),
        "/connections/{seeded}/clients",
        array=[{"client_id": "{client}", "status": True}],
    ),
    ("GET", "/connections-directory-provisionings"): Row(READ_CONNECTIONS),
    # resource servers (§5.3)
    ("GET", "/resource-servers"): Row(("read:resource_servers",), paging=OFFSET),
    ("POST", "/resource-servers"): Row(
        ("create:resource_servers",),
        body={"name": "Swept API", "identifier": "https://swept.example/api"},
    ),
    ("GET", "/resource-servers/{key}"): Row(("read:resource_servers",), "/resource-servers/{api}"),
    ("PATCH", "/resource-servers/{key}"): Row(
        ("update:resource_servers",), "/resource-servers/{api}", body={"name": "Seeded API 2"}
    ),
    ("DELETE", "/resource-servers/{key}"): Row(
        ("delete:resource_servers",), "/resource-servers/{api}"
    ),
    # client grants (§2.3)
    ("GET", "/client-grants"): Row(("read:client_grants",), paging=OFFSET | CHECKPOINT),
    ("POST", "/client-grants"): Row(
        ("create:client_grants",),
        body={"client_id": "{client}", "audience": OTHER_API, "scope": ["read:other"]},
    ),
    ("GET", "/client-grants/{grant_id}"): Row(("read:client_grants",), "/client-grants/{grant}"),
    ("PATCH", "/client-grants/{grant_id}"): Row(
        ("update:client_grants",), "/client-grants/{grant}", body={"scope": ["read:seeded"]}
    ),
    ("DELETE", "/client-grants/{grant_id}"): Row(
        ("delete:client_grants",), "/client-grants/{grant}"
    ),
    # tenant settings (§5.4)
    ("GET", "/tenants/settings"): Row(("read:tenant_settings",)),
    ("PATCH", "/tenants/settings"): Row(
        ("update:tenant_settings",),
        "/tenants/settings",
        body={"friendly_name": "Swept", "support_email": "help@acme.example"},
        opaque=True,
    ),
    # jobs (§7); the import's multipart body is refused in tests/api/test_management_jobs.py
    ("POST", "/jobs/users-imports"): Row(
        ("create:users",), form={"connection_id": "{connection}", "upsert": "false"}
    ),
    ("POST", "/jobs/users-exports"): Row(READ_USERS, body={"format": "csv", "limit": 5}),
    ("GET", "/jobs/{job_id}"): Row(READ_JOBS, "/jobs/job_nosuchjob0000000"),
    ("GET", "/jobs/{job_id}/errors"): Row(READ_JOBS, "/jobs/job_nosuchjob0000000/errors"),
}

TABLES = (
    "tenants",
    "clients",
    "connections",
    "resource_servers",
    "client_grants",
    "users",
    "sessions",
    "refresh_tokens",
    "failure_windows",
    "audit_events",
    "jobs",
    "job_errors",
)
WRONG_TYPES = {"string": "text", "number": 7, "boolean": True, "array": [], "object": {}}
MALFORMED_IDS = ("%00", "a%01b", "%7F", "x" * 2000)
UNEXPECTED_IDS = ("a%20b", "%3Cscript%3E", "%C3%BC", "%27%22;--", "%E2%80%AE", "%FF%FE")
BAD_PAGING = {
    "offset": [
        "per_page=0",
        "per_page=101",
        "per_page=-1",
        "per_page=x",
        "per_page=%EF%BC%95",  # a fullwidth 5
        "page=-1",
        "page=x",
        "include_totals=maybe",
    ],
    "checkpoint": ["take=0", "take=101", "take=-1", "take=x", "from=&take=x"],
}


def routes() -> set[tuple[str, str]]:
    """Every (method, path) of the router but its catch-all (not in the schema)."""
    app = FastAPI()
    app.include_router(router)
    paths: dict[str, dict[str, Any]] = app.openapi()["paths"]
    return {
        (method.upper(), path.removeprefix(PREFIX))
        for path, operations in paths.items()
        for method in operations
    }


def json_type(value: object) -> str:
    match value:
        case bool():
            return "boolean"
        case int() | float():
            return "number"
        case str():
            return "string"
        case list():
            return "array"
    return "object"


@dataclass
class Probe:
    api: Api
    seeds: dict[str, str]
    statuses: dict[int, int] = field(default_factory=dict)

    def path(self, row: Row, key: tuple[str, str]) -> str:
        return (row.sample or key[1]).format(**self.seeds)

    def body(self, row: Row) -> dict[str, Any] | None:
        if row.body is None:
            return None
        filled: dict[str, Any] = self.filled(row.body)
        return filled

    def payload(self, row: Row) -> dict[str, Any]:
        """The keyword arguments that send the row's valid JSON body, if it takes one."""
        if row.body is not None:
            return {"json": self.body(row)}
        if row.array is not None:
            return {"json": self.filled(row.array)}
        return {}

    def filled(self, value: Any) -> Any:
        """``value`` with each ``{seed}`` in its strings replaced by the seeded id."""
        text = json.dumps(value)
        for name, seeded in self.seeds.items():
            text = text.replace("{" + name + "}", unquote(seeded))
        return json.loads(text)

    async def snapshot(self) -> dict[str, list[dict[str, Any]]]:
        # S608: the table names are this module's constants
        return {t: await self.api.harness.rows(f"SELECT * FROM {t} ORDER BY 1") for t in TABLES}  # noqa: S608

    async def refused(
        self,
        method: str,
        path: str,
        status: int,
        code: str,
        *,
        message: str | None = None,
        bearer: str | None = "",
        **kwargs: Any,
    ) -> dict[str, Any]:
        """Call ``PREFIX + path``: a ``status`` in the envelope with ``code``, and no audit
        event (every write is audited; ``unchanged`` compares every row of the tenant around
        a group of calls). ``bearer`` None sends no token, "" the full-scope one."""
        audits = await self.api.harness.count("audit_events")
        headers = dict(kwargs.pop("headers", {}))
        if bearer is not None:
            headers["Authorization"] = f"Bearer {bearer or self.api.bearer}"
        response = await self.api.harness.client.request(
            method, PREFIX + path, headers=headers, **kwargs
        )
        self.statuses[response.status_code] = self.statuses.get(response.status_code, 0) + 1
        assert response.status_code == status, (method, path[:80], response.text[:300])
        answer: dict[str, Any] = response.json()
        assert set(answer) == {"statusCode", "error", "message", "errorCode"}, answer
        assert answer["statusCode"] == status and answer["errorCode"] == code, answer
        assert isinstance(answer["error"], str) and answer["error"], answer
        assert isinstance(answer["message"], str) and answer["message"], answer
        if message is not None:
            assert answer["message"] == message, answer
        assert await self.api.harness.count("audit_events") == audits, (method, path[:80])
        return answer

    @contextlib.asynccontextmanager
    async def unchanged(self) -> AsyncIterator[None]:
        """Every row of the tenant's tables is as it was once the block is done."""
        before = await self.snapshot()
        yield
        assert await self.snapshot() == before, "a refused call wrote"


@pytest_asyncio.fixture(
    scope="module",
    loop_scope="module",
    params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)],
)
async def probe(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Probe]:
    path: Path = tmp_path_factory.mktemp("bad-input") / "nopass.db"
    limits = {"management_per_client_per_second": 1_000_000}
    async with (
        throwaway_database(request.param, path) as url,
        management_app(url, limits=limits) as api,
    ):
        yield Probe(api, await seed(api))


async def seed(api: Api) -> dict[str, str]:
    """A user with a session and a refresh token, and a log event: their ids."""
    created = await api.call("POST", "/users", json={"connection": "email", "email": EMAIL})
    assert created.status_code == 201, created.text
    user = created.json()["user_id"]
    [tenant] = await api.harness.rows("SELECT id FROM tenants")
    now = datetime.now(UTC)
    values = {"t": tenant["id"], "u": user, "now": now, "later": now + timedelta(days=1)}
    async with api.harness.engine.begin() as conn:
        await conn.execute(
            text(
                "INSERT INTO sessions (id, tenant_id, token_hash, user_id, created_at,"
                " expires_at) VALUES ('s0', :t, 'hs0', :u, :now, :later)"
            ),
            values,
        )
        await conn.execute(
            text(
                "INSERT INTO refresh_tokens (id, tenant_id, token_hash, family_id, client_id,"
                " user_id, scope, created_at) VALUES ('r0', :t, 'hr0', 'r0', 'c', :u,"
                " 'openid', :now)"
            ),
            values,
        )
    [log] = (await api.call("GET", "/logs?per_page=1")).json()
    [connection] = await api.harness.rows("SELECT id FROM connections WHERE name = 'email'")
    return {
        "user": quote(user, safe=""),
        "session": "s0",
        "token": "r0",
        "log": log["log_id"],
        "connection": connection["id"],
        **await seed_configuration(api),
    }


async def seed_configuration(api: Api) -> dict[str, str]:
    """A machine client, a connection, two APIs and a grant: their ids."""

    async def created(path: str, body: dict[str, Any]) -> dict[str, Any]:
        answer = await api.call("POST", path, json=body)
        assert answer.status_code == 201, answer.text
        found: dict[str, Any] = answer.json()
        return found

    client = await created("/clients", {"name": "Seeded App", "app_type": "non_interactive"})
    seeded = await created("/connections", {"name": "seeded-sms", "strategy": "sms"})
    apis = {}
    for audience, scope in ((SEEDED_API, "read:seeded"), (OTHER_API, "read:other")):
        body = {"name": audience, "identifier": audience, "scopes": [{"value": scope}]}
        apis[audience] = (await created("/resource-servers", body))["id"]
    grant = await created(
        "/client-grants",
        {"client_id": client["client_id"], "audience": SEEDED_API, "scope": ["read:seeded"]},
    )
    return {
        "client": client["client_id"],
        "seeded": seeded["id"],
        "api": apis[OTHER_API],
        "grant": grant["id"],
    }


@pytest_asyncio.fixture(loop_scope="module")
async def quiet(probe: Probe) -> AsyncIterator[Probe]:
    """The probe, for a test whose every call is refused: no row changes."""
    async with probe.unchanged():
        yield probe


KEYS = sorted(ROUTES)


def test_the_table_covers_every_route() -> None:
    served = routes()
    assert served - set(ROUTES) == set(), "routes without a row in ROUTES"
    assert set(ROUTES) - served == set(), "rows of ROUTES without a route"


def test_the_table_names_known_scopes() -> None:
    for key, row in ROUTES.items():
        assert row.scopes and set(row.scopes) <= set(MANAGEMENT_SCOPES), key


# --- tokens ------------------------------------------------------------------------------


@functools.cache
def another_private_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def other_key(key: SigningKey) -> SigningKey:
    """The tenant's kid and published JWK, but another private key."""
    return SigningKey(kid=key.kid, private=another_private_key(), jwk=key.jwk)


@ON_THE_MODULE_LOOP
@pytest.mark.parametrize("key", KEYS, ids=" ".join)
async def test_tokens(quiet: Probe, key: tuple[str, str]) -> None:
    probe = quiet
    row = ROUTES[key]
    method, path = key[0], probe.path(row, key)
    signing = probe.api.key
    send = probe.payload(row)
    invalid = "Invalid token"
    await probe.refused(method, path, 401, "invalid_token", message=invalid, bearer=None, **send)
    for malformed in ("not-a-jwt", "a.b.c", "e30.e30.", token(signing)[:-8]):
        await probe.refused(method, path, 401, "invalid_token", bearer=malformed, **send)
    expired = token(signing, exp=int(time.time()) - 60)
    answer = await probe.refused(method, path, 401, "invalid_token", bearer=expired, **send)
    assert answer["message"] == "Expired token received for JSON Web Token validation"
    audience = "https://elsewhere.example/api/v2/"
    elsewhere = token(signing, aud=audience)
    answer = await probe.refused(method, path, 401, "invalid_token", bearer=elsewhere, **send)
    assert answer["message"] == f"Bad audience: {audience}"
    forged = token(other_key(signing))
    await probe.refused(method, path, 401, "invalid_token", bearer=forged, **send)
    others = [s for s in MANAGEMENT_SCOPES if s not in row.scopes]
    expected = "Insufficient scope, expected any of: " + ", ".join(row.scopes)
    for scopes in (others, []):
        await probe.refused(
            method,
            path,
            403,
            "insufficient_scope",
            message=expected,
            bearer=token(signing, scopes),
            **send,
        )


# --- ids in the path ---------------------------------------------------------------------


def with_id(key: tuple[str, str], row: Row, probe: Probe, replacement: str) -> str:
    """The route's path with every ``{param}`` replaced, and the sample's query string."""
    template = key[1]
    parts = [replacement if p.startswith("{") else p for p in template.split("/")]
    sample = probe.path(row, key)
    query = sample.partition("?")[2]
    return "/".join(parts) + (f"?{query}" if query else "")


ID_KEYS = [k for k in KEYS if "{" in k[1]]


@ON_THE_MODULE_LOOP
@pytest.mark.parametrize("key", ID_KEYS, ids=" ".join)
async def test_ids_in_the_path(probe: Probe, key: tuple[str, str]) -> None:
    row = ROUTES[key]
    send = probe.payload(row)
    async with probe.unchanged():
        for malformed in MALFORMED_IDS:
            path = with_id(key, row, probe, malformed)
            answer = await probe.refused(key[0], path, 400, "invalid_uri", **send)
            assert answer["message"].startswith("Path validation error: ")
    for unexpected in UNEXPECTED_IDS:
        path = with_id(key, row, probe, unexpected)
        if row.unknown >= 400:
            await probe.refused(key[0], path, row.unknown, _not_found_code(key), **send)
        else:
            headers = {"Authorization": f"Bearer {probe.api.bearer}"}
            response = await probe.api.harness.client.request(
                key[0], PREFIX + path, headers=headers, **send
            )
            assert response.status_code == row.unknown, response.text


def _not_found_code(key: tuple[str, str]) -> str:
    """The ``inexistent_*`` code of the route's first path parameter."""
    first = key[1].split("{", 1)[1].split("}", 1)[0]
    owner = {
        "user_id": "inexistent_user",
        "session_id": "inexistent_session",
        "token_id": "inexistent_refresh_token",
        "log_id": "inexistent_log",
        "key": "inexistent_resource_server",
        "grant_id": "inexistent_client_grant",
    }
    return owner.get(first, "inexistent_" + first.removesuffix("_id"))


PATH_IDS = settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    database=None,
)


@ON_THE_MODULE_LOOP
@PATH_IDS
@given(raw=st.text(min_size=1, max_size=80).filter(lambda s: "/" not in s and s not in {".", ".."}))
async def test_any_text_as_an_id_is_a_clear_refusal(probe: Probe, raw: str) -> None:
    """Whatever text names a user, a session or a log: 400 or 404, never more."""
    for template, code in (
        ("/users/{}", "inexistent_user"),
        ("/sessions/{}", "inexistent_session"),
        ("/logs/{}", "inexistent_log"),
    ):
        path = template.format(quote(raw, safe=""))
        headers = {"Authorization": f"Bearer {probe.api.bearer}"}
        response = await probe.api.harness.client.get(PREFIX + path, headers=headers)
        assert response.status_code in (400, 404), (raw, response.text)
        answer = response.json()
        assert answer["statusCode"] == response.status_code
        assert answer["errorCode"] in (code, "invalid_uri"), answer


# --- bodies ------------------------------------------------------------------------------

BODY_KEYS = [k for k in KEYS if ROUTES[k].body is not None]


@ON_THE_MODULE_LOOP
@pytest.mark.parametrize("key", BODY_KEYS, ids=" ".join)
async def test_bodies(quiet: Probe, key: tuple[str, str]) -> None:
    probe = quiet
    row = ROUTES[key]
    method, path = key[0], probe.path(row, key)
    body = probe.body(row)
    assert body is not None
    json_header = {"Content-Type": "application/json"}
    for raw in (b"", b"{", b"{'a': 1}", b"\xff\xfe", b'{"a": 1} trailing'):
        await probe.refused(method, path, 400, "invalid_body", content=raw, headers=json_header)
    for not_an_object in ([], [body], "text", 7, True, None):  # None: the body "null"
        raw = json.dumps(not_an_object).encode()
        await probe.refused(method, path, 400, "invalid_body", content=raw, headers=json_header)
    if not row.opaque:
        await probe.refused(method, path, 400, "invalid_body", json={**body, "zzz_unknown": 1})
    for name, valid in body.items():
        for kind, wrong in WRONG_TYPES.items():
            if kind != json_type(valid):
                changed = {**body, name: wrong}
                await probe.refused(method, path, 400, "invalid_body", json=changed)
        for not_json in ("NaN", "-Infinity", "1e400"):  # Python reads them; JSON has none
            raw = json.dumps({**body, name: "__X__"}).replace('"__X__"', not_json).encode()
            await probe.refused(method, path, 400, "invalid_body", content=raw, headers=json_header)
        if isinstance(valid, dict):  # nested past the 64 levels a body may have
            deep: dict[str, Any] = {}
            for _ in range(100):
                deep = {"a": deep}
            await probe.refused(method, path, 400, "invalid_body", json={**body, name: deep})
        if isinstance(valid, str):
            await probe.refused(method, path, 400, "invalid_body", json={**body, name: "a\x00b"})
    await probe.refused(method, path, 400, "invalid_body", json={**body, "x\x00": 1})
    huge = json.dumps({**body, "zzz_padding": "x" * (1024 * 1024)}).encode()
    await probe.refused(method, path, 413, "payload_too_large", content=huge, headers=json_header)


# --- paging ------------------------------------------------------------------------------

PAGED_KEYS = [k for k in KEYS if ROUTES[k].paging]


@ON_THE_MODULE_LOOP
@pytest.mark.parametrize("key", PAGED_KEYS, ids=" ".join)
async def test_paging(quiet: Probe, key: tuple[str, str]) -> None:
    probe = quiet
    row = ROUTES[key]
    path = probe.path(row, key)
    joiner = "&" if "?" in path else "?"
    for kind in sorted(row.paging):
        for query in BAD_PAGING[kind]:
            await probe.refused("GET", f"{path}{joiner}{query}", 400, "invalid_query_string")
    for query in ("include_totals=maybe&take=5", "q=%00", "fields=a%00"):
        await probe.refused("GET", f"{path}{joiner}{query}", 400, "invalid_query_string")


def _another_route_takes(method: str, path: str) -> bool:
    for served_method, template in KEYS:
        pattern = re.sub(r"\\\{[^/]+?\\\}", "[^/]+", re.escape(template))
        if served_method == method and re.fullmatch(pattern, path):
            return True
    return False


@ON_THE_MODULE_LOOP
async def test_methods_a_path_does_not_take(quiet: Probe) -> None:
    """405 in the envelope, after the same gate (so a token is still required)."""
    served: dict[str, set[str]] = {}
    for method, path in KEYS:
        served.setdefault(path, set()).add(method)
    for path, methods in sorted(served.items()):
        sample = quiet.path(ROUTES[(sorted(methods)[0], path)], (sorted(methods)[0], path))
        for method in sorted({"GET", "POST", "PUT", "PATCH", "DELETE"} - methods):
            if _another_route_takes(method, sample.partition("?")[0]):
                continue  # GET /jobs/users-exports is GET /jobs/{job_id}
            await quiet.refused(method, sample, 405, "method_not_allowed", json={})
            await quiet.refused(method, sample, 401, "invalid_token", bearer=None, json={})


@ON_THE_MODULE_LOOP
async def test_searches_no_store_can_run(quiet: Probe) -> None:
    """A metadata path deeper than any stored metadata: 400, not the database's failure."""
    deep = "app_metadata." + ".".join(["a"] * 33) + ":1"
    for q in (deep, deep.replace("app_", "user_")):
        await quiet.refused("GET", f"/users?q={q}", 400, "invalid_query_string")
    fine = "app_metadata." + ".".join(["a"] * 32) + ":1"
    response = await quiet.api.call("GET", "/users", params={"q": fine})
    assert response.status_code == 200, response.text


@ON_THE_MODULE_LOOP
async def test_a_given_user_id_can_be_named_in_a_path(probe: Probe) -> None:
    """What cannot be addressed later (``/``, control characters) is refused at create;
    anything else comes back by its percent-encoded id."""
    async with probe.unchanged():
        for bad in ("a/b", "a\nb", "a\tb", "\x7f"):
            body = {"connection": "email", "email": "odd@acme.example", "user_id": bad}
            await probe.refused("POST", "/users", 400, "invalid_body", json=body)
    odd = "a b|c<>'\"ü%?#&+"
    body = {"connection": "email", "email": "odd@acme.example", "user_id": odd}
    created = await probe.api.call("POST", "/users", json=body)
    assert created.status_code == 201, created.text
    user_id = created.json()["user_id"]
    for method in ("GET", "DELETE"):
        response = await probe.api.call(method, f"/users/{quote(user_id, safe='')}")
        assert response.status_code in (200, 204), response.text
    assert (await probe.api.call("GET", f"/users/{quote(user_id, safe='')}")).status_code == 404


# --- properties: whatever the query or the body, a clear answer ---------------------------

QUERY_NAMES = (
    "q",
    "sort",
    "fields",
    "include_fields",
    "page",
    "per_page",
    "include_totals",
    "from",
    "take",
    "search_engine",
    "search",
)
query_values = st.one_of(
    st.text(max_size=40),
    st.sampled_from(["0", "1", "100", "-1", "true", "false", "email:x*", 'name:"a b"', "*:*"]),
    st.from_regex(r"[a-z_.]{1,12}:[^ ]{0,12}( (AND|OR|NOT) [a-z_]{1,8}:[\[\]{}*\"a-z0-9 ]{0,12})?"),
)


@ON_THE_MODULE_LOOP
@PATH_IDS
@given(
    route=st.sampled_from(["/users", "/logs", "/users/{user}/logs", "/users/{user}/sessions"]),
    query=st.dictionaries(st.sampled_from(QUERY_NAMES), query_values, max_size=4),
)
async def test_any_query_is_answered_or_refused_clearly(
    probe: Probe, route: str, query: dict[str, str]
) -> None:
    headers = {"Authorization": f"Bearer {probe.api.bearer}"}
    path = PREFIX + route.format(**probe.seeds)
    response = await probe.api.harness.client.get(path, params=query, headers=headers)
    assert response.status_code in (200, 400), (query, response.text)
    if response.status_code == 400:
        answer = response.json()
        assert answer["errorCode"] == "invalid_query_string", (query, answer)
        assert answer["statusCode"] == 400 and answer["message"], answer


USER_FIELDS = (
    "connection",
    "email",
    "phone_number",
    "user_id",
    "email_verified",
    "phone_verified",
    "blocked",
    "name",
    "nickname",
    "given_name",
    "family_name",
    "picture",
    "app_metadata",
    "user_metadata",
)
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=30),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)
user_bodies = st.dictionaries(
    st.sampled_from(USER_FIELDS),
    st.one_of(json_values, st.sampled_from(["email", "sms", EMAIL, "+15005550006"])),
    max_size=6,
)


@ON_THE_MODULE_LOOP
@PATH_IDS
@given(method=st.sampled_from(["POST", "PATCH"]), body=user_bodies)
async def test_any_user_body_is_answered_or_refused_clearly(
    probe: Probe, method: str, body: dict[str, Any]
) -> None:
    """Whatever typed fields a user body holds: 2xx, or a 4xx that writes nothing."""
    path = "/users" if method == "POST" else "/users/{user}".format(**probe.seeds)
    before = await probe.snapshot()
    headers = {"Authorization": f"Bearer {probe.api.bearer}"}
    response = await probe.api.harness.client.request(
        method, PREFIX + path, json=body, headers=headers
    )
    assert response.status_code < 500, (body, response.text)
    if response.status_code >= 400:
        answer = response.json()
        assert answer["statusCode"] == response.status_code and answer["errorCode"], answer
        assert await probe.snapshot() == before, (body, "wrote")


# --- the table's own guard (last: it deletes the seeds) ---------------------------------


def _write_order(key: tuple[str, str]) -> int:
    """Reads first, then the writes; a user's rows are deleted one by one before the user."""
    method, path = key
    if method == "GET":
        return 0
    if method != "DELETE" and not path.endswith("/revoke-access"):
        return 1
    if path.startswith(("/sessions/", "/refresh-tokens/")):
        return 2
    return 4 if key == ("DELETE", "/users/{user_id}") else 3


@ON_THE_MODULE_LOOP
async def test_the_valid_samples_are_accepted(probe: Probe) -> None:
    """Guard for the table: each sample (with its body) gets past every check of the frame
    and of its body (it may still name nothing: 404). Runs last: it deletes the seeds."""
    headers = {"Authorization": f"Bearer {probe.api.bearer}"}
    for key in sorted(KEYS, key=_write_order):
        row = ROUTES[key]
        send = probe.payload(row)
        if row.form is not None:
            send["data"] = {name: value.format(**probe.seeds) for name, value in row.form.items()}
            send["files"] = {"users": ("users.json", b"[]", "application/json")}
        response = await probe.api.harness.client.request(
            key[0], PREFIX + probe.path(row, key), headers=headers, **send
        )
        assert response.status_code < 300 or response.status_code == 404, (key, response.text)
