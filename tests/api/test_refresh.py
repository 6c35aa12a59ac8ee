"""Refresh tokens: rotation with reuse detection (RFC 9700 §4.14), non-rotating clients,
absolute expiry, down-scoping, revocation."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from nopass.core.models import PASSWORDLESS_OTP_GRANT
from tests.support.clock import MovableClock
from tests.support.config import NATIVE_ID, WEB_ID, WEB_SECRET, tenant_config
from tests.support.harness import Harness, running_app

ORIGIN = "http://127.0.0.1:8123"
API = "https://api.acme.example"
INVALID = {"error": "invalid_grant", "error_description": "Unknown or invalid refresh token."}


def config(rotation: str) -> dict[str, Any]:
    cfg = tenant_config(ORIGIN)
    cfg["resource_servers"] = [
        {"identifier": API, "name": "Acme API", "allow_offline_access": True}
    ]
    for client in cfg["clients"][:2]:
        client["refresh_token"] = {
            "rotation_type": rotation,
            "expiration_type": "expiring",
            "token_lifetime": 3600,
            "leeway": 0,
        }
    return cfg


@pytest.fixture
def clock() -> MovableClock:
    return MovableClock()


@pytest.fixture
async def rotating(database_url: str, clock: MovableClock) -> AsyncIterator[Harness]:
    async with running_app(database_url, config("rotating"), clock=clock) as harness:
        yield harness


async def login(app: Harness, client_id: str = NATIVE_ID, **auth: Any) -> dict[str, Any]:
    email = "ada@example.com"
    start = {"client_id": client_id, "connection": "email", "email": email, "send": "code", **auth}
    assert (await app.start(start)).status_code == 200
    body = {
        "grant_type": PASSWORDLESS_OTP_GRANT,
        "client_id": client_id,
        "username": email,
        "otp": await app.code_for(email),
        "realm": "email",
        "scope": "openid email offline_access",
        "audience": API,
        **auth,
    }
    response = await app.client.post("/oauth/token", json=body)
    assert response.status_code == 200, response.text
    tokens: dict[str, Any] = response.json()
    return tokens


async def refresh(
    app: Harness, token: str, client_id: str = NATIVE_ID, **extra: Any
) -> httpx.Response:
    body = {
        "grant_type": "refresh_token",
        "client_id": client_id,
        "refresh_token": token,
        "scope": "",
        **extra,
    }
    return await app.client.post("/oauth/token", json=body)


async def test_rotation_and_reuse_revokes_the_family(rotating: Harness) -> None:
    first = (await login(rotating))["refresh_token"]
    response = await refresh(rotating, first)
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {
        "access_token",
        "id_token",
        "refresh_token",
        "scope",
        "expires_in",
        "token_type",
    }
    second = body["refresh_token"]
    assert second != first
    assert body["scope"] == "openid email offline_access"

    reused = await refresh(rotating, first)
    assert (reused.status_code, reused.json()) == (403, INVALID)
    after = await refresh(rotating, second)
    assert (after.status_code, after.json()) == (403, INVALID), "the whole family is revoked"
    types = [r["type"] for r in await rotating.rows("SELECT type FROM audit_events ORDER BY id")]
    assert types[-4:] == ["sertft", "ferrt", "fertft", "fertft"]


async def test_absolute_expiry(rotating: Harness, clock: MovableClock) -> None:
    token = (await login(rotating))["refresh_token"]
    clock.advance(1800)
    token = (await refresh(rotating, token)).json()["refresh_token"]
    clock.advance(1801)  # the family was created 3601 s ago: rotation does not extend it
    response = await refresh(rotating, token)
    assert (response.status_code, response.json()) == (403, INVALID)


async def test_down_scoping(rotating: Harness) -> None:
    token = (await login(rotating))["refresh_token"]
    response = await refresh(rotating, token, scope="openid")
    assert response.status_code == 200
    assert response.json()["scope"] == "openid"
    wider = await refresh(rotating, response.json()["refresh_token"], scope="openid email phone")
    assert wider.status_code == 400
    assert wider.json()["error"] == "invalid_scope"


async def test_a_refused_wider_scope_leaves_the_token_usable(rotating: Harness) -> None:
    """Issue 13: a refresh asking for more than the grant answers ``invalid_scope`` and
    changes nothing: the token is not marked rotated, so the next normal refresh works and no
    reuse (``ferrt``) is detected."""
    token = (await login(rotating))["refresh_token"]
    rows = "SELECT rotated_at, revoked_at FROM refresh_tokens ORDER BY created_at"
    before = await rotating.rows(rows)
    wider = await refresh(rotating, token, scope="openid email phone")
    assert (wider.status_code, wider.json()["error"]) == (400, "invalid_scope")
    assert await rotating.rows(rows) == before
    normal = await refresh(rotating, token)
    assert normal.status_code == 200, normal.text
    types = [r["type"] for r in await rotating.rows("SELECT type FROM audit_events ORDER BY id")]
    assert types[-2:] == ["fertft", "sertft"]
    assert "ferrt" not in types


async def test_refresh_token_belongs_to_its_client(rotating: Harness) -> None:
    token = (await login(rotating))["refresh_token"]
    response = await refresh(rotating, token, client_id=WEB_ID, client_secret=WEB_SECRET)
    assert (response.status_code, response.json()) == (403, INVALID)
    assert (await refresh(rotating, "v1.made-up")).json() == INVALID


async def test_non_rotating_client_keeps_its_token(database_url: str) -> None:
    async with running_app(database_url, config("non-rotating")) as app:
        token = (await login(app))["refresh_token"]
        for _ in range(3):
            response = await refresh(app, token)
            assert response.status_code == 200
            assert "refresh_token" not in response.json()


async def test_revoke(rotating: Harness) -> None:
    token = (await login(rotating))["refresh_token"]
    response = await rotating.client.post(
        "/oauth/revoke", json={"client_id": NATIVE_ID, "token": token}
    )
    assert response.status_code == 200
    assert response.content == b""
    assert (await refresh(rotating, token)).json() == INVALID
    unknown = await rotating.client.post(
        "/oauth/revoke", json={"client_id": NATIVE_ID, "token": "v1.unknown"}
    )
    assert unknown.status_code == 200
    missing = await rotating.client.post("/oauth/revoke", json={"client_id": NATIVE_ID})
    assert missing.status_code == 400
    assert missing.json() == {
        "error": "invalid_request",
        "error_description": "Missing required parameter: token",
    }


async def test_confidential_client_must_authenticate_to_refresh(rotating: Harness) -> None:
    token = (await login(rotating, WEB_ID, client_secret=WEB_SECRET))["refresh_token"]
    response = await refresh(rotating, token, client_id=WEB_ID)
    assert (response.status_code, response.json()["error"]) == (401, "access_denied")
    ok = await refresh(rotating, token, client_id=WEB_ID, client_secret=WEB_SECRET)
    assert ok.status_code == 200
