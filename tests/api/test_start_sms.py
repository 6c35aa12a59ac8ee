"""SMS starts end to end: the gateway and Twilio, and how provider failures reach the caller
(docs/specs/auth0-wire.md §2.5 rows 11-13): the code is voided, `fn` is logged, nothing else
changes."""

from __future__ import annotations

import base64
import re
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest
from sqlalchemy import select, update

from nopass.store.engine import create_engine
from nopass.store.tables import ConnectionRow, table
from tests.support.config import NATIVE_ID, tenant_config
from tests.support.harness import Harness, prepare_database, running_app
from tests.support.sms_gateway import Gateway

ORIGIN = "http://127.0.0.1:8123"
PHONE = "+15557654321"
BODY = {"client_id": NATIVE_ID, "connection": "sms", "phone_number": PHONE}


@pytest.fixture
async def app(database_url: str, gateway: Gateway) -> AsyncIterator[Harness]:
    sms = {
        "provider": "sms_gateway",
        "gateway_url": gateway.url,
        "from": "+15550001111",
        "syntax": "md_with_macros",
        "template": "@@password@@ is your @@application.name@@ code",
    }
    async with running_app(
        database_url, tenant_config(ORIGIN, sms=sms), sms_timeout_seconds=0.5
    ) as harness:
        yield harness


async def test_gateway_receives_the_rendered_message(app: Harness, gateway: Gateway) -> None:
    response = await app.start(BODY)
    assert response.status_code == 200
    [request] = gateway.requests
    payload = request.json()
    assert payload["recipient"] == PHONE
    assert payload["sender"] == "+15550001111"
    assert re.fullmatch(r"\d{6} is your Native App code", payload["body"])
    assert [e["type"] for e in await app.rows("SELECT type FROM audit_events")] == ["cs"]
    assert await app.count("challenges", "voided_at IS NULL") == 1
    assert await app.count("outbox_messages") == 0


@pytest.mark.parametrize(
    ("status", "delay", "description"),
    [
        (500, 0.0, "Unexpected response while calling the SMS gateway: 500"),
        (401, 0.0, "Authentication failed while calling the SMS gateway: 401"),
        (200, 2.0, "Unexpected response while calling the SMS gateway: 504"),
    ],
    ids=["server error", "unauthorized", "timeout"],
)
async def test_gateway_failures(
    app: Harness, gateway: Gateway, status: int, delay: float, description: str
) -> None:
    gateway.status, gateway.delay = status, delay
    response = await app.start(BODY)
    assert response.status_code == 400
    assert response.json() == {"error": "sms_provider_error", "error_description": description}
    assert await app.count("challenges") == 1
    assert await app.count("challenges", "voided_at IS NULL") == 0, "the code must be voided"
    events = await app.rows("SELECT type, user_name FROM audit_events")
    assert events == [{"type": "fn", "user_name": PHONE}]


def twilio_transport(calls: list[httpx.Request], answer: httpx.Response) -> httpx.MockTransport:
    def handle(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return answer

    return httpx.MockTransport(handle)


def twilio_config() -> dict[str, Any]:
    sms = {
        "provider": "twilio",
        "twilio_sid": "AC123",
        "twilio_token": "token-xyz",
        "from": "+15550002222",
    }
    return tenant_config(ORIGIN, sms=sms)


async def test_twilio_payload_and_auth(database_url: str) -> None:
    calls: list[httpx.Request] = []
    transport = twilio_transport(calls, httpx.Response(201, json={"sid": "SM1"}))
    async with running_app(database_url, twilio_config(), http_transport=transport) as app:
        response = await app.start(BODY)
    assert response.status_code == 200
    [call] = calls
    assert str(call.url) == "https://api.twilio.com/2010-04-01/Accounts/AC123/Messages.json"
    expected = "Basic " + base64.b64encode(b"AC123:token-xyz").decode()
    assert call.headers["authorization"] == expected
    form = parse_qs(call.content.decode())
    assert form["To"] == [PHONE]
    assert form["From"] == ["+15550002222"]
    assert re.search(r"\b\d{6}\b", form["Body"][0])


async def test_twilio_error_reaches_the_caller(database_url: str) -> None:
    calls: list[httpx.Request] = []
    error = {
        "code": 21211,
        "message": "The 'To' number +15557654321 is not a valid phone number.",
        "status": 400,
    }
    transport = twilio_transport(calls, httpx.Response(400, json=error))
    async with running_app(database_url, twilio_config(), http_transport=transport) as app:
        response = await app.start(BODY)
        assert response.status_code == 400
        assert response.json() == {
            "error": "sms_provider_error",
            "error_description": (
                "The 'To' number +15557654321 is not a valid phone number. (Code: 21211)"
            ),
        }
        assert await app.count("challenges", "voided_at IS NULL") == 0


async def test_a_connection_stored_without_a_provider_is_queued_not_sent_to_twilio(
    database_url: str,
) -> None:
    """One default for ``provider`` (issue 13): the configuration file's, ``outbox``. A row
    whose ``provider`` is empty (written by hand, or by an older nopass) used to be sent
    synchronously, and the SMS router then picked Twilio with the row's credentials."""
    calls: list[httpx.Request] = []
    transport = twilio_transport(calls, httpx.Response(201, json={"sid": "SM1"}))
    await prepare_database(database_url, twilio_config())
    engine = create_engine(database_url)
    try:
        connections = table(ConnectionRow)
        sms = connections.c.name == "sms"
        async with engine.begin() as conn:
            options = (await conn.execute(select(connections.c.options).where(sms))).scalar_one()
            emptied = {**options, "provider": None}
            await conn.execute(update(connections).where(sms).values(options=emptied))
    finally:
        await engine.dispose()
    async with running_app(database_url, None, http_transport=transport) as app:
        response = await app.start(BODY)
        assert response.status_code == 200
        assert await app.count("outbox_messages", f"recipient = '{PHONE}'") == 1
    assert calls == []
