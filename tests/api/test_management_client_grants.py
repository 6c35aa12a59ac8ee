"""``/api/v2/client-grants`` (docs/specs/management-api.md §2.3, §1.4): list by offset and by
checkpoint with filters, create (scopes the API defines; 404, 409), update, delete, through
the tenant's ``nopass apply`` document; a client and grant created by the API get a
client-credentials token. On SQLite and PostgreSQL."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.support import management
from tests.support.config import API_ID, MACHINE_ID, MACHINE_SECRET, NATIVE_ID, machine_config
from tests.support.harness import running_app
from tests.support.management import ORIGIN, Api, ok, tenant_key

GRANT_ID = re.compile(r"^cgr_[A-Za-z0-9]{16}$")
MANAGEMENT = ORIGIN + "/api/v2/"


@pytest.fixture
async def api(database_url: str) -> AsyncIterator[Api]:
    async with running_app(database_url, machine_config(ORIGIN)) as harness:
        yield Api(harness, await tenant_key(harness))


UNCHANGED = ("SELECT * FROM client_grants ORDER BY id",)


async def refused(api: Api, method: str, path: str, body: Any, status: int, code: str) -> str:
    return await management.refused(api, method, path, body, status, code, unchanged=UNCHANGED)


async def token(api: Api, client_id: str, secret: str, audience: str) -> dict[str, Any]:
    response = await api.harness.client.post(
        "/oauth/token",
        data={
            "grant_type": "client_credentials",
            "client_id": client_id,
            "client_secret": secret,
            "audience": audience,
        },
    )
    body: dict[str, Any] = response.json()
    body["status"] = response.status_code
    return body


async def test_an_api_client_with_an_api_grant_gets_a_token(api: Api) -> None:
    client = await ok(
        api,
        "POST",
        "/clients",
        201,
        json={"name": "Reporter", "app_type": "non_interactive"},
    )
    cid, secret = client["client_id"], client["client_secret"]
    assert (await token(api, cid, secret, MANAGEMENT))["status"] == 403
    body = {"client_id": cid, "audience": MANAGEMENT, "scope": ["read:users", "read:clients"]}
    grant = await ok(api, "POST", "/client-grants", 201, json=body)
    assert GRANT_ID.match(grant["id"])
    assert grant == {"id": grant["id"], **body, "subject_type": "client"}
    issued = await token(api, cid, secret, MANAGEMENT)
    assert issued["status"] == 200 and issued["scope"] == "read:users read:clients"
    # that token is a Management API token: it may read clients, not create them
    api.bearer = issued["access_token"]
    assert (await api.call("GET", "/clients")).status_code == 200
    assert (await api.call("POST", "/clients", json={"name": "x"})).status_code == 403


async def test_list_offset_checkpoint_and_filters(api: Api) -> None:
    for n in range(3):
        client = await ok(
            api, "POST", "/clients", 201, json={"name": f"M{n}", "app_type": "non_interactive"}
        )
        body = {"client_id": client["client_id"], "audience": API_ID, "scope": ["read:things"]}
        await ok(api, "POST", "/client-grants", 201, json=body)
    everything = await ok(api, "GET", "/client-grants")
    assert len(everything) == 5
    assert [g["id"] for g in everything] == sorted(g["id"] for g in everything)
    page = await ok(api, "GET", "/client-grants?page=1&per_page=2&include_totals=true")
    assert page == {"start": 2, "limit": 2, "total": 5, "client_grants": everything[2:4]}
    # checkpoint: take/from win over include_totals (Node sends both)
    seen: list[dict[str, Any]] = []
    query = "include_totals=true&take=2"
    while True:
        answer = await ok(api, "GET", f"/client-grants?{query}")
        assert set(answer) <= {"client_grants", "next"}
        seen += answer["client_grants"]
        if "next" not in answer:
            break
        query = f"take=2&from={answer['next']}"
    assert seen == everything
    by_audience = await ok(api, "GET", f"/client-grants?audience={API_ID}")
    assert len(by_audience) == 4 and all(g["audience"] == API_ID for g in by_audience)
    mine = await ok(api, "GET", f"/client-grants?client_id={MACHINE_ID}")
    assert {g["audience"] for g in mine} == {API_ID, MANAGEMENT}
    assert await ok(api, "GET", "/client-grants?subject_type=user") == []
    response = await api.call("GET", "/client-grants?take=101")
    assert response.status_code == 400


async def test_update_and_delete(api: Api) -> None:
    [grant] = await ok(api, "GET", f"/client-grants?client_id={MACHINE_ID}&audience={API_ID}")
    path = f"/client-grants/{grant['id']}"
    body = {"scope": ["delete:things"], "organization_usage": "deny", "audience": API_ID}
    updated = await ok(api, "PATCH", path, json=body)
    assert updated["scope"] == ["delete:things"] and updated["organization_usage"] == "deny"
    assert await ok(api, "GET", path) == updated
    assert (await token(api, MACHINE_ID, MACHINE_SECRET, API_ID))["scope"] == "delete:things"
    await ok(api, "DELETE", path, 204)
    assert (await api.call("GET", path)).status_code == 404
    assert (await token(api, MACHINE_ID, MACHINE_SECRET, API_ID))["status"] == 403
    response = await api.call("DELETE", path)
    assert response.json() == {
        "statusCode": 404,
        "error": "Not Found",
        "message": "The client grant does not exist.",
        "errorCode": "inexistent_client_grant",
    }


@pytest.mark.parametrize(
    ("body", "status", "code", "message"),
    [
        (
            {"client_id": MACHINE_ID, "audience": API_ID},
            400,
            "invalid_body",
            "Missing required property: scope",
        ),
        (
            {"client_id": MACHINE_ID, "audience": API_ID, "scope": "read:things"},
            400,
            "invalid_body",
            "on property scope",
        ),
        (
            {"client_id": MACHINE_ID, "audience": API_ID, "scope": [], "x": 1},
            400,
            "invalid_body",
            "Additional properties not allowed: x",
        ),
        (
            {"client_id": MACHINE_ID, "audience": API_ID, "scope": ["read:things"]},
            409,
            "conflict",
            "already exists",
        ),
        (
            {"client_id": "nope-nope-nope", "audience": "https://x.example/", "scope": []},
            404,
            "inexistent_client",
            "The client does not exist.",
        ),
        (
            {"client_id": MACHINE_ID, "audience": "https://x.example/", "scope": []},
            404,
            "inexistent_resource_server",
            "The resource server does not exist.",
        ),
        (
            {"client_id": NATIVE_ID, "audience": API_ID, "scope": []},
            400,
            "invalid_body",
            "is public",
        ),
    ],
)
async def test_invalid_creates_write_nothing(
    api: Api, body: dict[str, Any], status: int, code: str, message: str
) -> None:
    assert message in await refused(api, "POST", "/client-grants", body, status, code)


async def test_a_grant_holds_only_scopes_its_api_defines(api: Api) -> None:
    client = await ok(
        api, "POST", "/clients", 201, json={"name": "M", "app_type": "non_interactive"}
    )
    body = {"client_id": client["client_id"], "audience": API_ID, "scope": ["fly:things"]}
    message = await refused(api, "POST", "/client-grants", body, 400, "invalid_body")
    assert message == f"Payload validation error: scope: 'fly:things' is not a scope of '{API_ID}'"
    body = {"client_id": client["client_id"], "audience": MANAGEMENT, "scope": ["rule:world"]}
    assert "is not a scope of" in await refused(
        api, "POST", "/client-grants", body, 400, "invalid_body"
    )


async def test_scopes(api: Api) -> None:
    cases = [
        ("GET", "/client-grants", "read:client_grants"),
        ("POST", "/client-grants", "create:client_grants"),
        ("PATCH", "/client-grants/cgr_0123456789abcdef", "update:client_grants"),
        ("DELETE", "/client-grants/cgr_0123456789abcdef", "delete:client_grants"),
    ]
    for method, path, scope in cases:
        body: dict[str, Any] | None = {} if method in ("POST", "PATCH") else None
        response = await api.call(method, path, json=body, scopes=["read:clients"])
        assert response.status_code == 403
        assert response.json()["message"] == f"Insufficient scope, expected any of: {scope}"
