"""Whole logins with unmodified auth0-python against a live ``nopass serve``.

start (``Passwordless``) → code from the real SMTP sink / SMS gateway → ``/oauth/token``
(``GetToken.passwordless_login``) → ID token checked by auth0-python's own ``TokenVerifier``
against our JWKS → ``/userinfo`` (``Users.userinfo``) → ``GetToken.refresh_token``.

The tenant answers on the bare host ``127.0.0.1:PORT``: its issuer is ``https://127.0.0.1:PORT/``
while the SDK talks HTTP (``protocol="http"``) and fetches the JWKS from the HTTP URL.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from auth0.authentication import GetToken, Passwordless, Users
from auth0.authentication.exceptions import Auth0Error
from auth0.authentication.token_verifier import AsymmetricSignatureVerifier, TokenVerifier

from tests.support.config import JWT_ID, NATIVE_ID, WEB_ID, WEB_SECRET
from tests.support.harness import prepare_database
from tests.support.live import LiveServer, live_server, nopass_cli, nopass_env
from tests.support.services import free_port
from tests.support.sms_gateway import Gateway
from tests.support.smtp import SmtpSink
from tests.support.tokens import (
    API,
    API_LIFETIME,
    KeyPair,
    claims_of,
    email_code,
    generate_keypair,
    header_of,
    jwks_of,
    login_config,
    mails_to,
    otp_body,
    sms_code,
    verify_with,
)

pytestmark = pytest.mark.slow

T = TypeVar("T")
FULL_SCOPE = "openid profile email offline_access"
EMAIL_SUB = re.compile(r"^email\|[0-9a-f]{24}$")
SMS_SUB = re.compile(r"^sms\|[0-9a-f]{24}$")
WRONG_EMAIL = "Wrong email or verification code."
WRONG_PHONE = "Wrong phone number or verification code."
MAXED = "You've reached the maximum number of attempts. Please try to login again."
BAD_REFRESH = "Unknown or invalid refresh token."


@pytest.fixture(scope="module")
def keys() -> KeyPair:
    return generate_keypair()


@pytest.fixture
async def server(
    database_url: str, smtp_sink: SmtpSink, gateway: Gateway, keys: KeyPair, tmp_path: Path
) -> AsyncIterator[LiveServer]:
    port = free_port()
    config = login_config(
        f"127.0.0.1:{port}",
        smtp_port=smtp_sink.port,
        gateway_url=gateway.url,
        public_key_pem=keys.public_pem,
    )
    await prepare_database(database_url, config)
    with live_server(nopass_env(database_url), tmp_path, port=port) as live:
        yield live


async def call(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """auth0-python is synchronous (requests): keep it off the event loop."""
    return await asyncio.to_thread(fn, *args, **kwargs)


def issuer(server: LiveServer) -> str:
    return f"https://{server.domain}/"


def id_verifier(server: LiveServer, client_id: str) -> TokenVerifier:
    jwks_url = f"{server.url}/.well-known/jwks.json"
    return TokenVerifier(
        signature_verifier=AsymmetricSignatureVerifier(jwks_url),
        issuer=issuer(server),
        audience=client_id,
    )


async def verified_id_token(server: LiveServer, client_id: str, token: str) -> dict[str, Any]:
    payload: dict[str, Any] = await call(id_verifier(server, client_id).verify, token)
    assert header_of(token)["typ"] == "JWT"
    assert header_of(token)["alg"] == "RS256"
    return payload


async def sdk_email_code(
    server: LiveServer,
    sink: SmtpSink,
    email: str,
    client_id: str = NATIVE_ID,
    *,
    client_secret: str | None = None,
    signing_key: str | None = None,
) -> str:
    seen = mails_to(sink, email)
    start = Passwordless(
        server.domain,
        client_id,
        client_secret=client_secret,
        client_assertion_signing_key=signing_key,
        protocol="http",
    )
    answer = await call(start.email, email, send="code")
    assert answer["email"] == email.lower()
    assert answer["email_verified"] is False
    assert re.fullmatch(r"[0-9a-f]{24}", answer["_id"])
    return await email_code(sink, email.lower(), seen)


def wrong(code: str) -> str:
    return f"{(int(code) + 1) % 1_000_000:06d}"


async def test_email_login_userinfo_and_rotating_refresh(
    server: LiveServer, smtp_sink: SmtpSink
) -> None:
    code = await sdk_email_code(server, smtp_sink, "Ada@Example.com")
    get_token = GetToken(server.domain, NATIVE_ID, protocol="http")
    tokens = await call(
        get_token.passwordless_login,
        username="ada@example.com",
        otp=code,
        realm="email",
        scope=FULL_SCOPE,
        audience=API,
    )
    assert tokens["token_type"] == "Bearer"
    assert tokens["scope"] == FULL_SCOPE
    assert tokens["expires_in"] == API_LIFETIME
    assert tokens["refresh_token"].startswith("v1.")

    identity = await verified_id_token(server, NATIVE_ID, tokens["id_token"])
    assert EMAIL_SUB.match(identity["sub"])
    assert identity["iss"] == issuer(server)
    assert identity["aud"] == NATIVE_ID
    assert identity["email"] == "ada@example.com"
    assert identity["email_verified"] is True
    assert identity["name"] == "ada@example.com"
    assert identity["nickname"] == "ada"
    assert identity["picture"].startswith("https://s.gravatar.com/avatar/")
    assert identity["exp"] - identity["iat"] == 36000
    assert "phone_number" not in identity

    # The access token is an RS256 at+jwt for the API and /userinfo, signed by a JWKS key.
    async with httpx.AsyncClient(base_url=server.url) as http:
        jwks = await jwks_of(http)
    assert header_of(tokens["access_token"])["typ"] == "at+jwt"
    access = verify_with(tokens["access_token"], jwks, audience=API, issuer=issuer(server))
    assert access["aud"] == [API, issuer(server) + "userinfo"]
    assert access["sub"] == identity["sub"]
    assert access["azp"] == NATIVE_ID
    assert access["scope"] == FULL_SCOPE
    assert access["exp"] - access["iat"] == API_LIFETIME

    users = Users(server.domain, protocol="http")
    profile = await call(users.userinfo, tokens["access_token"])
    assert profile["sub"] == identity["sub"]
    assert profile["email"] == "ada@example.com"
    assert profile["email_verified"] is True
    assert profile["nickname"] == "ada"
    assert "phone_number" not in profile

    # Rotating refresh: a new access token and a new refresh token, the ID token again valid.
    refreshed = await call(get_token.refresh_token, tokens["refresh_token"])
    assert refreshed["refresh_token"].startswith("v1.")
    assert refreshed["refresh_token"] != tokens["refresh_token"]
    assert refreshed["access_token"] != tokens["access_token"]
    assert refreshed["scope"] == FULL_SCOPE
    assert refreshed["expires_in"] == API_LIFETIME
    again = await verified_id_token(server, NATIVE_ID, refreshed["id_token"])
    assert again["sub"] == identity["sub"]
    assert again["email"] == "ada@example.com"
    assert (await call(users.userinfo, refreshed["access_token"]))["sub"] == identity["sub"]

    # Replaying the rotated-out token is refused and revokes its whole family.
    with pytest.raises(Auth0Error) as caught:
        await call(get_token.refresh_token, tokens["refresh_token"])
    assert (caught.value.status_code, caught.value.error_code) == (403, "invalid_grant")
    assert caught.value.message == BAD_REFRESH
    with pytest.raises(Auth0Error) as caught:
        await call(get_token.refresh_token, refreshed["refresh_token"])
    assert (caught.value.status_code, caught.value.error_code) == (403, "invalid_grant")


async def test_sms_login_phone_claims_and_refresh(server: LiveServer, gateway: Gateway) -> None:
    phone = "+15557654321"
    answer = await call(Passwordless(server.domain, NATIVE_ID, protocol="http").sms, phone)
    assert answer["phone_number"] == phone
    get_token = GetToken(server.domain, NATIVE_ID, protocol="http")
    scope = "openid phone offline_access"
    tokens = await call(
        get_token.passwordless_login,
        username=phone,
        otp=sms_code(gateway, phone),
        realm="sms",
        scope=scope,
        audience=API,
    )
    assert tokens["scope"] == scope
    identity = await verified_id_token(server, NATIVE_ID, tokens["id_token"])
    assert SMS_SUB.match(identity["sub"])
    assert identity["phone_number"] == phone
    assert identity["phone_verified"] is True
    assert not {"email", "email_verified", "name", "nickname"} & identity.keys()

    users = Users(server.domain, protocol="http")
    profile = await call(users.userinfo, tokens["access_token"])
    assert profile == {"sub": identity["sub"], "phone_number": phone, "phone_verified": True}

    refreshed = await call(get_token.refresh_token, tokens["refresh_token"])
    assert refreshed["refresh_token"] not in (None, tokens["refresh_token"])
    again = await verified_id_token(server, NATIVE_ID, refreshed["id_token"])
    assert (again["sub"], again["phone_number"]) == (identity["sub"], phone)
    assert await call(users.userinfo, refreshed["access_token"]) == profile


async def test_web_app_with_its_secret_in_the_body(server: LiveServer, smtp_sink: SmtpSink) -> None:
    email = "web@example.com"
    code = await sdk_email_code(server, smtp_sink, email, WEB_ID, client_secret=WEB_SECRET)
    without = GetToken(server.domain, WEB_ID, protocol="http")
    wrong_secret = GetToken(server.domain, WEB_ID, client_secret="x" * 32, protocol="http")
    for unauthenticated in (without, wrong_secret):
        with pytest.raises(Auth0Error) as caught:
            await call(unauthenticated.passwordless_login, email, code, "email", "openid", None)
        assert (caught.value.status_code, caught.value.error_code) == (401, "access_denied")
        assert caught.value.message == "Unauthorized"

    # The code survived the refused attempts (client authentication comes first).
    get_token = GetToken(server.domain, WEB_ID, client_secret=WEB_SECRET, protocol="http")
    tokens = await call(get_token.passwordless_login, email, code, "email", "openid email", None)
    assert "refresh_token" not in tokens
    assert tokens["expires_in"] == 86400
    identity = await verified_id_token(server, WEB_ID, tokens["id_token"])
    assert identity["email"] == email
    assert claims_of(tokens["access_token"])["aud"] == issuer(server) + "userinfo"
    profile = await call(Users(server.domain, protocol="http").userinfo, tokens["access_token"])
    assert profile["sub"] == identity["sub"]
    assert "nickname" not in profile  # no profile scope

    # Non-rotating refresh tokens (the Web App default) are reusable and never replaced.
    code = await sdk_email_code(server, smtp_sink, email, WEB_ID, client_secret=WEB_SECRET)
    tokens = await call(get_token.passwordless_login, email, code, "email", FULL_SCOPE, API)
    for _ in range(2):
        refreshed = await call(get_token.refresh_token, tokens["refresh_token"])
        assert "refresh_token" not in refreshed
        assert (await verified_id_token(server, WEB_ID, refreshed["id_token"]))["sub"] == (
            identity["sub"]
        )
    with pytest.raises(Auth0Error) as caught:
        await call(without.refresh_token, tokens["refresh_token"])
    assert caught.value.status_code == 401


async def test_web_app_with_http_basic(server: LiveServer, smtp_sink: SmtpSink) -> None:
    email = "basic@example.com"
    code = await sdk_email_code(server, smtp_sink, email, WEB_ID, client_secret=WEB_SECRET)
    body = otp_body(email, code, client_id=WEB_ID, scope=FULL_SCOPE)
    async with httpx.AsyncClient(base_url=server.url) as http:
        refused = {
            "wrong secret": await http.post(
                "/oauth/token", json=body, auth=(WEB_ID, "not-the-secret-0123456789")
            ),
            "another client": await http.post(
                "/oauth/token", json=body, auth=(NATIVE_ID, WEB_SECRET)
            ),
            "two secrets": await http.post(
                "/oauth/token",
                json={**body, "client_secret": "x" * 32},
                auth=(WEB_ID, WEB_SECRET),
            ),
        }
        for case, response in refused.items():
            assert response.status_code == 401, case
            assert response.json() == {
                "error": "access_denied",
                "error_description": "Unauthorized",
            }, case

        no_id = {k: v for k, v in body.items() if k != "client_id"}  # the id from Basic only
        response = await http.post("/oauth/token", json=no_id, auth=(WEB_ID, WEB_SECRET))
        assert response.status_code == 200, response.text
        assert response.headers["cache-control"] == "no-store"
        assert response.headers["pragma"] == "no-cache"
        tokens = response.json()
        identity = await verified_id_token(server, WEB_ID, tokens["id_token"])
        assert identity["email"] == email

        refreshed = await http.post(
            "/oauth/token",
            data={"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]},
            auth=(WEB_ID, WEB_SECRET),
        )  # form-encoded, as Auth0 documents it
        assert refreshed.status_code == 200, refreshed.text
        again = await verified_id_token(server, WEB_ID, refreshed.json()["id_token"])
        assert again["sub"] == identity["sub"]


async def test_jwt_app_with_private_key_jwt(
    server: LiveServer, smtp_sink: SmtpSink, keys: KeyPair
) -> None:
    email = "jwt@example.com"
    code = await sdk_email_code(server, smtp_sink, email, JWT_ID, signing_key=keys.private_pem)
    unauthenticated = GetToken(server.domain, JWT_ID, protocol="http")
    with pytest.raises(Auth0Error) as caught:
        await call(unauthenticated.passwordless_login, email, code, "email", "openid", None)
    assert (caught.value.status_code, caught.value.error_code) == (401, "access_denied")

    get_token = GetToken(
        server.domain, JWT_ID, client_assertion_signing_key=keys.private_pem, protocol="http"
    )
    tokens = await call(get_token.passwordless_login, email, code, "email", FULL_SCOPE, API)
    identity = await verified_id_token(server, JWT_ID, tokens["id_token"])
    assert EMAIL_SUB.match(identity["sub"])
    assert identity["email"] == email
    profile = await call(Users(server.domain, protocol="http").userinfo, tokens["access_token"])
    assert profile["sub"] == identity["sub"]

    refreshed = await call(get_token.refresh_token, tokens["refresh_token"])  # a fresh jti
    again = await verified_id_token(server, JWT_ID, refreshed["id_token"])
    assert again["sub"] == identity["sub"]


async def test_wrong_codes_through_the_sdk(
    server: LiveServer, smtp_sink: SmtpSink, gateway: Gateway
) -> None:
    get_token = GetToken(server.domain, NATIVE_ID, protocol="http")
    email = "guess@example.com"
    code = await sdk_email_code(server, smtp_sink, email)
    for _ in range(3):
        with pytest.raises(Auth0Error) as caught:
            await call(get_token.passwordless_login, email, wrong(code), "email", "openid", None)
        assert (caught.value.status_code, caught.value.error_code) == (403, "invalid_grant")
        assert caught.value.message == WRONG_EMAIL
    with pytest.raises(Auth0Error) as caught:  # three strikes: even the right code is dead
        await call(get_token.passwordless_login, email, code, "email", "openid", None)
    assert (caught.value.status_code, caught.value.error_code) == (403, "invalid_grant")
    assert caught.value.message == MAXED

    # A fresh code works, once; a code is bound to its identity.
    code = await sdk_email_code(server, smtp_sink, email)
    with pytest.raises(Auth0Error) as caught:
        await call(get_token.passwordless_login, "other@example.com", code, "email", None, None)
    assert (caught.value.status_code, caught.value.message) == (403, WRONG_EMAIL)
    tokens = await call(get_token.passwordless_login, email, code, "email", "openid", None)
    assert (await verified_id_token(server, NATIVE_ID, tokens["id_token"]))["sub"]
    with pytest.raises(Auth0Error) as caught:
        await call(get_token.passwordless_login, email, code, "email", "openid", None)
    assert (caught.value.status_code, caught.value.message) == (403, WRONG_EMAIL)

    phone = "+15550002222"
    await call(Passwordless(server.domain, NATIVE_ID, protocol="http").sms, phone)
    with pytest.raises(Auth0Error) as caught:
        await call(
            get_token.passwordless_login, phone, wrong(sms_code(gateway, phone)), "sms", None, None
        )
    assert (caught.value.status_code, caught.value.error_code) == (403, "invalid_grant")
    assert caught.value.message == WRONG_PHONE


def json_lines(stdout: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stdout.splitlines() if line.strip()]


async def test_cli_lists_the_user_and_the_logins(
    server: LiveServer, smtp_sink: SmtpSink, database_url: str, tmp_path: Path
) -> None:
    email = "listed@example.com"
    get_token = GetToken(server.domain, NATIVE_ID, protocol="http")
    subjects = []
    for _ in range(2):
        code = await sdk_email_code(server, smtp_sink, email)
        tokens = await call(get_token.passwordless_login, email, code, "email", "openid", None)
        subjects.append(claims_of(tokens["id_token"])["sub"])
    assert subjects[0] == subjects[1]  # the second login finds the same user
    sub = subjects[0]

    env = nopass_env(database_url)
    result = await call(nopass_cli, "users", "--tenant", "acme", env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    [user] = json_lines(result.stdout)
    assert user["user_id"] == sub
    assert EMAIL_SUB.match(user["user_id"])
    assert user["email"] == email
    assert user["email_verified"] is True
    assert user["logins_count"] == 2
    assert user["last_ip"] == "127.0.0.1"
    assert user["last_login"] is not None
    assert user["identities"] == [
        {
            "user_id": sub.removeprefix("email|"),
            "provider": "email",
            "connection": "email",
            "isSocial": False,
        }
    ]

    result = await call(
        nopass_cli, "logs", "--tenant", "acme", "--type", "s", env=env, cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    events = json_lines(result.stdout)
    assert len(events) == 2
    for event in events:
        assert event["type"] == "s"
        assert event["user_id"] == sub
        assert event["user_name"] == email
        assert event["client_id"] == NATIVE_ID
        assert event["connection"] == "email"
        assert event["ip"] == "127.0.0.1"
        assert event["user_agent"].startswith("Python/")
    result = await call(
        nopass_cli, "logs", "--tenant", "acme", "--type", "ss", env=env, cwd=tmp_path
    )
    assert [e["user_id"] for e in json_lines(result.stdout)] == [sub]  # one signup
