"""SQL side of the outbox: claiming due rows, settling them, and listing them (dev page).

A claim is a lease, and ``attempts`` (raised by every claim) is its fence: only the holder of
the latest claim may schedule a retry or fail the message. A lease that runs out (its sender
died or stalled) puts the message back to pending (at least once), up to the retry policy's
number of lost claims, after which it fails with ``fn`` like any other failure.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.sql import ColumnElement

from nopass.core.keyring import Keyring, SealError
from nopass.core.models import Channel, Message, OutboxEntry
from nopass.store.engine import reader
from nopass.store.prebuilt import run
from nopass.store.tables import AuditEventRow, OutboxRow, UTCDateTime, table
from nopass.store.unit_of_work import OUTBOX_CONTEXT

_T = table(OutboxRow)
# Built once (the worker claims after every wake-up): up to b_limit due messages, in one
# statement; on PostgreSQL concurrent claimers skip each other's rows. The due rows are a
# materialised CTE there: as a plain ``IN (subquery)`` the planner may run the subquery again
# per row, and each run, skipping rows this statement already locked, finds more (a claim of
# 2 took 5).
_DUE = (
    select(_T.c.id)
    .where(_T.c.status == "pending", _T.c.next_attempt_at <= bindparam("b_now", UTCDateTime()))
    .order_by(_T.c.next_attempt_at)
    .limit(bindparam("b_limit"))
    .with_for_update(skip_locked=True)
    .cte("due")
    .prefix_with("MATERIALIZED", dialect="postgresql")
)
CLAIM = (
    update(_T)
    .where(_T.c.id.in_(select(_DUE.c.id)), _T.c.status == "pending")
    .values(
        status="sending",
        lease_until=bindparam("b_lease", UTCDateTime()),
        attempts=_T.c.attempts + 1,
    )
    .returning(*_T.c)
)

_SENT_VALUES: dict[str, Any] = {
    "status": "sent",
    "sent_at": bindparam("b_now", UTCDateTime()),
    "payload": None,
    "lease_until": None,
    "last_error": None,
}
# A message that went out is settled even if its lease ran out meanwhile (pending again, or
# claimed by another sender): that spares a resend, or settles the one under way. Spelled
# without IN (...): a literal list is an expanding parameter, which prebuilt plans leave to
# SQLAlchemy.
_UNSETTLED = or_(_T.c.status == "sending", _T.c.status == "pending")
_SENT = update(_T).where(_T.c.id == bindparam("b_id"), _UNSETTLED).values(_SENT_VALUES)
_ALL_SENT = (
    update(_T)
    .where(_T.c.id.in_(bindparam("b_ids", expanding=True)), _UNSETTLED)
    .values(_SENT_VALUES)
)
LOST = "the sender stopped mid-delivery (its claim ran out)"


async def _settle(conn: AsyncConnection, entries: Sequence[OutboxEntry], now: datetime) -> None:
    if not entries:
        return
    if conn.dialect.name == "sqlite":  # no round trips to save: one prebuilt statement each
        for entry in entries:
            await run(conn, _SENT, {"b_id": entry.id, "b_now": now})
    else:
        await conn.execute(_ALL_SENT, {"b_ids": [e.id for e in entries], "b_now": now})


class SqlOutboxQueue:
    def __init__(self, engine: AsyncEngine, keyring: Keyring) -> None:
        self._engine = engine
        self._keyring = keyring

    async def claim_due(
        self, now: datetime, *, lease_seconds: float, limit: int
    ) -> list[OutboxEntry]:
        async with self._engine.begin() as conn:
            return await self._claim(conn, now, lease_seconds, limit)

    async def mark_sent(self, entries: Sequence[OutboxEntry], now: datetime) -> None:
        if not entries:
            return
        async with self._engine.begin() as conn:
            await _settle(conn, entries, now)

    async def settle_and_claim(
        self, sent: Sequence[OutboxEntry], now: datetime, *, lease_seconds: float, limit: int
    ) -> list[OutboxEntry]:
        async with self._engine.begin() as conn:
            await _settle(conn, sent, now)
            return await self._claim(conn, now, lease_seconds, limit)

    async def _claim(
        self, conn: AsyncConnection, now: datetime, lease_seconds: float, limit: int
    ) -> list[OutboxEntry]:
        params = {"b_now": now, "b_lease": now + timedelta(seconds=lease_seconds), "b_limit": limit}
        rows = (await run(conn, CLAIM, params)).all()
        return sorted((self._entry(row._mapping) for row in rows), key=lambda e: e.created_at)

    async def retry_later(self, entry: OutboxEntry, at: datetime, error: str) -> None:
        async with self._engine.begin() as conn:
            await conn.execute(
                update(_T)
                .where(*_held(entry))
                .values(status="pending", next_attempt_at=at, lease_until=None, last_error=error)
            )

    async def fail(self, entry: OutboxEntry, error: str, now: datetime) -> None:
        async with self._engine.begin() as conn:
            result = await conn.execute(
                update(_T)
                .where(*_held(entry))
                .values(status="failed", payload=None, lease_until=None, last_error=error)
            )
            if result.rowcount:
                await conn.execute(insert(table(AuditEventRow)).values(**_fn(entry, error, now)))

    async def release_abandoned(
        self, now: datetime, *, max_lost_claims: int, oldest: datetime
    ) -> int:
        """Claims whose lease ran out go back to pending, due now; a message whose claims
        were lost ``max_lost_claims`` times, or created before ``oldest``, fails with
        ``fn`` instead. One transaction; returns how many claims were taken back."""
        stale = (_T.c.status == "sending", _T.c.lease_until < now)
        # On PostgreSQL concurrent releasers skip each other's rows (no lock waits, no
        # deadlock); the conditions are checked again on the locked rows.
        ids = select(_T.c.id).where(*stale).with_for_update(skip_locked=True)
        expired = (_T.c.id.in_(ids), *stale)
        exhausted = or_(_T.c.lost_claims + 1 >= max_lost_claims, _T.c.created_at < oldest)
        async with self._engine.begin() as conn:
            failed = (
                await conn.execute(
                    update(_T)
                    .where(*expired, exhausted)
                    .values(
                        status="failed",
                        payload=None,
                        lease_until=None,
                        lost_claims=_T.c.lost_claims + 1,
                        last_error=LOST,
                    )
                    .returning(*_T.c)
                )
            ).all()
            for row in failed:
                entry = self._entry(row._mapping, with_message=False)
                error = f"{LOST}; given up after {row.lost_claims} lost claim(s)"
                await conn.execute(insert(table(AuditEventRow)).values(**_fn(entry, error, now)))
            released = await conn.execute(
                update(_T)
                .where(*expired)
                .values(
                    status="pending",
                    next_attempt_at=now,
                    lease_until=None,
                    lost_claims=_T.c.lost_claims + 1,
                    last_error=LOST,
                )
            )
        return len(failed) + released.rowcount

    async def list_recent(self, tenant_id: str, *, limit: int = 50) -> list[OutboxEntry]:
        async with reader(self._engine).connect() as conn:
            rows = (
                await conn.execute(
                    select(*_T.c)
                    .where(_T.c.tenant_id == tenant_id)
                    .order_by(_T.c.created_at.desc(), _T.c.id.desc())
                    .limit(limit)
                )
            ).all()
        return [self._entry(r._mapping) for r in rows]

    def _entry(self, row: Any, *, with_message: bool = True) -> OutboxEntry:
        message = None
        code = link = None
        if with_message and row["payload"]:
            try:
                body = json.loads(
                    self._keyring.open(row["payload"], context=f"{OUTBOX_CONTEXT}:{row['id']}")
                )
            except SealError:
                body = None
            if body is not None:
                message = Message(
                    channel=Channel(row["channel"]),
                    recipient=row["recipient"],
                    subject=body["subject"],
                    text=body["text"],
                    html=body["html"],
                    sender=body["sender"],
                )
                code, link = body.get("code"), body.get("link")
        return OutboxEntry(
            id=row["id"],
            tenant_id=row["tenant_id"],
            channel=Channel(row["channel"]),
            recipient=row["recipient"],
            provider=row["provider"],
            status=row["status"],
            attempts=row["attempts"],
            created_at=row["created_at"],
            message=message,
            code=code,
            link=link,
        )


def _held(entry: OutboxEntry) -> tuple[ColumnElement[bool], ...]:
    """The row, while ``entry``'s claim is its latest and not yet taken back."""
    return (_T.c.id == entry.id, _T.c.status == "sending", _T.c.attempts == entry.attempts)


def _fn(entry: OutboxEntry, error: str, now: datetime) -> dict[str, Any]:
    return {
        "tenant_id": entry.tenant_id,
        "type": "fn",
        "created_at": now,
        "description": "Failed sending notification",
        "user_name": entry.recipient,
        "details": {"error": error[:500], "message_id": entry.id, "channel": entry.channel.value},
    }
