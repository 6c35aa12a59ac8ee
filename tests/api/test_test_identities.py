"""Test identities (docs/specs/interface.md ``test_identities``, docs/specs/security.md §6): a fixed
code for app-store review and CI. It is stored as an HMAC like any code, nothing is sent, the send
limits and SMS controls do not apply, every use is audited, and after ``expires_at`` the
identity is an ordinary one."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import httpx
import pytest

from nopass.core.models import PASSWORDLESS_OTP_GRANT
from tests.support.clock import MovableClock
from tests.support.config import NATIVE_ID, tenant_config
from tests.support.harness import Harness, running_app
from tests.support.sms_gateway import Gateway

ORIGIN = "http://127.0.0.1:8123"
REVIEWER = "review@example.com"
REVIEW_PHONE = "+15005550006"
EMAIL_CODE = "424242"
SMS_CODE = "13579246"


def config(gateway: Gateway, clock: MovableClock) -> dict[str, Any]:
    sms = {
        "provider": "sms_gateway",
        "gateway_url": gateway.url,
        "template": "@@password@@ is your code",
        "allowed_countries": ["GB"],  # the test number is in the US: not a problem
    }
    cfg = tenant_config(ORIGIN, sms=sms)
    expires = (clock.now() + timedelta(hours=1)).isoformat().replace("+00:00", "Z")
    cfg["tenant"]["test_identities"] = [
        {
            "connection": "email",
            "identifier": "Review@Example.COM",
            "code": EMAIL_CODE,
            "expires_at": expires,
        },
        {"connection": "sms", "identifier": REVIEW_PHONE, "code": SMS_CODE, "expires_at": expires},
    ]
    return cfg


@pytest.fixture
def clock() -> MovableClock:
    return MovableClock()


@pytest.fixture
async def app(database_url: str, gateway: Gateway, clock: MovableClock) -> AsyncIterator[Harness]:
    async with running_app(database_url, config(gateway, clock), clock=clock) as harness:
        yield harness


async def start_email(app: Harness, email: str = REVIEWER) -> httpx.Response:
    body = {"client_id": NATIVE_ID, "connection": "email", "email": email, "send": "code"}
    return await app.start(body)


async def start_sms(app: Harness) -> httpx.Response:
    body = {"client_id": NATIVE_ID, "connection": "sms", "phone_number": REVIEW_PHONE}
    return await app.start(body)


async def otp(app: Harness, username: str, code: str, realm: str = "email") -> httpx.Response:
    return await app.client.post(
        "/oauth/token",
        json={
            "grant_type": PASSWORDLESS_OTP_GRANT,
            "client_id": NATIVE_ID,
            "username": username,
            "otp": code,
            "realm": realm,
        },
    )


async def events(app: Harness) -> list[tuple[str, dict[str, Any]]]:
    rows = await app.rows("SELECT type, details FROM audit_events ORDER BY id")
    return [
        (r["type"], json.loads(r["details"]) if isinstance(r["details"], str) else r["details"])
        for r in rows
    ]


async def test_email_fixed_code_sends_nothing_and_skips_send_limits(app: Harness) -> None:
    for _ in range(8):  # more than 5 per 10 minutes
        response = await start_email(app)
        assert response.status_code == 200, response.text
        assert response.json()["email"] == REVIEWER
    assert await app.count("outbox_messages") == 0, "nothing sent"
    [row] = await app.rows("SELECT code_hmac FROM challenges WHERE voided_at IS NULL")
    assert len(row["code_hmac"]) == 64 and EMAIL_CODE not in row["code_hmac"]
    starts = await events(app)
    assert [t for t, _ in starts] == ["cls"] * 8
    assert all(d["test_identity"] is True for _, d in starts)
    assert all(EMAIL_CODE not in json.dumps(d) for _, d in starts), "no code in the log"

    signed_in = await otp(app, REVIEWER, EMAIL_CODE)
    assert signed_in.status_code == 200, signed_in.text
    after = [t for t, _ in await events(app)][8:]
    assert after == ["test_identity", "ss", "s"]
    [(_, used)] = [e for e in await events(app) if e[0] == "test_identity"]
    assert used["test_identity"] is True


async def test_sms_fixed_code_never_calls_the_provider(app: Harness, gateway: Gateway) -> None:
    for _ in range(3):
        assert (await start_sms(app)).status_code == 200
    assert (await otp(app, REVIEW_PHONE, SMS_CODE, realm="sms")).status_code == 200
    assert gateway.requests == []
    types = [t for t, _ in await events(app)]
    assert types == ["cs", "cs", "cs", "test_identity", "ss", "s"]


async def test_a_wrong_code_is_still_wrong(app: Harness) -> None:
    assert (await start_email(app)).status_code == 200
    assert (await otp(app, REVIEWER, "000000")).status_code == 403


async def test_after_expiry_the_identity_is_an_ordinary_one(
    app: Harness, gateway: Gateway, clock: MovableClock
) -> None:
    clock.advance(3601)
    assert (await start_email(app)).status_code == 200
    assert await app.count("outbox_messages") == 1, "a real message now"
    assert (await otp(app, REVIEWER, EMAIL_CODE)).status_code == 403
    refused = await start_sms(app)  # the SMS controls apply again: a US number
    assert refused.status_code == 400
    assert gateway.requests == []
    assert "test_identity" not in [t for t, _ in await events(app)]
