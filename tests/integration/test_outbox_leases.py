"""The outbox is at least once (issue 13): a claim whose lease runs out (its sender died or
stalled mid-send) goes back to pending and is sent again, with the same Message-ID, up to the
retry policy's number of lost claims; then the message fails with ``fn``. A sender that cannot
connect releases its claim at once. On SQLite and PostgreSQL, against a real SMTP server."""

from __future__ import annotations

import asyncio
import email
import email.policy
import threading
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from nopass.core.keyring import Keyring
from nopass.core.models import Channel, EmailProvider, Message
from nopass.core.ports import EmailProviderLookup
from nopass.delivery.smtp import SmtpTransport
from nopass.flows.outbox import RetryPolicy, deliver_due
from nopass.store.engine import create_engine
from nopass.store.outbox_queue import SqlOutboxQueue
from nopass.store.tables import AuditEventRow, OutboxRow, table
from nopass.store.unit_of_work import SqlUnitOfWork
from tests.support.clock import MovableClock
from tests.support.config import tenant_config
from tests.support.harness import prepare_database
from tests.support.services import free_port

KEYRING = Keyring([b"k" * 32])
POLICY = RetryPolicy()  # the defaults: a 60 s lease, 3 lost claims
LOST_CLAIMS = 3


@dataclass
class StallingHandler:
    """Records each message's Message-ID as its data arrives, then answers DATA only once
    ``release`` is set, for the first ``stall`` messages (later ones at once)."""

    stall: int = 0
    release: threading.Event = field(default_factory=threading.Event)
    message_ids: list[str] = field(default_factory=list)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        mail = email.message_from_bytes(envelope.content, policy=email.policy.default)
        self.message_ids.append(str(mail["Message-ID"]))
        if len(self.message_ids) <= self.stall:
            while not self.release.is_set():
                await asyncio.sleep(0.01)
            return "451 4.3.0 too late, the client is gone"
        return "250 OK"


@pytest.fixture
def smtp() -> Iterator[tuple[StallingHandler, int]]:
    handler = StallingHandler()
    port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield handler, port
    finally:
        handler.release.set()
        controller.stop()


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    await prepare_database(database_url, tenant_config("http://127.0.0.1:8123"))
    engine = create_engine(database_url)
    try:
        yield engine
    finally:
        await engine.dispose()


def smtp_at(host: str, port: int) -> EmailProvider:
    return EmailProvider(
        name="smtp",
        enabled=True,
        default_from_address="login@acme.example",
        credentials={"smtp_host": host, "smtp_port": port},
        settings={"starttls": "never"},
    )


async def queue_message(engine: AsyncEngine, now: datetime, *, tenant: str = "acme") -> str:
    async with SqlUnitOfWork(engine, KEYRING) as work:
        tenants = await work.connection.execute(
            text("SELECT id FROM tenants WHERE name = :name"), {"name": tenant}
        )
        [tenant_id] = tenants.scalars()
        message_id = await work.outbox.add(
            tenant_id,
            Message(
                Channel.EMAIL, "lost@example.com", "Code", "code 123456", None, "login@acme.example"
            ),
            provider="smtp",
            challenge_id=None,
            code="123456",
            link=None,
            now=now,
        )
        await work.commit()
    return message_id


async def row(engine: AsyncEngine) -> dict[str, Any]:
    async with engine.connect() as conn:
        [found] = await conn.execute(select(table(OutboxRow)))
        return dict(found._mapping)


async def fn_events(engine: AsyncEngine) -> list[dict[str, Any]]:
    audit = table(AuditEventRow)
    async with engine.connect() as conn:
        rows = await conn.execute(select(audit.c.details).where(audit.c.type == "fn"))
        return [dict(r.details) for r in rows]


async def until(check: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.01)


class Sender:
    """One worker's deliver_due against the real queue and SMTP transport."""

    def __init__(self, engine: AsyncEngine, port: int, clock: MovableClock) -> None:
        self.queue = SqlOutboxQueue(engine, KEYRING)
        self.transport = SmtpTransport(timeout=5.0, clock=clock)
        self.clock = clock
        self.provider = smtp_at("127.0.0.1", port)
        self.providers: EmailProviderLookup = self.configured

    async def configured(self, tenant_id: str) -> EmailProvider | None:
        return self.provider

    async def step(self, claimed: list[Any] | None = None) -> list[Any]:
        return await deliver_due(
            self.queue, self.transport, self.providers, self.clock, POLICY, claimed=claimed
        )

    async def dies_mid_send(self, handler: StallingHandler, data_calls: int) -> None:
        """A step that is stopped (the process died) while its DATA waits for a reply."""
        task = asyncio.create_task(self.step())
        await until(lambda: len(handler.message_ids) >= data_calls or task.done())
        assert not task.done(), task.result()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        self.transport = SmtpTransport(timeout=5.0, clock=self.clock)  # a new process


async def test_a_claim_lost_mid_send_is_sent_again_with_the_same_message_id(
    engine: AsyncEngine, smtp: tuple[StallingHandler, int]
) -> None:
    handler, port = smtp
    handler.stall = 1
    clock = MovableClock(datetime.now(UTC))
    outbox_id = await queue_message(engine, clock.now())
    sender = Sender(engine, port, clock)

    await sender.dies_mid_send(handler, data_calls=1)
    assert (await row(engine))["status"] == "sending"
    clock.advance(POLICY.lease_seconds + 1)  # the lease runs out
    assert await sender.step() == []
    await sender.transport.aclose()

    found = await row(engine)
    assert (found["status"], found["attempts"]) == ("sent", 2)
    assert found["lost_claims"] == 1
    # The data arrived twice: a resend, recognisable by its Message-ID.
    assert handler.message_ids == [f"<{outbox_id}@acme.example>"] * 2
    assert await fn_events(engine) == []


async def test_a_message_whose_claims_keep_running_out_fails_with_fn(
    engine: AsyncEngine, smtp: tuple[StallingHandler, int]
) -> None:
    handler, port = smtp
    handler.stall = 100  # every attempt stalls, and every sender dies
    clock = MovableClock(datetime.now(UTC))
    outbox_id = await queue_message(engine, clock.now())
    sender = Sender(engine, port, clock)

    for attempt in range(1, LOST_CLAIMS + 1):
        await sender.dies_mid_send(handler, data_calls=attempt)
        clock.advance(POLICY.lease_seconds + 1)
    assert await sender.step() == []  # the third lost claim: given up, not sent again

    found = await row(engine)
    assert (found["status"], found["attempts"]) == ("failed", 3)
    assert found["lost_claims"] == 3
    assert found["payload"] is None
    assert len(handler.message_ids) == LOST_CLAIMS
    [details] = await fn_events(engine)
    assert details["message_id"] == outbox_id
    assert "claim ran out" in details["error"]


@pytest.mark.parametrize(
    "host",
    ["127.0.0.1", "a" * 64 + ".example"],  # refused; a name DNS (IDNA) cannot even encode
    ids=["refused", "bad-host-name"],
)
async def test_a_sender_that_cannot_connect_releases_its_claim_at_once(
    engine: AsyncEngine, host: str
) -> None:
    clock = MovableClock(datetime.now(UTC))
    await queue_message(engine, clock.now())
    sender = Sender(engine, free_port(), clock)  # nothing listens there
    sender.provider = smtp_at(host, free_port())
    began = clock.now()
    assert await sender.step() == []
    found = await row(engine)
    assert (found["status"], found["lease_until"], found["attempts"]) == ("pending", None, 1)
    assert found["next_attempt_at"] > began  # with its retry back-off
    assert "cannot connect" in found["last_error"]
    assert await fn_events(engine) == []


async def test_auth_without_tls_fails_the_message_once_with_fn(engine: AsyncEngine) -> None:
    """A server that offers AUTH but no STARTTLS: the credentials never go out; the message
    fails at once (not retried), audited with ``fn``, and no credential is stored or logged."""
    logins: list[Any] = []

    def authenticator(*args: Any) -> AuthResult:
        logins.append(args)
        return AuthResult(success=True)

    port = free_port()
    controller = Controller(
        StallingHandler(),
        hostname="127.0.0.1",
        port=port,
        authenticator=authenticator,
        auth_require_tls=False,
    )
    controller.start()
    try:
        clock = MovableClock(datetime.now(UTC))
        outbox_id = await queue_message(engine, clock.now())
        sender = Sender(engine, port, clock)
        sender.provider = EmailProvider(
            name="smtp",
            enabled=True,
            default_from_address="login@acme.example",
            credentials={
                "smtp_host": "127.0.0.1",
                "smtp_port": port,
                "smtp_user": "mailer",
                "smtp_pass": "hunter2-secret",
            },
            settings={"starttls": "auto"},
        )
        assert await sender.step() == []
        clock.advance(120)
        assert await sender.step() == []  # nothing more to do: not retried
        await sender.transport.aclose()
    finally:
        controller.stop()
    assert logins == []
    found = await row(engine)
    assert (found["status"], found["attempts"], found["payload"]) == ("failed", 1, None)
    [details] = await fn_events(engine)
    assert details["message_id"] == outbox_id
    assert "in clear" in details["error"]
    for stored in (details["error"], found["last_error"]):
        assert "hunter2" not in stored and "mailer" not in stored


async def test_past_half_the_lease_no_further_tenant_is_started(
    database_url: str, engine: AsyncEngine, smtp: tuple[StallingHandler, int]
) -> None:
    """A batch of two tenants whose first takes longer than half the lease (a slow server):
    the second tenant's message is released unsent, not sent on a claim that may already be
    taken back; the next step sends it."""
    handler, port = smtp
    await prepare_database(
        database_url, {"tenant": {"name": "beta", "domains": ["http://127.0.0.1:8124"]}}
    )
    clock = MovableClock(datetime.now(UTC))
    first = await queue_message(engine, clock.now(), tenant="acme")
    second = await queue_message(engine, clock.now(), tenant="beta")
    sender = Sender(engine, port, clock)
    looked_up: list[str] = []

    async def slow_providers(tenant_id: str) -> EmailProvider | None:
        looked_up.append(tenant_id)
        clock.advance(POLICY.lease_seconds / 2)  # this tenant's server is slow
        return sender.provider

    sender.providers = slow_providers
    [fresh] = await sender.step()  # released, and claimed again with the next batch
    assert len(looked_up) == 1 and len(handler.message_ids) == 1
    assert (fresh.id, fresh.attempts) == (second, 2)
    rows = await rows_by_id(engine)
    assert rows[first]["status"] == "sent"
    assert "half its claim's lease" in rows[second]["last_error"]
    assert rows[second]["lease_until"] > clock.now()  # a new lease, from now
    sender.providers = sender.configured
    assert await sender.step(claimed=[fresh]) == []
    await sender.transport.aclose()
    assert (await rows_by_id(engine))[second]["status"] == "sent"
    assert handler.message_ids == [f"<{first}@acme.example>", f"<{second}@acme.example>"]


async def rows_by_id(engine: AsyncEngine) -> dict[str, dict[str, Any]]:
    async with engine.connect() as conn:
        return {r.id: dict(r._mapping) for r in await conn.execute(select(table(OutboxRow)))}
