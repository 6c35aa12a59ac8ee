"""``POST /passwordless/verify``: checks a code without consuming it, failures count
(docs/specs/auth0-wire.md §5.1, §12.10)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from tests.support.clock import MovableClock
from tests.support.config import NATIVE_ID, WEB_ID
from tests.support.harness import Harness, running_app
from tests.support.spa import (
    EMAIL,
    EXHAUSTED,
    EXPIRED,
    PHONE,
    WRONG_EMAIL,
    config,
    error,
    events,
    otp_grant,
    send_code,
    wrong,
)


@pytest.fixture
def clock() -> MovableClock:
    return MovableClock()


@pytest.fixture
async def app(database_url: str, clock: MovableClock) -> AsyncIterator[Harness]:
    async with running_app(database_url, config(), clock=clock) as harness:
        yield harness


async def verify(app: Harness, code: str, **overrides: Any) -> httpx.Response:
    body: dict[str, Any] = {
        "connection": "email",
        "email": EMAIL,
        "verification_code": code,
        "client_id": NATIVE_ID,
    }
    body.update(overrides)
    return await app.client.post(
        "/passwordless/verify", json={k: v for k, v in body.items() if v is not ...}
    )


def invalid_user_password(text: str) -> tuple[int, dict[str, str]]:
    return 401, {"error": "invalid_user_password", "error_description": text}


async def test_verify_checks_without_consuming(app: Harness) -> None:
    code = await send_code(app, client_id=NATIVE_ID)
    for _ in range(4):
        response = await verify(app, code)
        assert (response.status_code, response.json()) == (200, {})
    [row] = await app.rows("SELECT attempts, consumed_at FROM challenges")
    assert (row["attempts"], row["consumed_at"]) == (0, None)
    assert (await otp_grant(app, code)).status_code == 200


async def test_verify_alternative_and_form_bodies(app: Harness) -> None:
    code = await send_code(app, client_id=NATIVE_ID)
    alternative = {
        "grant_type": "password",
        "username": EMAIL,
        "password": code,
        "connection": "email",
        "scope": "openid",
        "client_id": NATIVE_ID,
    }
    assert (await app.client.post("/passwordless/verify", json=alternative)).json() == {}
    form = await app.client.post("/passwordless/verify", data=alternative)
    assert (form.status_code, form.json()) == (200, {})


async def test_verify_wrong_guesses_count_toward_three(app: Harness) -> None:
    code = await send_code(app, client_id=NATIVE_ID)
    assert error(await verify(app, wrong(code))) == invalid_user_password(WRONG_EMAIL)
    assert (await verify(app, code)).status_code == 200
    assert error(await verify(app, wrong(code))) == invalid_user_password(WRONG_EMAIL)
    assert (await otp_grant(app, wrong(code))).status_code == 403  # the third wrong guess
    assert error(await verify(app, code)) == invalid_user_password(EXHAUSTED)
    assert (await otp_grant(app, code)).json()["error_description"] == EXHAUSTED
    assert (await events(app)).count("fp") == 5  # 2 verify, 1 grant, then verify and grant


async def test_verify_expired_sms_and_window(app: Harness, clock: MovableClock) -> None:
    code = await send_code(app, client_id=NATIVE_ID)
    clock.advance(181)
    assert error(await verify(app, code)) == invalid_user_password(EXPIRED)

    code = await send_code(app, PHONE, client_id=NATIVE_ID)
    response = await verify(app, wrong(code), connection="sms", email=..., phone_number=PHONE)
    assert error(response) == invalid_user_password("Wrong phone number or verification code.")

    for _ in range(4):
        await verify(app, wrong(code), connection="sms", email=..., phone_number=PHONE)
    blocked = await verify(app, code, connection="sms", email=..., phone_number=PHONE)
    assert blocked.status_code == 429
    assert blocked.json()["error"] == "too_many_attempts"


@pytest.mark.parametrize(
    ("change", "status", "body"),
    [
        ({"client_id": ...}, 400, ("invalid_request", "missing client_id parameter")),
        ({"connection": ...}, 400, ("invalid_request", "missing connection parameter")),
        ({"email": ...}, 400, ("invalid_request", "missing username parameter")),
        ({"verification_code": ...}, 400, ("invalid_request", "missing password parameter")),
        ({"connection": "nope"}, 400, ("invalid_request", "the connection was not found")),
        ({"connection": "legacy-db"}, 400, ("invalid_request", "the connection was not found")),
        (
            {"client_id": "other-app-client-id"},
            400,
            ("invalid_request", "the connection was disabled"),
        ),
        ({"client_id": "no-such-client"}, 403, ("unauthorized_client", "invalid client")),
        ({"client_id": WEB_ID}, 401, ("access_denied", "Unauthorized")),
    ],
)
async def test_verify_errors(
    app: Harness, change: dict[str, Any], status: int, body: tuple[str, str]
) -> None:
    response = await verify(app, "123456", **change)
    assert error(response) == (status, {"error": body[0], "error_description": body[1]})
