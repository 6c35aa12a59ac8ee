"""``disable_signup``: only existing users get a message, and nobody can tell
(docs/specs/auth0-wire.md §12.5).

A start for an identity with no user answers exactly like one for a known user, stores a
challenge flagged ``phantom`` (never deliverable, never valid) and sends nothing.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from sqlalchemy import insert

from nopass.store.tables import UserRow, table
from tests.support.config import NATIVE_ID, tenant_config
from tests.support.harness import Harness, running_app
from tests.support.sms_gateway import Gateway
from tests.support.smtp import SmtpSink

ORIGIN = "http://127.0.0.1:8123"
KNOWN_EMAIL = "known@example.com"
KNOWN_PHONE = "+15550000001"


async def tenant_ids(harness: Harness) -> tuple[str, dict[str, str]]:
    """The tenant's id and its connections' ids by name."""
    [tenant] = await harness.rows("SELECT id FROM tenants WHERE name = 'acme'")
    rows = await harness.rows(
        f"SELECT name, id FROM connections WHERE tenant_id = '{tenant['id']}'"  # noqa: S608
    )
    return str(tenant["id"]), {str(r["name"]): str(r["id"]) for r in rows}


async def add_user(harness: Harness, connection: str, identifier: str, user_id: str) -> None:
    """A user as the token endpoint will create it after a first login (tables.UserRow)."""
    tenant_id, connections = await tenant_ids(harness)
    now = datetime.now(UTC)
    async with harness.engine.begin() as conn:
        await conn.execute(
            insert(table(UserRow)).values(
                tenant_id=tenant_id,
                user_id=user_id,
                connection_id=connections[connection],
                identifier=identifier,
                profile={},
                created_at=now,
                updated_at=now,
                logins_count=1,
            )
        )


@dataclass
class App:
    harness: Harness
    sink: SmtpSink

    async def add_user(self, connection: str, identifier: str, user_id: str) -> None:
        await add_user(self.harness, connection, identifier, user_id)

    async def start(self, body: dict[str, Any], **headers: str) -> httpx.Response:
        return await self.harness.start(body, headers=headers)

    async def challenge(self, challenge_id: str) -> dict[str, Any]:
        [row] = await self.harness.rows(
            f"SELECT identifier, phantom, voided_at FROM challenges WHERE id = '{challenge_id}'"  # noqa: S608
        )
        return row

    async def outbox_for(self, recipient: str) -> int:
        return await self.harness.count("outbox_messages", f"recipient = '{recipient}'")


@pytest.fixture
async def app(database_url: str, smtp_sink: SmtpSink) -> AsyncIterator[App]:
    config = tenant_config(
        ORIGIN,
        smtp_port=smtp_sink.port,
        email_options={"disable_signup": True},
        sms={"provider": "outbox", "disable_signup": True},
    )
    async with running_app(database_url, config) as harness:
        result = App(harness, smtp_sink)
        await result.add_user("email", KNOWN_EMAIL, "email|0123456789abcdef01234567")
        await result.add_user("sms", KNOWN_PHONE, "sms|0123456789abcdef01234567")
        yield result


def email_body(address: str, **extra: Any) -> dict[str, Any]:
    return {"client_id": NATIVE_ID, "connection": "email", "email": address, **extra}


def shape(response: httpx.Response) -> tuple[int, list[str], str, dict[str, type]]:
    """Everything a caller can compare, except the values that differ by nature."""
    body = response.json()
    return (
        response.status_code,
        sorted(response.headers.keys()),
        response.headers["content-type"],
        {key: type(value) for key, value in body.items()},
    )


async def test_unknown_email_answers_like_a_known_one_and_gets_nothing(app: App) -> None:
    known = await app.start(email_body(KNOWN_EMAIL, send="code"))
    unknown = await app.start(email_body("stranger@example.com", send="code"))
    assert known.status_code == 200, known.text
    assert shape(unknown) == shape(known)
    assert set(unknown.json()) == {"_id", "email", "email_verified"}
    assert unknown.json()["email"] == "stranger@example.com"
    assert unknown.json()["email_verified"] is False
    assert known.json()["email_verified"] is False
    assert re.fullmatch(r"[0-9a-f]{24}", unknown.json()["_id"])

    [mail] = await app.sink.wait_for(1)
    assert mail.recipients == [KNOWN_EMAIL]
    await asyncio.sleep(0.5)  # the worker had every chance to send a second one
    assert len(app.sink.received) == 1

    assert await app.outbox_for(KNOWN_EMAIL) == 1
    assert await app.outbox_for("stranger@example.com") == 0
    phantom = await app.challenge(unknown.json()["_id"])
    assert phantom["identifier"] == "stranger@example.com"
    assert phantom["phantom"] in (True, 1)
    assert phantom["voided_at"] is None
    real = await app.challenge(known.json()["_id"])
    assert real["phantom"] in (False, 0)


async def test_known_user_is_found_through_the_normalised_address(app: App) -> None:
    response = await app.start(email_body("Known@Example.COM"))
    assert response.status_code == 200
    assert response.json()["email"] == KNOWN_EMAIL
    [mail] = await app.sink.wait_for(1)
    assert mail.recipients == [KNOWN_EMAIL]
    assert (await app.challenge(response.json()["_id"]))["phantom"] in (False, 0)


async def test_user_of_another_connection_does_not_count(app: App) -> None:
    # A user of `sms` whose identifier is this address is not a user of `email`.
    await app.add_user("sms", "shared@example.com", "sms|aaaaaaaaaaaaaaaaaaaaaaaa")
    response = await app.start(email_body("shared@example.com"))
    assert response.status_code == 200
    assert (await app.challenge(response.json()["_id"]))["phantom"] in (True, 1)
    assert await app.outbox_for("shared@example.com") == 0


async def test_unknown_phone_answers_like_a_known_one_and_gets_nothing(app: App) -> None:
    def body(phone: str) -> dict[str, Any]:
        return {"client_id": NATIVE_ID, "connection": "sms", "phone_number": phone}

    known = await app.start(body(KNOWN_PHONE), **{"x-request-language": "de"})
    unknown = await app.start(body("+15559999999"), **{"x-request-language": "de"})
    assert known.status_code == 200, known.text
    assert shape(unknown) == shape(known)
    assert unknown.json()["phone_verified"] is False
    assert unknown.json()["request_language"] == known.json()["request_language"] == "de"
    assert await app.outbox_for(KNOWN_PHONE) == 1
    assert await app.outbox_for("+15559999999") == 0
    assert (await app.challenge(unknown.json()["_id"]))["phantom"] in (True, 1)


async def test_a_phantom_start_still_voids_earlier_codes_and_writes_no_send_event(app: App) -> None:
    first = await app.start(email_body("nobody@example.com"))
    second = await app.start(email_body("nobody@example.com"))
    assert first.status_code == second.status_code == 200
    assert (await app.challenge(first.json()["_id"]))["voided_at"] is not None
    assert (await app.challenge(second.json()["_id"]))["voided_at"] is None
    # No "Code/Link Sent" for a message that was never sent.
    assert await app.harness.count("audit_events", "type IN ('cls', 'cs')") == 0
    await asyncio.sleep(0.3)
    assert app.sink.received == []


async def test_unknown_phone_is_not_answered_faster_on_a_synchronous_provider(
    database_url: str, gateway: Gateway
) -> None:
    """With a real SMS provider the send is synchronous, so a known user's start lasts as long
    as the provider call. A phantom start must not come back measurably sooner, or response
    time tells who has an account (§12.5: nothing observable differs)."""
    gateway.delay = 0.6
    sms = {"provider": "sms_gateway", "gateway_url": gateway.url, "disable_signup": True}
    async with running_app(database_url, tenant_config(ORIGIN, sms=sms)) as harness:
        await add_user(harness, "sms", KNOWN_PHONE, "sms|0123456789abcdef01234567")

        async def timed(phone: str) -> tuple[httpx.Response, float]:
            began = time.monotonic()
            response = await harness.start(
                {"client_id": NATIVE_ID, "connection": "sms", "phone_number": phone}
            )
            return response, time.monotonic() - began

        known, known_seconds = await timed(KNOWN_PHONE)
        unknown, unknown_seconds = await timed("+15559999999")
        assert shape(unknown) == shape(known)
        assert [r.json()["recipient"] for r in gateway.requests] == [KNOWN_PHONE]
        assert known_seconds >= gateway.delay
        assert unknown_seconds >= gateway.delay / 2, (known_seconds, unknown_seconds)
