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


FORM = {"content-type": "application/x-www-form-urlencoded"}


async def test_userinfo_takes_the_token_from_a_form_body(app: Harness) -> None:
    """RFC 6750 §2.2, as pyoidc sends it."""
    tokens = await sms_login(app, "openid phone")
    sub = jwt.decode(tokens["id_token"], options={"verify_signature": False})["sub"]
    info = await app.client.post("/userinfo", data={"access_token": tokens["access_token"]})
    assert info.status_code == 200, info.text
    assert info.json() == {"sub": sub, "phone_number": PHONE, "phone_verified": True}
    assert info.headers["cache-control"] == "no-store"
    charset = {"content-type": "application/x-www-form-urlencoded; charset=UTF-8"}
    body = f"access_token={tokens['access_token']}&other=1"
    assert (await app.client.post("/userinfo", content=body, headers=charset)).status_code == 200


async def test_userinfo_form_body_refusals(app: Harness) -> None:
    tokens = await sms_login(app, "openid phone")
    token = tokens["access_token"]
    bearer = {"authorization": f"Bearer {token}"}
    cases = [  # RFC 6750 §3.1 invalid_request: the token given twice, or not as one string
        ({**bearer, **FORM}, f"access_token={token}".encode()),
        ({**bearer, **FORM}, b"access_token="),
        ({**bearer, **FORM}, b"access_token=garbage"),
        (FORM, f"access_token={token}&access_token={token}".encode()),
        (FORM, f"access_token[x]={token}".encode()),
        (FORM, b"access_token=\xff"),
    ]
    for headers, content in cases:
        response = await app.client.post("/userinfo", content=content, headers=headers)
        assert response.status_code == 400, (content, response.text)
        assert response.json()["error"] == "invalid_request"
        challenge = response.headers["www-authenticate"]
        assert challenge.startswith('Bearer error="invalid_request", error_description="')
        assert response.headers["cache-control"] == "no-store"

    wrong = await app.client.post("/userinfo", data={"access_token": tokens["id_token"]})
    assert wrong.status_code == 401
    assert wrong.headers["www-authenticate"] == 'Bearer error="invalid_token"'
    for request in (
        app.client.post("/userinfo", data={"access_token": ""}),
        app.client.post("/userinfo", data={"other": token}),
        app.client.get("/userinfo", params={"access_token": token}),  # §2.3: not accepted
        app.client.request("GET", "/userinfo", content=f"access_token={token}", headers=FORM),
        app.client.post("/userinfo", json={"access_token": token}),  # only a form body
    ):
        response = await request
        assert response.status_code == 401, response.text
        assert response.headers["www-authenticate"] == "Bearer"
