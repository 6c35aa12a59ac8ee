"""POST /oauth/token with the passwordless OTP grant: tokens, every error body, and the code
rules of docs/specs/security.md §6 (3 attempts, latest only, single use, expiry, identity
window)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import jwt
import pytest

from nopass.core.models import PASSWORDLESS_OTP_GRANT
from tests.support.clock import MovableClock
from tests.support.config import NATIVE_ID, WEB_ID, WEB_SECRET, tenant_config
from tests.support.harness import Harness, running_app

ORIGIN = "http://127.0.0.1:8123"
ISSUER = ORIGIN + "/"
API = "https://api.acme.example"
EMAIL = "ada@example.com"
WRONG = {"error": "invalid_grant", "error_description": "Wrong email or verification code."}
EXHAUSTED = {
    "error": "invalid_grant",
    "error_description": (
        "You've reached the maximum number of attempts. Please try to login again."
    ),
}
EXPIRED = {
    "error": "invalid_grant",
    "error_description": "The verification code has expired. Please try to login again.",
}


def config() -> dict[str, Any]:
    cfg = tenant_config(ORIGIN)
    cfg["resource_servers"] = [
        {
            "identifier": API,
            "name": "Acme API",
            "token_lifetime": 3600,
            "allow_offline_access": True,
        },
        {"identifier": "https://no-offline.example", "name": "No offline"},
    ]
    cfg["clients"][2]["grant_types"] = ["authorization_code"]  # "Other App"
    # Many codes for one identity here: the send limits are tested in test_limits.py.
    cfg["tenant"]["rate_limits"] = {
        "start_per_identity_per_10min": 100,
        "start_per_identity_per_day": 100,
    }
    return cfg


@pytest.fixture
def clock() -> MovableClock:
    return MovableClock()


@pytest.fixture
async def app(database_url: str, clock: MovableClock) -> AsyncIterator[Harness]:
    async with running_app(database_url, config(), clock=clock) as harness:
        yield harness


async def send_code(
    app: Harness, email: str = EMAIL, client_id: str = NATIVE_ID, **extra: Any
) -> str:
    body = {"client_id": client_id, "connection": "email", "email": email, "send": "code", **extra}
    response = await app.start(body)
    assert response.status_code == 200, response.text
    return await app.code_for(email.lower())


async def exchange(app: Harness, code: str, **overrides: Any) -> httpx.Response:
    body: dict[str, Any] = {
        "grant_type": PASSWORDLESS_OTP_GRANT,
        "client_id": NATIVE_ID,
        "username": EMAIL,
        "otp": code,
        "realm": "email",
        "scope": "openid profile email",
    }
    body.update(overrides)
    return await app.client.post(
        "/oauth/token", json={k: v for k, v in body.items() if v is not ...}
    )


def wrong(code: str) -> str:
    return str((int(code) + 1) % 1_000_000).zfill(6)


async def test_login_returns_verifiable_tokens(app: Harness) -> None:
    code = await send_code(app)
    response = await exchange(app, code, audience=API, scope="openid profile email offline_access")
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["pragma"] == "no-cache"
    body = response.json()
    assert set(body) == {
        "access_token",
        "id_token",
        "refresh_token",
        "scope",
        "expires_in",
        "token_type",
    }
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 3600
    assert body["scope"] == "openid profile email offline_access"
    assert body["refresh_token"].startswith("v1.")

    jwks = (await app.client.get("/.well-known/jwks.json")).json()
    [key] = jwks["keys"]
    assert set(key) == {"kty", "n", "e", "kid", "alg", "use"}
    public = jwt.PyJWK(key).key

    id_header = jwt.get_unverified_header(body["id_token"])
    assert id_header == {"alg": "RS256", "typ": "JWT", "kid": key["kid"]}
    claims = jwt.decode(
        body["id_token"], public, algorithms=["RS256"], audience=NATIVE_ID, issuer=ISSUER
    )
    assert claims["sub"].startswith("email|") and len(claims["sub"]) == 30
    assert claims["email"] == EMAIL and claims["email_verified"] is True
    assert claims["name"] == EMAIL and claims["nickname"] == "ada"
    assert claims["picture"].startswith("https://s.gravatar.com/avatar/")
    assert claims["exp"] - claims["iat"] == 36000

    at_header = jwt.get_unverified_header(body["access_token"])
    assert at_header["typ"] == "at+jwt" and at_header["kid"] == key["kid"]
    access = jwt.decode(
        body["access_token"], public, algorithms=["RS256"], audience=API, issuer=ISSUER
    )
    assert access["aud"] == [API, ISSUER + "userinfo"]
    assert access["sub"] == claims["sub"]
    assert access["scope"] == "openid profile email offline_access"
    assert access["exp"] - access["iat"] == 3600

    info = await app.client.get(
        "/userinfo", headers={"authorization": f"Bearer {body['access_token']}"}
    )
    assert info.status_code == 200
    assert info.json()["sub"] == claims["sub"]
    assert info.json()["email"] == EMAIL


async def test_scopes_select_claims_and_refresh_needs_offline_access(app: Harness) -> None:
    response = await exchange(app, await send_code(app), scope="openid")
    body = response.json()
    assert "refresh_token" not in body
    claims = jwt.decode(body["id_token"], options={"verify_signature": False})
    assert "email" not in claims and "name" not in claims
    response = await exchange(app, await send_code(app), scope=None, audience=None)
    assert response.json().get("scope") == "openid", response.text
    no_offline = await exchange(
        app,
        await send_code(app),
        audience="https://no-offline.example",
        scope="openid offline_access",
    )
    assert no_offline.status_code == 200, no_offline.text
    assert "refresh_token" not in no_offline.json()
    assert no_offline.json()["scope"] == "openid"


async def test_three_wrong_guesses_kill_the_code(app: Harness) -> None:
    code = await send_code(app)
    for _ in range(3):
        response = await exchange(app, wrong(code))
        assert (response.status_code, response.json()) == (403, WRONG)
    response = await exchange(app, code)
    assert (response.status_code, response.json()) == (403, EXHAUSTED)
    [row] = await app.rows("SELECT attempts, consumed_at FROM challenges")
    assert row["attempts"] == 3 and row["consumed_at"] is None


async def test_two_wrong_then_right_works(app: Harness) -> None:
    code = await send_code(app)
    for _ in range(2):
        assert (await exchange(app, wrong(code))).status_code == 403
    assert (await exchange(app, code)).status_code == 200


async def test_only_the_latest_code_counts_and_only_once(app: Harness) -> None:
    first = await send_code(app)
    second = await send_code(app)
    if first != second:
        assert (await exchange(app, first)).json() == WRONG
    assert (await exchange(app, second)).status_code == 200
    assert (await exchange(app, second)).json() == WRONG


async def test_expiry_with_the_clock(app: Harness, clock: MovableClock) -> None:
    code = await send_code(app)
    clock.advance(181)
    response = await exchange(app, code)
    assert (response.status_code, response.json()) == (403, EXPIRED)


async def test_code_is_bound_to_realm_and_identity(app: Harness) -> None:
    code = await send_code(app)
    sms = await exchange(app, code, realm="sms", username="+15551234567")
    assert sms.json() == {
        "error": "invalid_grant",
        "error_description": "Wrong phone number or verification code.",
    }
    other = await exchange(app, code, username="eve@example.com")
    assert other.json() == WRONG
    assert (await exchange(app, code, username="ADA@example.com")).status_code == 200


async def test_identity_window_blocks_then_recovers(app: Harness, clock: MovableClock) -> None:
    for _ in range(4):  # 4 codes x 3 wrong guesses > 10 failures in the window
        code = await send_code(app)
        for _ in range(3):
            response = await exchange(app, wrong(code))
            if response.status_code == 429:
                break
    code = await send_code(app)
    blocked = await exchange(app, code)
    assert blocked.status_code == 429
    assert blocked.json()["error"] == "too_many_attempts"
    assert int(blocked.headers["retry-after"]) > 0
    clock.advance(15 * 60 + 1)
    code = await send_code(app)
    assert (await exchange(app, code)).status_code == 200


async def test_success_resets_the_identity_window(app: Harness) -> None:
    for _ in range(3):
        code = await send_code(app)
        for _ in range(3):
            await exchange(app, wrong(code))
    assert (await exchange(app, await send_code(app))).status_code == 200  # 9 failures, then ok
    for _ in range(3):
        code = await send_code(app)
        for _ in range(3):
            assert (await exchange(app, wrong(code))).status_code == 403
    assert (await exchange(app, await send_code(app))).status_code == 200


ERRORS: list[tuple[str, dict[str, Any], int, dict[str, Any]]] = [
    (
        "no grant_type",
        {"grant_type": ...},
        400,
        {"error": "invalid_request", "error_description": "Missing required parameter: grant_type"},
    ),
    (
        "unknown grant",
        {"grant_type": "password"},
        400,
        {
            "error": "unsupported_grant_type",
            "error_description": "Unsupported grant type: password",
        },
    ),
    (
        "no client_id",
        {"client_id": ...},
        400,
        {"error": "invalid_request", "error_description": "missing client_id parameter"},
    ),
    (
        "no username",
        {"username": None},
        400,
        {"error": "invalid_request", "error_description": "Missing required parameter: username"},
    ),
    (
        "no otp",
        {"otp": ...},
        400,
        {"error": "invalid_request", "error_description": "Missing required parameter: otp"},
    ),
    (
        "no realm",
        {"realm": ""},
        400,
        {"error": "invalid_request", "error_description": "Missing required parameter: realm"},
    ),
    (
        "unknown client",
        {"client_id": "nope"},
        403,
        {"error": "unauthorized_client", "error_description": "invalid client"},
    ),
    (
        "grant not allowed",
        {"client_id": "other-app-client-id"},
        403,
        {
            "error": "unauthorized_client",
            "error_description": (
                f"Grant type '{PASSWORDLESS_OTP_GRANT}' not allowed for the client."
            ),
            "error_uri": "https://auth0.com/docs/clients/client-grant-types",
        },
    ),
    (
        "unknown realm",
        {"realm": "fax"},
        400,
        {"error": "invalid_request", "error_description": "the connection was not found"},
    ),
    (
        "non-passwordless realm",
        {"realm": "legacy-db"},
        400,
        {"error": "invalid_request", "error_description": "the connection was not found"},
    ),
    (
        "confidential without secret",
        {"client_id": WEB_ID},
        401,
        {"error": "access_denied", "error_description": "Unauthorized"},
    ),
    (
        "unknown audience",
        {"audience": "https://nope.example"},
        403,
        {"error": "access_denied", "error_description": "Service not found: https://nope.example"},
    ),
    (
        "scope of a wrong type",
        {"scope": 5},
        400,
        {"error": "invalid_scope", "error_description": "Scope must be an array or a string"},
    ),
]


@pytest.mark.parametrize(
    ("case", "override", "status", "expected"), ERRORS, ids=[e[0] for e in ERRORS]
)
async def test_error_bodies(
    app: Harness, case: str, override: dict[str, Any], status: int, expected: dict[str, Any]
) -> None:
    code = await send_code(app)
    response = await exchange(app, code, **override)
    assert response.status_code == status, response.text
    assert response.json() == expected
    assert response.headers["cache-control"] == "no-store"
    [row] = await app.rows("SELECT attempts, consumed_at FROM challenges")
    assert (row["attempts"], row["consumed_at"]) == (0, None), "the code must be untouched"


async def test_form_body_and_basic_auth(app: Harness) -> None:
    code = await send_code(app, client_id=WEB_ID, client_secret=WEB_SECRET)
    response = await app.client.post(
        "/oauth/token",
        data={
            "grant_type": PASSWORDLESS_OTP_GRANT,
            "username": EMAIL,
            "otp": code,
            "realm": "email",
        },
        auth=(WEB_ID, WEB_SECRET),
    )
    assert response.status_code == 200, response.text


async def test_audit_events(app: Harness) -> None:
    code = await send_code(app)
    await exchange(app, wrong(code))
    await exchange(app, code)
    code = await send_code(app)
    await exchange(app, code)
    types = [r["type"] for r in await app.rows("SELECT type FROM audit_events ORDER BY id")]
    assert types == ["cls", "fp", "fepotpft", "ss", "s", "cls", "s"]
    [user] = await app.rows("SELECT * FROM users")
    assert user["logins_count"] == 2
    assert user["last_ip"] == "203.0.113.7"


async def test_disable_signup_fails_like_a_wrong_code(database_url: str) -> None:
    cfg = config()
    cfg["connections"][0]["options"] = {"disable_signup": True}
    async with running_app(database_url, cfg) as app:
        response = await app.start(
            {"client_id": NATIVE_ID, "connection": "email", "email": EMAIL, "send": "code"}
        )
        assert response.status_code == 200
        assert await app.count("outbox_messages") == 0
        for guess in ("000000", "123456", "999999"):
            assert (await exchange(app, guess)).json() == WRONG
        assert await app.count("users") == 0
