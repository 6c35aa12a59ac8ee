"""``/api/v2/resource-servers`` (docs/specs/management-api.md §5.3): the built-in Management
API listed first and protected, create, read by id or identifier, update, delete (with its
client grants), through the tenant's ``nopass apply`` document; every refusal writes nothing.
On SQLite and PostgreSQL."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import pytest

from nopass.config_file import parse_config
from nopass.core.management import MANAGEMENT_SCOPES
from nopass.store.apply import apply_config
from tests.support import management
from tests.support.config import API_ID, MACHINE_ID, MACHINE_SECRET, machine_config
from tests.support.harness import running_app
from tests.support.management import ORIGIN, Api, ok, tenant_key

HEX24 = re.compile(r"^[0-9a-f]{24}$")
MANAGEMENT = ORIGIN + "/api/v2/"
NEW_API = "https://orders.acme.example/"


@pytest.fixture
async def api(database_url: str) -> AsyncIterator[Api]:
    async with running_app(database_url, machine_config(ORIGIN)) as harness:
        yield Api(harness, await tenant_key(harness))


UNCHANGED = (
    "SELECT * FROM resource_servers ORDER BY id",
    "SELECT * FROM client_grants ORDER BY id",
)


async def refused(api: Api, method: str, path: str, body: Any, status: int, code: str) -> str:
    return await management.refused(api, method, path, body, status, code, unchanged=UNCHANGED)


async def test_the_management_api_is_listed_first(api: Api) -> None:
    listed = await ok(api, "GET", "/resource-servers?include_totals=true")
    assert listed["total"] == 2 and listed["start"] == 0 and listed["limit"] == 50
    system, acme = listed["resource_servers"]
    assert system["name"] == "Auth0 Management API" and system["is_system"] is True
    assert system["identifier"] == MANAGEMENT and HEX24.match(system["id"])
    assert [s["value"] for s in system["scopes"]] == list(MANAGEMENT_SCOPES)
    assert acme["identifier"] == API_ID and acme["is_system"] is False
    assert HEX24.match(acme["id"]) and acme["token_lifetime"] == 7200
    assert acme["signing_alg"] == "RS256"
    for key in (acme["id"], quote(API_ID, safe="")):
        assert await ok(api, "GET", f"/resource-servers/{key}") == acme
    assert await ok(api, "GET", f"/resource-servers/{system['id']}") == system
    only = await ok(api, "GET", f"/resource-servers?identifiers={quote(API_ID)}&fields=id")
    assert only == [{"id": acme["id"]}]
    for key in (system["id"], quote(MANAGEMENT, safe="")):
        for method, body in (("PATCH", {"token_lifetime": 60}), ("DELETE", None)):
            message = await refused(
                api, method, f"/resource-servers/{key}", body, 403, "operation_not_supported"
            )
            assert "cannot be changed or deleted" in message


async def test_create_update_and_read_back(api: Api) -> None:
    body = {
        "identifier": NEW_API,
        "name": "Orders",
        "scopes": [{"value": "read:orders", "description": "Read orders"}],
        "token_lifetime": 3600,
        "allow_offline_access": True,
        "skip_consent_for_verifiable_first_party_clients": True,
        "token_dialect": "access_token_authz",
        "enforce_policies": True,
        "signing_alg": "RS256",
    }
    created = await ok(api, "POST", "/resource-servers", 201, json=body)
    assert HEX24.match(created["id"]) and created["is_system"] is False
    assert {k: created[k] for k in body} == body
    path = f"/resource-servers/{created['id']}"
    assert await ok(api, "GET", path) == created
    patch = {
        "name": "Orders API",
        "scopes": [{"value": "read:orders"}, {"value": "write:orders"}],
        "token_dialect": None,
        "identifier": NEW_API,  # the same: accepted
        "id": created["id"],
        "is_system": False,
    }
    updated = await ok(api, "PATCH", path, json=patch)
    assert updated["name"] == "Orders API" and "token_dialect" not in updated
    assert [s["value"] for s in updated["scopes"]] == ["read:orders", "write:orders"]
    assert updated["id"] == created["id"]
    # a file applied afterwards sees the API and keeps its id
    await apply_config(
        api.harness.engine, parse_config(machine_config(ORIGIN)), now=datetime.now(UTC)
    )
    assert await ok(api, "GET", path) == updated
    # and a grant may then use its scopes
    grant = {"client_id": MACHINE_ID, "audience": NEW_API, "scope": ["write:orders"]}
    await ok(api, "POST", "/client-grants", 201, json=grant)
    token = await api.harness.client.post(
        "/oauth/token",
        data={
            "grant_type": "client_credentials",
            "client_id": MACHINE_ID,
            "client_secret": MACHINE_SECRET,
            "audience": NEW_API,
        },
    )
    assert token.status_code == 200 and token.json()["scope"] == "write:orders"
    assert token.json()["expires_in"] == 3600


@pytest.mark.parametrize(
    ("body", "status", "code", "message"),
    [
        ({"name": "x"}, 400, "invalid_body", "'Missing required property: identifier'."),
        (
            {"identifier": NEW_API, "x": 1},
            400,
            "invalid_body",
            "Additional properties not allowed: x",
        ),
        ({"identifier": NEW_API, "signing_alg": "HS256"}, 400, "invalid_body", "signing_alg"),
        (
            {"identifier": NEW_API, "scopes": [{"value": "a b"}]},
            400,
            "invalid_body",
            "scopes[0].value",
        ),
        ({"identifier": API_ID}, 409, "conflict", "already exists"),
        ({"identifier": MANAGEMENT}, 409, "conflict", "already exists"),
    ],
)
async def test_invalid_creates_write_nothing(
    api: Api, body: dict[str, Any], status: int, code: str, message: str
) -> None:
    assert message in await refused(api, "POST", "/resource-servers", body, status, code)


async def test_update_refusals(api: Api) -> None:
    path = f"/resource-servers/{quote(API_ID, safe='')}"
    message = await refused(api, "PATCH", path, {"identifier": NEW_API}, 400, "invalid_body")
    assert message == "Payload validation error: 'identifier' cannot change."
    # a scope a grant uses cannot go
    body = {"scopes": [{"value": "delete:things"}]}
    message = await refused(api, "PATCH", path, body, 400, "invalid_body")
    assert "is not a scope of" in message
    response = await api.call("PATCH", "/resource-servers/0123456789abcdef01234567", json={})
    assert response.status_code == 404
    assert response.json()["message"] == "The resource server does not exist."


async def test_delete_takes_its_grants(api: Api) -> None:
    assert await api.harness.count("client_grants", f"audience = '{API_ID}'") == 1
    await ok(api, "DELETE", f"/resource-servers/{quote(API_ID, safe='')}", 204)
    assert await api.harness.count("client_grants", f"audience = '{API_ID}'") == 0
    assert await api.harness.count("client_grants") == 1  # the Management API's stays
    assert (await api.call("GET", f"/resource-servers/{quote(API_ID, safe='')}")).status_code == 404


async def test_scopes(api: Api) -> None:
    cases = [
        ("GET", "/resource-servers", "read:resource_servers"),
        ("POST", "/resource-servers", "create:resource_servers"),
        ("PATCH", f"/resource-servers/{quote(API_ID, safe='')}", "update:resource_servers"),
        ("DELETE", f"/resource-servers/{quote(API_ID, safe='')}", "delete:resource_servers"),
    ]
    for method, path, scope in cases:
        body: dict[str, Any] | None = {} if method in ("POST", "PATCH") else None
        response = await api.call(method, path, json=body, scopes=["read:clients"])
        assert response.status_code == 403
        assert response.json()["message"] == f"Insufficient scope, expected any of: {scope}"
