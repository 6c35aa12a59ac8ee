"""An administrator-blocked user on the wire, every sign-in path, on both databases: Auth0's
``401 {"error":"unauthorized","error_description":"user is blocked"}`` on ``/oauth/token`` (OTP,
refresh and code grants) and ``/passwordless/verify`` (docs/specs/auth0-wire.md §3.5, §5.1),
``403 blocked_user`` on ``/co/authenticate`` (§5.2), ``error=unauthorized`` back to the client
from the magic link and from ``/authorize`` answering from a session, and the hosted page's own
message. A refused right code is not consumed; nothing is written but the audit event."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from nopass.core.keyring import Keyring
from nopass.core.models import PASSWORDLESS_OTP_GRANT
from nopass.store.unit_of_work import SqlUnitOfWork
from tests.api.test_login_page import (
    alert_of,
    authorize_url,
    callback_params,
    code_page,
    pkce,
    submit_code,
)
from tests.api.test_magic_link import send_link
from tests.support.clock import MovableClock
from tests.support.config import NATIVE_ID
from tests.support.harness import TEST_SECRET, Harness, running_app
from tests.support.spa import (
    APP,
    EMAIL,
    SPA_ID,
    config,
    otp_grant,
    send_code,
)

USER_BLOCKED = {"error": "unauthorized", "error_description": "user is blocked"}
CALLBACK = "https://app.acme.example/callback"


@pytest.fixture
async def app(database_url: str) -> AsyncIterator[Harness]:
    async with running_app(database_url, config(), clock=MovableClock()) as harness:
        yield harness


async def set_blocked(app: Harness, blocked: bool = True) -> str:
    """Block (or unblock) ada through ``UserRepo.set_blocked``: her user id."""
    [row] = await app.rows("SELECT tenant_id, user_id FROM users")
    async with SqlUnitOfWork(app.engine, Keyring([TEST_SECRET.encode()])) as work:
        user = await work.users.set_blocked(
            row["tenant_id"], row["user_id"], blocked, now=datetime.now(UTC)
        )
        await work.commit()
    assert user is not None
    return str(row["user_id"])


async def signed_up(app: Harness, **body: Any) -> dict[str, Any]:
    """ada signs in once with the OTP grant (``body`` adds to it): the token response."""
    code = await send_code(app)
    response = await otp_grant(app, code) if not body else await otp(app, code, **body)
    assert response.status_code == 200, response.text
    tokens: dict[str, Any] = response.json()
    return tokens


async def otp(app: Harness, code: str, **body: Any) -> httpx.Response:
    values = {
        "grant_type": PASSWORDLESS_OTP_GRANT,
        "client_id": NATIVE_ID,
        "username": EMAIL,
        "otp": code,
        "realm": "email",
        **body,
    }
    return await app.client.post("/oauth/token", json=values)


async def state(app: Harness) -> dict[str, Any]:
    """What a refused sign-in must leave as it was."""
    return {
        "challenges": await app.rows("SELECT id, attempts, consumed_at FROM challenges"),
        "users": await app.rows("SELECT user_id, logins_count, last_login, blocked FROM users"),
        "failures": await app.count("failure_windows"),
        "refresh": await app.rows("SELECT id, rotated_at, revoked_at FROM refresh_tokens"),
        "sessions": await app.count("sessions"),
        "codes": await app.count("authorization_codes"),
        "tickets": await app.count("login_tickets"),
    }


async def last_event(app: Harness) -> tuple[str, str]:
    rows = await app.rows("SELECT type, description FROM audit_events ORDER BY id")
    return rows[-1]["type"], rows[-1]["description"]


async def refused_quietly(app: Harness, before: dict[str, Any], events: int) -> None:
    assert await state(app) == before
    assert await app.count("audit_events") == events + 1
    assert await last_event(app) == ("f", "user is blocked")


# ------------------------------------------------------------------- the JSON endpoints


async def test_the_otp_grant_answers_401_user_is_blocked(app: Harness) -> None:
    await signed_up(app)
    await set_blocked(app)
    code = await send_code(app)
    before, events = await state(app), await app.count("audit_events")
    response = await otp_grant(app, code)
    assert (response.status_code, response.json()) == (401, USER_BLOCKED)
    assert response.headers["cache-control"] == "no-store"
    await refused_quietly(app, before, events)
    await set_blocked(app, False)
    assert (await otp_grant(app, code)).status_code == 200  # the code stayed usable


async def test_passwordless_verify_answers_401_user_is_blocked(app: Harness) -> None:
    await signed_up(app)
    await set_blocked(app)
    code = await send_code(app)
    before, events = await state(app), await app.count("audit_events")
    body = {"connection": "email", "email": EMAIL, "verification_code": code, "client_id": SPA_ID}
    response = await app.client.post("/passwordless/verify", json=body)
    assert (response.status_code, response.json()) == (401, USER_BLOCKED)
    await refused_quietly(app, before, events)


async def test_cross_origin_authentication_answers_403_blocked_user(app: Harness) -> None:
    await signed_up(app)
    await set_blocked(app)
    code = await send_code(app)
    before, events = await state(app), await app.count("audit_events")
    body = {
        "client_id": SPA_ID,
        "username": EMAIL,
        "otp": code,
        "realm": "email",
        "credential_type": PASSWORDLESS_OTP_GRANT,
    }
    response = await app.client.post("/co/authenticate", json=body, headers={"origin": APP})
    assert response.status_code == 403
    assert response.json() == {"error": "blocked_user", "error_description": "Blocked user"}
    assert response.headers["access-control-allow-origin"] == APP
    await refused_quietly(app, before, events)


async def test_the_refresh_grant_answers_401_and_keeps_the_token(app: Harness) -> None:
    tokens = await signed_up(app, scope="openid offline_access")
    await set_blocked(app)
    before = await state(app)
    body = {
        "grant_type": "refresh_token",
        "client_id": NATIVE_ID,
        "refresh_token": tokens["refresh_token"],
    }
    response = await app.client.post("/oauth/token", json=body)
    assert (response.status_code, response.json()) == (401, USER_BLOCKED)
    assert await state(app) == before
    assert await last_event(app) == ("fertft", "user is blocked")
    await set_blocked(app, False)
    assert (await app.client.post("/oauth/token", json=body)).status_code == 200


# -------------------------------------------------------------------- the browser paths


async def test_the_hosted_page_shows_its_own_message(app: Harness) -> None:
    await signed_up(app)
    await set_blocked(app)
    html, _ = await code_page(app)  # the page sent ada a code
    before, events = await state(app), await app.count("audit_events")
    refused = await submit_code(app, html, await app.code_for(EMAIL))
    assert refused.status_code == 401
    assert alert_of(refused.text) == "This account is blocked. Contact the administrator."
    assert "nopass_session" not in refused.headers.get("set-cookie", "")
    await refused_quietly(app, before, events)


async def test_the_magic_link_goes_back_with_error_unauthorized(app: Harness) -> None:
    await signed_up(app)
    await set_blocked(app)
    _, challenge = pkce()
    link = await send_link(app, code_challenge=challenge, code_challenge_method="S256")
    before, events = await state(app), await app.count("audit_events")
    posted = await app.client.post(
        "/passwordless/verify_redirect",
        content=urlsplit(link).query,
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert posted.status_code == 303
    location = posted.headers["location"]
    assert location.startswith(CALLBACK + "?")
    assert "error=unauthorized&error_description=user%20is%20blocked" in location
    assert parse_qs(urlsplit(location).query)["state"] == ["st 1"]
    assert "nopass_session" not in posted.headers.get("set-cookie", "")
    await refused_quietly(app, before, events)


async def test_a_session_and_its_codes_stop_working_once_blocked(app: Harness) -> None:
    html, verifier = await code_page(app)
    signed_in = await submit_code(app, html, await app.code_for(EMAIL))
    [code] = callback_params(signed_in)["code"]
    user_id = await set_blocked(app)
    token = await app.client.post(
        "/oauth/token",
        json={
            "grant_type": "authorization_code",
            "client_id": NATIVE_ID,
            "code": code,
            "redirect_uri": CALLBACK,
            "code_verifier": verifier,
        },
    )
    assert (token.status_code, token.json()) == (401, USER_BLOCKED)
    assert await last_event(app) == ("feacft", "user is blocked")
    for prompt in ({}, {"prompt": "none"}):
        again = await app.client.get(authorize_url(pkce()[1], **prompt))
        assert again.status_code in (302, 303), again.text
        location = again.headers["location"]
        assert location.startswith(CALLBACK + "?")
        assert "error=unauthorized&error_description=user%20is%20blocked" in location
        assert parse_qs(urlsplit(location).query)["state"] == ["st-1"]
        rows = await app.rows("SELECT type, description, user_id FROM audit_events ORDER BY id")
        assert rows[-1] == {"type": "f", "description": "user is blocked", "user_id": user_id}
    assert await app.count("authorization_codes") == 1  # only the one from before
