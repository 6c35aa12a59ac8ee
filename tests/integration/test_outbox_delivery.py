"""The email outbox against a real SMTP server (aiosmtpd on loopback).

docs/specs/security.md §6: the message row is written with the code; a background worker sends it
with retries and back-off (at least once: a lost claim is resent, tests/integration/
test_outbox_leases.py); permanent failures are logged as ``fn``;
``/passwordless/start`` never waits for SMTP.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import re
import threading
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import EmailMessage
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import text

from nopass.core.clock import SystemClock
from nopass.core.errors import DeliveryFailed
from nopass.core.keyring import Keyring
from nopass.core.models import Channel, EmailProvider, Message
from nopass.delivery.smtp import SmtpTransport
from nopass.flows.outbox import RetryPolicy, deliver_due
from nopass.store.engine import create_engine
from nopass.store.outbox_queue import SqlOutboxQueue
from nopass.store.unit_of_work import SqlUnitOfWork
from tests.support.config import NATIVE_ID, tenant_config
from tests.support.harness import Harness, prepare_database, running_app
from tests.support.services import free_port
from tests.support.smtp import Received, SmtpSink

ORIGIN = "http://127.0.0.1:8123"
# What each reply hook answers on its n-th call (1-based): a reply string, or None to accept.
Script = Callable[[int], str | None]


def accept(_: int) -> str | None:
    return None


@dataclass
class ScriptedHandler:
    """An aiosmtpd handler whose RCPT and DATA answers each test scripts; counts every call."""

    rcpt: Script = accept
    data: Script = accept
    gate: threading.Event | None = None  # DATA waits until it is set
    rcpt_calls: int = 0
    data_calls: int = 0
    received: list[Received] = field(default_factory=list)

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: list[str]
    ) -> str:
        self.rcpt_calls += 1
        reply = self.rcpt(self.rcpt_calls)
        if reply is not None:
            return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.data_calls += 1
        while self.gate is not None and not self.gate.is_set():
            await asyncio.sleep(0.01)
        reply = self.data(self.data_calls)
        if reply is not None:
            return reply
        msg = email.message_from_bytes(envelope.content, policy=email.policy.default)
        assert isinstance(msg, EmailMessage)
        self.received.append(Received(envelope.mail_from, list(envelope.rcpt_tos), msg))
        return "250 OK"


@pytest.fixture
def scripted() -> Iterator[tuple[ScriptedHandler, int]]:
    """A started SMTP server with a ScriptedHandler (accepting everything until scripted)."""
    handler = ScriptedHandler()
    port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield handler, port
    finally:
        controller.stop()


def email_body(address: str, **extra: Any) -> dict[str, Any]:
    return {"client_id": NATIVE_ID, "connection": "email", "email": address, **extra}


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.05)


async def outbox_rows(app: Harness) -> list[dict[str, Any]]:
    return await app.rows(
        "SELECT id, tenant_id, recipient, status, attempts, payload, last_error, sent_at"
        " FROM outbox_messages ORDER BY created_at, id"
    )


async def tenant_id(app: Harness) -> str:
    [row] = await app.rows("SELECT id FROM tenants WHERE name = 'acme'")
    return str(row["id"])


async def test_smtp_down_at_start_then_up_delivers_exactly_once(database_url: str) -> None:
    sink = SmtpSink(free_port())  # nothing listens on this port yet
    async with running_app(database_url, tenant_config(ORIGIN, smtp_port=sink.port)) as app:
        began = time.monotonic()
        response = await app.start(email_body("down@example.com", send="code"))
        assert response.status_code == 200, response.text
        assert time.monotonic() - began < 2.0  # start never waits for SMTP

        async def retried() -> bool:
            [row] = await outbox_rows(app)
            return bool(row["attempts"] >= 3)

        await eventually(retried)
        [row] = await outbox_rows(app)
        assert row["status"] in ("pending", "sending")
        assert row["payload"] is not None  # kept for the next attempt
        assert row["sent_at"] is None
        assert sink.received == []
        sink.start()
        try:
            [mail] = await sink.wait_for(1)
            assert mail.recipients == ["down@example.com"]

            async def settled() -> bool:
                [row] = await outbox_rows(app)
                return bool(row["status"] == "sent")

            await eventually(settled)
            await asyncio.sleep(1.0)  # several poll and retry periods: nothing more arrives
            assert len(sink.received) == 1
        finally:
            sink.stop()
        [row] = await outbox_rows(app)
        assert row["status"] == "sent"
        assert row["payload"] is None
        assert row["sent_at"] is not None
        assert await app.count("audit_events", "type = 'fn'") == 0


@pytest.mark.parametrize(
    ("stage", "reply"),
    [
        ("rcpt", "550 5.1.1 <bounce@example.com>: Recipient address rejected"),
        ("data", "554 5.7.1 Message rejected as spam"),
    ],
)
async def test_permanent_rejection_fails_once_and_logs_fn(
    database_url: str, scripted: tuple[ScriptedHandler, int], stage: str, reply: str
) -> None:
    handler, port = scripted
    if stage == "rcpt":
        handler.rcpt = lambda _: reply
    else:
        handler.data = lambda _: reply
    async with running_app(database_url, tenant_config(ORIGIN, smtp_port=port)) as app:
        response = await app.start(email_body("Bounce@Example.COM"))
        assert response.status_code == 200

        async def failed() -> bool:
            [row] = await outbox_rows(app)
            return bool(row["status"] == "failed")

        await eventually(failed)
        calls = handler.rcpt_calls if stage == "rcpt" else handler.data_calls
        assert calls == 1
        await asyncio.sleep(1.0)  # no retry of a permanent failure
        assert (handler.rcpt_calls if stage == "rcpt" else handler.data_calls) == 1
        assert handler.received == []
        [row] = await outbox_rows(app)
        assert row["status"] == "failed"
        assert row["payload"] is None
        assert row["attempts"] == 1
        assert reply[:3] in (row["last_error"] or "")
        events = await app.rows(
            "SELECT tenant_id, type, user_name, details FROM audit_events WHERE type = 'fn'"
        )
        assert len(events) == 1
        assert events[0]["tenant_id"] == await tenant_id(app)
        assert events[0]["user_name"] == "bounce@example.com"
        assert await app.count("audit_events", "type = 'cls'") == 1


@pytest.mark.parametrize(
    ("stage", "reply"),
    [("rcpt", "450 4.2.1 Mailbox busy, try later"), ("data", "451 4.3.0 Try again later")],
)
async def test_temporary_rejections_are_retried_then_delivered_once(
    database_url: str, scripted: tuple[ScriptedHandler, int], stage: str, reply: str
) -> None:
    handler, port = scripted
    script: Script = lambda n: reply if n <= 2 else None  # noqa: E731
    if stage == "rcpt":
        handler.rcpt = script
    else:
        handler.data = script
    async with running_app(database_url, tenant_config(ORIGIN, smtp_port=port)) as app:
        assert (await app.start(email_body("later@example.com"))).status_code == 200
        deadline = time.monotonic() + 10
        while not handler.received:
            assert time.monotonic() < deadline, "never delivered"
            await asyncio.sleep(0.05)
        await asyncio.sleep(1.0)
        assert len(handler.received) == 1
        assert handler.received[0].recipients == ["later@example.com"]
        assert (handler.rcpt_calls if stage == "rcpt" else handler.data_calls) == 3
        [row] = await outbox_rows(app)
        assert row["status"] == "sent"
        assert row["attempts"] == 3
        assert row["payload"] is None
        assert await app.count("audit_events", "type = 'fn'") == 0


async def test_two_app_instances_deliver_each_message_exactly_once(
    database_url: str, scripted: tuple[ScriptedHandler, int]
) -> None:
    """Both workers hold a message in a stalled SMTP DATA while 18 more pile up; released
    together, they race for the same backlog: each message must still go out once."""
    handler, port = scripted
    handler.gate = threading.Event()
    config = tenant_config(ORIGIN, smtp_port=port)
    addresses = [f"user{i}@example.com" for i in range(20)]
    async with running_app(database_url, config) as one, running_app(database_url, config) as two:
        try:
            for n, app in enumerate((one, two)):  # each worker ends up stuck in one DATA
                response = await app.start(email_body(addresses[n], send="code"))
                assert response.status_code == 200

                async def sending(count: int = n + 1) -> bool:
                    return handler.data_calls >= count

                await eventually(sending)
            responses = await asyncio.gather(
                *(
                    (one if i % 2 else two).start(email_body(address, send="code"))
                    for i, address in enumerate(addresses[2:])
                )
            )
            assert [r.status_code for r in responses] == [200] * 18, [r.text for r in responses]
            assert await one.count("outbox_messages", "status = 'pending'") == 18
        finally:
            handler.gate.set()

        async def all_settled() -> bool:
            return await one.count("outbox_messages", "status NOT IN ('sent', 'failed')") == 0

        await eventually(all_settled, timeout=20)
        await asyncio.sleep(1.0)  # both workers keep polling: nothing is sent twice
        received = Counter(r for mail in handler.received for r in mail.recipients)
        assert received == Counter(addresses)
        assert len(handler.received) == handler.data_calls == 20
        rows = await outbox_rows(one)
        assert len(rows) == 20
        assert {r["status"] for r in rows} == {"sent"}
        assert {r["attempts"] for r in rows} == {1}


LANGUAGE_CASES = [
    # (headers, send, subject, sentences in the text part)
    (
        {"x-request-language": "fr"},
        "code",
        "Votre code de vérification Native App",
        ["Utilisez ce code pour vous connecter à Native App :", "Ce code expire dans 3 minutes."],
    ),
    (
        {"x-request-language": "fr"},
        "link",
        "Connexion à Native App",
        ["Cliquez sur le bouton ci-dessous pour vous connecter à Native App."],
    ),
    (
        {},
        "code",
        "Your Native App verification code",
        ["Use this code to sign in to Native App:", "This code expires in 3 minutes."],
    ),
    (
        {"accept-language": "fr-CA,fr;q=0.9,en;q=0.5"},
        "code",
        "Votre code de vérification Native App",
        ["Utilisez ce code pour vous connecter à Native App :"],
    ),
    (  # x-request-language wins over Accept-Language
        {"x-request-language": "en", "accept-language": "fr"},
        "code",
        "Your Native App verification code",
        ["Use this code to sign in to Native App:"],
    ),
]


@pytest.mark.parametrize(
    ("headers", "send", "subject", "sentences"),
    LANGUAGE_CASES,
    ids=["fr-code", "fr-link", "en-code", "accept-language-fr", "x-request-language-wins"],
)
async def test_email_parts_headers_and_language(
    database_url: str,
    smtp_sink: SmtpSink,
    headers: dict[str, str],
    send: str,
    subject: str,
    sentences: list[str],
) -> None:
    async with running_app(database_url, tenant_config(ORIGIN, smtp_port=smtp_sink.port)) as app:
        response = await app.start(
            email_body("Grace.Hopper@Example.COM", send=send), headers=headers
        )
        assert response.status_code == 200
        [mail] = await smtp_sink.wait_for(1)
    message = mail.message
    assert message.get_content_type() == "multipart/alternative"
    parts = {part.get_content_type(): part for part in message.iter_parts()}
    assert set(parts) == {"text/plain", "text/html"}
    text, html = mail.text(), mail.html()
    assert text.strip()
    assert html.lstrip().lower().startswith("<!doctype html>")
    # From: the provider's default_from_address; To and envelope: the lower-cased address.
    [sender] = message["From"].addresses
    assert (sender.display_name, sender.addr_spec) == ("Acme", "login@acme.example")
    [to] = message["To"].addresses
    assert to.addr_spec == "grace.hopper@example.com"
    assert mail.recipients == ["grace.hopper@example.com"]
    assert mail.sender == "login@acme.example"
    assert message["Subject"] == subject
    for sentence in sentences:
        assert sentence in text
    code = re.search(r"\b(\d{6})\b", text)
    assert code is not None
    assert code.group(1) in html
    if send == "link":
        link = re.search(r"http://127\.0\.0\.1:8123/passwordless/verify_redirect\?\S+", text)
        assert link is not None
        assert f"verification_code={code.group(1)}" in link.group(0)
        assert "email=grace.hopper%40example.com" in link.group(0)
        assert 'href="http://127.0.0.1:8123/passwordless/verify_redirect?' in html
    other = "Your Native App" if subject.startswith("Votre") else "Votre code"
    assert other not in text


class CountingTransport(SmtpTransport):
    """Records how many messages each ``send_many`` call carried."""

    def __init__(self) -> None:
        super().__init__(timeout=5.0)
        self.batches: list[int] = []

    async def send_many(
        self,
        provider: EmailProvider,
        messages: list[Message],
        *,
        message_ids: Sequence[str] | None = None,
    ) -> list[DeliveryFailed | None]:
        self.batches.append(len(messages))
        return await super().send_many(provider, messages, message_ids=message_ids)


@dataclass
class PipeliningHandler(ScriptedHandler):
    """Says PIPELINING (aiosmtpd reads pipelined commands line by line) and counts EHLOs."""

    sessions: int = 0

    async def handle_EHLO(
        self, server: Any, session: Any, envelope: Any, hostname: str, responses: list[str]
    ) -> list[str]:
        self.sessions += 1
        session.host_name = hostname
        responses.insert(-1, "250-PIPELINING")
        return responses


async def test_a_claimed_batch_goes_out_through_one_send_many(database_url: str) -> None:
    """Five queued messages of one tenant, one worker step: one ``send_many`` of five over
    one SMTP session (pipelined: N+1 round trips); each message arrives once."""
    handler = PipeliningHandler()
    port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    await prepare_database(database_url, tenant_config(ORIGIN, smtp_port=port))
    engine = create_engine(database_url)
    keyring = Keyring([b"k" * 32])
    now = datetime.now(UTC)
    controller.start()
    try:
        async with SqlUnitOfWork(engine, keyring) as work:
            [tenant] = (await work.connection.execute(text("SELECT id FROM tenants"))).scalars()
            for n in range(5):
                await work.outbox.add(
                    tenant,
                    Message(Channel.EMAIL, f"u{n}@example.com", "Code", f"code {n}"),
                    provider="smtp",
                    challenge_id=None,
                    code=None,
                    link=None,
                    now=now,
                )
            await work.commit()
        smtp = EmailProvider(
            name="smtp",
            enabled=True,
            default_from_address="login@acme.example",
            credentials={"smtp_host": "127.0.0.1", "smtp_port": port},
            settings={"starttls": "never"},
        )

        async def providers(tenant_id: str) -> EmailProvider | None:
            return smtp if tenant_id == tenant else None

        transport = CountingTransport()
        queue = SqlOutboxQueue(engine, keyring)
        next_batch = await deliver_due(queue, transport, providers, SystemClock(), RetryPolicy())
        assert next_batch == []
        await transport.aclose()
        assert transport.batches == [5]
        assert Counter(r for mail in handler.received for r in mail.recipients) == Counter(
            f"u{n}@example.com" for n in range(5)
        )
        assert handler.data_calls == 5
        assert handler.sessions == 1
        async with engine.connect() as conn:
            rows = await conn.execute(text("SELECT status, attempts FROM outbox_messages"))
            assert sorted(tuple(row) for row in rows) == [("sent", 1)] * 5
    finally:
        await engine.dispose()
        controller.stop()
