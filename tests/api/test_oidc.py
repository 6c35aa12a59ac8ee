"""Discovery, JWKS and /userinfo, in-process."""

from __future__ import annotations

from collections.abc import AsyncIterator

import jwt
import pytest

from nopass.core.models import PASSWORDLESS_OTP_GRANT
from tests.support.clock import MovableClock
from tests.support.config import NATIVE_ID, tenant_config
from tests.support.harness import Harness, running_app

ORIGIN = "http://127.0.0.1:8123"
ISSUER = ORIGIN + "/"
PHONE = "+15557654321"


@pytest.fixture
def clock() -> MovableClock:
    return MovableClock()


@pytest.fixture
async def app(database_url: str, clock: MovableClock) -> AsyncIterator[Harness]:
    async with running_app(database_url, tenant_config(ORIGIN), clock=clock) as harness:
        yield harness


async def sms_login(app: Harness, scope: str) -> dict[str, str]:
    start = {"client_id": NATIVE_ID, "connection": "sms", "phone_number": PHONE}
    assert (await app.start(start)).status_code == 200
    response = await app.client.post(
        "/oauth/token",
        json={
            "grant_type": PASSWORDLESS_OTP_GRANT,
            "client_id": NATIVE_ID,
            "username": PHONE,
            "otp": await app.code_for(PHONE),
            "realm": "sms",
            "scope": scope,
        },
    )
    assert response.status_code == 200, response.text
    tokens: dict[str, str] = response.json()
    return tokens


async def test_discovery_advertises_what_exists(app: Harness) -> None:
    doc = (await app.client.get("/.well-known/openid-configuration")).json()
    assert doc["issuer"] == ISSUER
    assert doc["jwks_uri"] == ISSUER + ".well-known/jwks.json"
    assert doc["token_endpoint"] == ISSUER + "oauth/token"
    assert doc["userinfo_endpoint"] == ISSUER + "userinfo"
    assert doc["id_token_signing_alg_values_supported"] == ["RS256"]
    assert "device_authorization_endpoint" not in doc
    assert "mfa_challenge_endpoint" not in doc
    other = await app.client.get(
        "/.well-known/openid-configuration", headers={"host": "evil.example"}
    )
    assert other.status_code == 400 and other.json()["error"] == "bad.tenant"


async def test_sms_user_claims_by_scope(app: Harness) -> None:
    tokens = await sms_login(app, "openid phone")
    claims = jwt.decode(tokens["id_token"], options={"verify_signature": False})
    assert claims["phone_number"] == PHONE and claims["phone_verified"] is True
    assert claims["sub"].startswith("sms|")
    assert "name" not in claims
    info = await app.client.get(
        "/userinfo", headers={"authorization": f"Bearer {tokens['access_token']}"}
    )
    assert info.json() == {"sub": claims["sub"], "phone_number": PHONE, "phone_verified": True}


async def test_userinfo_refusals(app: Harness, clock: MovableClock) -> None:
    tokens = await sms_login(app, "openid profile")
    missing = await app.client.get("/userinfo")
    assert missing.status_code == 401
    assert missing.headers["www-authenticate"] == "Bearer"
    for token in ("garbage", tokens["id_token"]):  # an ID token is not an access token
        response = await app.client.get("/userinfo", headers={"authorization": f"Bearer {token}"})
        assert response.status_code == 401
        assert response.headers["www-authenticate"] == 'Bearer error="invalid_token"'
    bearer = {"authorization": f"Bearer {tokens['access_token']}"}
    assert (await app.client.get("/userinfo", headers=bearer)).status_code == 200
    clock.advance(86400)
    expired = await app.client.get("/userinfo", headers=bearer)
    assert expired.status_code == 401
    assert expired.headers["www-authenticate"] == 'Bearer error="invalid_token"'


async def test_discovery_lists_the_browser_endpoints(app: Harness) -> None:
    doc = (await app.client.get("/.well-known/openid-configuration")).json()
    assert doc["authorization_endpoint"] == ISSUER + "authorize"
    assert doc["code_challenge_methods_supported"] == ["S256"]
    assert "authorization_code" in doc["grant_types_supported"]
    for path in ("/authorize?client_id=x", "/v2/logout"):
        assert (await app.client.get(path)).status_code != 404
