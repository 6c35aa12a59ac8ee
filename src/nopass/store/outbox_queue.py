"""SQL side of the outbox: claiming due rows, settling them, and listing them (dev page)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

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
_SENT = (
    update(_T).where(_T.c.id == bindparam("b_id"), _T.c.status == "sending").values(_SENT_VALUES)
)
_ALL_SENT = (
    update(_T)
    .where(_T.c.id.in_(bindparam("b_ids", expanding=True)), _T.c.status == "sending")
    .values(_SENT_VALUES)
)


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
                .where(_T.c.id == entry.id, _T.c.status == "sending")
                .values(status="pending", next_attempt_at=at, lease_until=None, last_error=error)
            )

    async def fail(self, entry: OutboxEntry, error: str, now: datetime) -> None:
        async with self._engine.begin() as conn:
            result = await conn.execute(
                update(_T)
                .where(_T.c.id == entry.id, _T.c.status == "sending")
                .values(status="failed", payload=None, lease_until=None, last_error=error)
            )
            if result.rowcount:
                await conn.execute(insert(table(AuditEventRow)).values(**_fn(entry, error, now)))

    async def fail_abandoned(self, now: datetime) -> int:
        async with reader(self._engine).connect() as conn:
            rows = (
                await conn.execute(
                    select(*_T.c).where(_T.c.status == "sending", _T.c.lease_until < now)
                )
            ).all()
            await conn.rollback()
        for row in rows:
            entry = self._entry(row._mapping, with_message=False)
            await self.fail(entry, "sender stopped mid-delivery; not retried (at most once)", now)
        return len(rows)

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


def _fn(entry: OutboxEntry, error: str, now: datetime) -> dict[str, Any]:
    return {
        "tenant_id": entry.tenant_id,
        "type": "fn",
        "created_at": now,
        "description": "Failed sending notification",
        "user_name": entry.recipient,
        "details": {"error": error[:500], "message_id": entry.id, "channel": entry.channel.value},
    }
