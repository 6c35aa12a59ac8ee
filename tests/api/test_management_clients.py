"""``/api/v2/clients`` (docs/specs/management-api.md §5.1): create, read, list, update,
rotate-secret and delete, through the tenant's ``nopass apply`` document, so that a file
applied afterwards sees the same clients; every refusal writes nothing. On SQLite and
PostgreSQL."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import text

from nopass.config_file import parse_config
from nopass.core.models import PASSWORDLESS_OTP_GRANT
from nopass.store.apply import apply_config
from tests.support import management
from tests.support.config import (
    API_ID,
    MACHINE_ID,
    MACHINE_SECRET,
    NATIVE_ID,
    WEB_ID,
    machine_config,
)
from tests.support.harness import running_app
from tests.support.management import ORIGIN, Api, ok, tenant_key

CLIENT_ID = re.compile(r"^[A-Za-z0-9]{32}$")
MANAGEMENT = ORIGIN + "/api/v2/"


@pytest.fixture
async def api(database_url: str) -> AsyncIterator[Api]:
    async with running_app(database_url, machine_config(ORIGIN)) as harness:
        yield Api(harness, await tenant_key(harness))


UNCHANGED = (
    "SELECT client_id, name, secret_hash, settings FROM clients ORDER BY id",
    "SELECT * FROM client_grants ORDER BY id",
)


async def refused(api: Api, method: str, path: str, body: Any, status: int, code: str) -> str:
    return await management.refused(api, method, path, body, status, code, unchanged=UNCHANGED)


async def token_for(api: Api, client_id: str, secret: str, audience: str = API_ID) -> int:
    response = await api.harness.client.post(
        "/oauth/token",
        data={
            "grant_type": "client_credentials",
            "client_id": client_id,
            "client_secret": secret,
            "audience": audience,
        },
    )
    return response.status_code


MACHINE_BODY = {
    "name": "Billing Worker",
    "description": "Nightly billing",
    "app_type": "non_interactive",
    "is_first_party": True,
    "oidc_conformant": True,
    "jwt_configuration": {"alg": "RS256", "lifetime_in_seconds": 3600, "secret_encoded": False},
    "client_metadata": {"team": "billing"},
    "organization_usage": "deny",
    "refresh_token": {"rotation_type": "non-rotating", "expiration_type": "non-expiring"},
}


async def test_create_a_machine_client_and_read_it_back(api: Api) -> None:
    created = await ok(api, "POST", "/clients", 201, json=MACHINE_BODY)
    assert CLIENT_ID.match(created["client_id"])
    assert len(created["client_secret"]) >= 32
    assert created["token_endpoint_auth_method"] == "client_secret_post"
    assert created["grant_types"] == ["client_credentials"]  # Auth0's default for machines
    for key, value in MACHINE_BODY.items():
        if key not in ("jwt_configuration", "refresh_token"):
            assert created[key] == value, key
    assert created["jwt_configuration"] == MACHINE_BODY["jwt_configuration"]
    assert created["refresh_token"]["rotation_type"] == "non-rotating"
    assert created["global"] is False and created["tenant"] == "acme"
    assert "client_authentication_methods" not in created
    # the secret is stored hashed: shown once, never again
    read = await ok(api, "GET", f"/clients/{created['client_id']}")
    assert read == {k: v for k, v in created.items() if k != "client_secret"}
    [row] = await api.harness.rows(
        f"SELECT secret_hash FROM clients WHERE client_id = '{created['client_id']}'"  # noqa: S608
    )
    assert row["secret_hash"] and created["client_secret"] not in row["secret_hash"]
    # and it is a client of the tenant: with a grant (as a file gives one) it gets a token
    assert await token_for(api, created["client_id"], created["client_secret"]) == 403
    audits = await api.harness.rows("SELECT description, details FROM audit_events")
    assert any(a["description"] == "Create a client" for a in audits)
    assert all(created["client_secret"] not in str(a["details"]) for a in audits)


async def test_a_public_client_has_no_secret(api: Api) -> None:
    created = await ok(
        api, "POST", "/clients", 201, json={"name": "Phone", "app_type": "native", "callbacks": []}
    )
    assert "client_secret" not in created
    assert created["token_endpoint_auth_method"] == "none"
    assert created["is_first_party"] is True


async def test_list_pages_filters_and_fields(api: Api) -> None:
    everything = await ok(api, "GET", "/clients")
    assert [c["client_id"] for c in everything][:2] == [NATIVE_ID, WEB_ID]
    total = len(everything)
    page = await ok(api, "GET", "/clients?page=1&per_page=2&include_totals=true")
    assert page == {"start": 2, "limit": 2, "total": total, "clients": everything[2:4]}
    past = await ok(api, "GET", "/clients?page=50&per_page=2&include_totals=true")
    assert past["clients"] == [] and past["total"] == total
    machines = await ok(api, "GET", "/clients?app_type=non_interactive,spa&fields=client_id,name")
    assert machines == [{"client_id": MACHINE_ID, "name": "Machine App"}]
    assert await ok(api, "GET", "/clients?is_global=true") == []
    assert len(await ok(api, "GET", "/clients?is_global=false")) == total
    assert await ok(api, "GET", "/clients?is_first_party=false") == []
    without = await ok(api, "GET", "/clients?fields=callbacks,grant_types&include_fields=false")
    assert all("callbacks" not in c and "client_id" in c for c in without)
    response = await api.call("GET", "/clients?per_page=101")
    assert response.status_code == 400
    assert response.json()["errorCode"] == "invalid_query_string"


async def test_update_sets_resets_and_merges(api: Api) -> None:
    created = await ok(api, "POST", "/clients", 201, json=MACHINE_BODY)
    path = f"/clients/{created['client_id']}"
    body = {
        "name": "Billing",
        "description": None,  # null: back to unset
        "jwt_configuration": {"lifetime_in_seconds": 600},  # merged
        "cross_origin_authentication": True,  # Auth0's name of the file's cross_origin_auth
        "callbacks": ["https://billing.acme.example/cb"],
        # read-only ones, round-tripped by tools, are ignored
        "client_id": created["client_id"],
        "signing_keys": [{"cert": "x"}],
        "tenant": "acme",
        "global": False,
        "callback_url_template": False,
    }
    updated = await ok(api, "PATCH", path, json=body)
    assert updated["name"] == "Billing" and "description" not in updated
    assert updated["jwt_configuration"] == {
        "alg": "RS256",
        "lifetime_in_seconds": 600,
        "secret_encoded": False,
    }
    assert updated["cross_origin_authentication"] is True and updated["cross_origin_auth"] is True
    assert updated["callbacks"] == ["https://billing.acme.example/cb"]
    assert "client_secret" not in updated  # not set by this PATCH
    assert await ok(api, "GET", path) == updated


async def test_a_patch_may_set_the_secret_with_update_client_keys(api: Api) -> None:
    path = f"/clients/{MACHINE_ID}"
    secret = "a-brand-new-secret-0123456789"
    response = await api.call(
        "PATCH", path, json={"client_secret": secret}, scopes=["update:clients"]
    )
    assert response.status_code == 403
    assert response.json()["message"] == ("Insufficient scope, expected any of: update:client_keys")
    updated = await ok(api, "PATCH", path, json={"client_secret": secret})
    assert updated["client_secret"] == secret
    # with the file's grant, the new secret gets a token and the old one no longer does
    assert await token_for(api, MACHINE_ID, secret) == 200
    assert await token_for(api, MACHINE_ID, MACHINE_SECRET) == 401


async def test_rotate_secret_ignores_the_body(api: Api) -> None:
    for body in ({"id": MACHINE_ID}, None):
        rotated = await ok(api, "POST", f"/clients/{MACHINE_ID}/rotate-secret", json=body)
        assert rotated["client_id"] == MACHINE_ID and rotated["name"] == "Machine App"
        assert await token_for(api, MACHINE_ID, rotated["client_secret"]) == 200
    assert await token_for(api, MACHINE_ID, MACHINE_SECRET) == 401
    response = await api.call(
        "POST", f"/clients/{MACHINE_ID}/rotate-secret", scopes=["update:clients"]
    )
    assert response.status_code == 403


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"name": "x", "colour": "red"}, "'Additional properties not allowed: colour'."),
        ({"app_type": "native"}, "'Missing required property: name'."),
        ({"name": "x", "callbacks": ["nope"]}, "callbacks: not an absolute URL: 'nope'"),
        ({"name": "x", "app_type": "robot"}, "app_type: "),
        ({"name": "x", "client_metadata": {"a": 1}}, "client_metadata.a: "),
    ],
)
async def test_invalid_creates_write_nothing(api: Api, body: dict[str, Any], message: str) -> None:
    text = await refused(api, "POST", "/clients", body, 400, "invalid_body")
    assert text.startswith("Payload validation error: ")
    assert message in text, text


async def test_conflicts_and_unknown_clients(api: Api) -> None:
    for _ in range(2):  # Python v6 retries a 409: the answer stays the same
        message = await refused(api, "POST", "/clients", {"name": "Web App"}, 409, "conflict")
        assert message == "A client named 'Web App' already exists."
    message = await refused(
        api, "PATCH", f"/clients/{NATIVE_ID}", {"name": "Web App"}, 409, "conflict"
    )
    body = {"client_id": "another-one-entirely"}
    message = await refused(api, "PATCH", f"/clients/{NATIVE_ID}", body, 400, "invalid_body")
    assert message == "Payload validation error: 'client_id' cannot change."
    for method in ("GET", "PATCH", "DELETE"):
        response = await api.call(method, "/clients/nope", json={} if method == "PATCH" else None)
        assert response.status_code == 404
        assert response.json() == {
            "statusCode": 404,
            "error": "Not Found",
            "message": "The client does not exist.",
            "errorCode": "inexistent_client",
        }


async def test_scopes(api: Api) -> None:
    for scope in ("read:clients", "read:client_summary", "read:client_keys"):
        assert (await api.call("GET", "/clients", scopes=[scope])).status_code == 200
    response = await api.call("GET", "/clients", scopes=["read:users"])
    assert response.status_code == 403
    assert response.json()["message"] == (
        "Insufficient scope, expected any of: read:clients, read:client_keys, "
        "read:client_credentials, read:client_summary"
    )
    response = await api.call("POST", "/clients", json={"name": "x"}, scopes=["update:clients"])
    assert response.json()["message"] == "Insufficient scope, expected any of: create:clients"
    response = await api.call("DELETE", f"/clients/{NATIVE_ID}", scopes=["update:clients"])
    assert response.json()["message"] == "Insufficient scope, expected any of: delete:clients"


async def seed_refresh_tokens(api: Api) -> None:
    """A refresh token of the machine client and one of the native app."""
    [tenant] = await api.harness.rows("SELECT id FROM tenants")
    async with api.harness.engine.begin() as conn:
        for n, client_id in enumerate((MACHINE_ID, NATIVE_ID)):
            await conn.execute(
                text(
                    "INSERT INTO refresh_tokens (id, tenant_id, token_hash, family_id, client_id,"
                    " user_id, scope, created_at) VALUES (:id, :t, :h, :id, :c, 'email|u',"
                    " 'openid', :now)"
                ),
                {
                    "id": f"r{n}",
                    "t": tenant["id"],
                    "h": f"h{n}",
                    "c": client_id,
                    "now": datetime.now(UTC),
                },
            )


async def test_delete_takes_grants_tokens_and_connection_links(api: Api) -> None:
    await seed_refresh_tokens(api)
    assert await api.harness.count("client_grants", f"client_id = '{MACHINE_ID}'") == 2
    assert await api.harness.count("connection_clients", f"client_id = '{NATIVE_ID}'") > 0
    response = await api.call("DELETE", f"/clients/{MACHINE_ID}")
    assert response.status_code == 204 and response.content == b""
    assert await api.harness.count("client_grants", f"client_id = '{MACHINE_ID}'") == 0
    assert await token_for(api, MACHINE_ID, MACHINE_SECRET) == 401
    assert (await api.call("GET", f"/clients/{MACHINE_ID}")).status_code == 404
    assert await api.harness.count("refresh_tokens", f"client_id = '{MACHINE_ID}'") == 0
    assert await api.harness.count("refresh_tokens", f"client_id = '{NATIVE_ID}'") == 1
    await ok(api, "DELETE", f"/clients/{NATIVE_ID}", 204)
    assert await api.harness.count("connection_clients", f"client_id = '{NATIVE_ID}'") == 0


async def test_a_file_applied_afterwards_keeps_the_api_clients(api: Api) -> None:
    created = await ok(api, "POST", "/clients", 201, json=MACHINE_BODY)
    file = machine_config(ORIGIN)
    await apply_config(api.harness.engine, parse_config(file), now=datetime.now(UTC))
    after = await ok(api, "GET", f"/clients/{created['client_id']}")
    assert after == {k: v for k, v in created.items() if k != "client_secret"}
    assert await token_for(api, MACHINE_ID, MACHINE_SECRET) == 200


async def test_an_api_client_enabled_by_a_file_signs_users_in(api: Api) -> None:
    """A file applied afterwards names the API's client by its client_id (as an export of the
    tenant would) and enables it on sms; it then signs users in."""
    created = await ok(
        api,
        "POST",
        "/clients",
        201,
        json={"name": "Phone", "app_type": "native", "grant_types": [PASSWORDLESS_OTP_GRANT]},
    )
    client_id = created["client_id"]
    phone = "+15005550006"
    start = {"client_id": client_id, "connection": "sms", "phone_number": phone, "send": "code"}
    assert (await api.harness.start(start)).status_code == 400  # not enabled on sms yet
    file = machine_config(ORIGIN)
    file["clients"].append(
        {"name": "Phone", "client_id": client_id, "grant_types": [PASSWORDLESS_OTP_GRANT]}
    )
    [sms] = [c for c in file["connections"] if c["name"] == "sms"]
    sms["enabled_clients"] = [*sms["enabled_clients"], client_id]
    await apply_config(api.harness.engine, parse_config(file), now=datetime.now(UTC))
    deadline = time.monotonic() + 5  # the running app sees the file within seconds
    while (response := await api.harness.start(start)).status_code != 200:
        assert time.monotonic() < deadline, response.text
        await asyncio.sleep(0.1)
    code = await api.harness.code_for(phone)
    tokens = await api.harness.client.post(
        "/oauth/token",
        json={
            "grant_type": PASSWORDLESS_OTP_GRANT,
            "client_id": client_id,
            "username": phone,
            "otp": code,
            "realm": "sms",
            "scope": "openid",
        },
    )
    assert tokens.status_code == 200, tokens.text
    assert "id_token" in tokens.json()
    assert (await ok(api, "GET", f"/clients/{client_id}"))["name"] == "Phone"
