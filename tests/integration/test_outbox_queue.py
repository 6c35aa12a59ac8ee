"""The outbox queue in SQL, on SQLite and PostgreSQL: a batch is settled and the next one
claimed in one transaction, so a busy worker commits once per batch."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from nopass.core.keyring import Keyring
from nopass.core.models import Channel, Message
from nopass.store.engine import create_engine
from nopass.store.outbox_queue import SqlOutboxQueue
from nopass.store.unit_of_work import SqlUnitOfWork
from tests.support.harness import prepare_database
from tests.support.tokens import login_config

T0 = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
KEYRING = Keyring([b"k" * 32])
LEASE = 60.0


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    await prepare_database(database_url, login_config("127.0.0.1:1"))
    engine = create_engine(database_url)
    try:
        yield engine
    finally:
        await engine.dispose()


async def queue_messages(engine: AsyncEngine, count: int) -> list[str]:
    async with SqlUnitOfWork(engine, KEYRING) as work:
        [tenant] = (await work.connection.execute(text("SELECT id FROM tenants"))).scalars()
        ids = [
            await work.outbox.add(
                tenant,
                Message(Channel.EMAIL, f"u{n}@example.com", "Code", f"code {n}"),
                provider="smtp",
                challenge_id=None,
                code=f"{n:06d}",
                link=None,
                now=T0 + timedelta(seconds=n),
            )
            for n in range(count)
        ]
        await work.commit()
    return ids


async def statuses(engine: AsyncEngine) -> dict[str, str]:
    async with engine.connect() as conn:
        rows = await conn.execute(text("SELECT id, status FROM outbox_messages"))
        return {row.id: row.status for row in rows}


async def test_settle_and_claim_settles_then_claims_the_next_batch(engine: AsyncEngine) -> None:
    ids = await queue_messages(engine, 5)
    queue = SqlOutboxQueue(engine, KEYRING)
    now = T0 + timedelta(minutes=1)

    first = await queue.claim_due(now, lease_seconds=LEASE, limit=2)
    assert [e.id for e in first] == ids[:2]
    assert first[0].message is not None and first[0].code == "000000"

    second = await queue.settle_and_claim(first, now, lease_seconds=LEASE, limit=2)
    assert [e.id for e in second] == ids[2:4]  # oldest first, none claimed twice
    assert await statuses(engine) == dict(
        zip(ids, ["sent", "sent", "sending", "sending", "pending"], strict=True)
    )
    # Nothing went out of the second batch (say, every send failed and was rescheduled):
    # settling nothing still claims.
    third = await queue.settle_and_claim([], now, lease_seconds=LEASE, limit=2)
    assert [e.id for e in third] == ids[4:]
    assert await queue.settle_and_claim(third, now, lease_seconds=LEASE, limit=2) == []
    assert list((await statuses(engine)).values()).count("sent") == 3


async def test_a_failed_claim_leaves_the_batch_unsettled(engine: AsyncEngine) -> None:
    """One transaction: when the claim fails, the settle is rolled back with it (the rows
    stay claimed, and their lease decides)."""
    ids = await queue_messages(engine, 1)
    queue = SqlOutboxQueue(engine, KEYRING)
    now = T0 + timedelta(minutes=1)
    claimed = await queue.claim_due(now, lease_seconds=LEASE, limit=1)
    with pytest.raises(ValueError):  # the claim fails after the settle ran
        await queue.settle_and_claim(claimed, now, lease_seconds=float("nan"), limit=1)
    assert await statuses(engine) == {ids[0]: "sending"}
