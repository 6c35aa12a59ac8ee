"""Counters in the database, shared by every process on it (security.md §6: "without Redis, a
multi-process serve keeps them in the database").

One short transaction per call, never inside a flow's unit of work. ``hit`` counts with an
atomic upsert per window (keys in sorted order, so concurrent requests lock rows in the same
order), reads back the counts, and rolls everything back when one window is over its limit:
all or nothing, correct across processes on PostgreSQL (row locks) and SQLite (BEGIN IMMEDIATE).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import case, literal, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from nopass.ratelimit.base import Counter, Decision, Window, check_distinct, current, decide
from nopass.store.tables import RateCounterRow, UTCDateTime, table

_T = table(RateCounterRow)


class SqlRateLimiter:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def hit(self, windows: Sequence[Window], now: datetime) -> list[Decision]:
        check_distinct(windows)
        async with self._engine.connect() as conn, conn.begin() as tx:
            before: dict[str, Counter | None] = {}
            for window in sorted(windows, key=lambda w: w.key):
                after = await _count(conn, window, now)
                before[window.key] = Counter(after.started_at, after.count - 1)
            states = [before[w.key] for w in windows]
            decisions, updated = decide(windows, states, now, counting=True)
            if updated:
                await tx.commit()
            else:
                await tx.rollback()
        return decisions

    async def peek(self, windows: Sequence[Window], now: datetime) -> list[Decision]:
        check_distinct(windows)
        keys = [w.key for w in windows]
        async with self._engine.connect() as conn:
            rows = await conn.execute(
                select(_T.c.key, _T.c.window_start, _T.c["count"]).where(_T.c.key.in_(keys))
            )
            stored = {key: Counter(start, int(count)) for key, start, count in rows}
        states = [current(stored.get(w.key), w, now) for w in windows]
        decisions, _ = decide(windows, states, now, counting=False)
        return decisions

    async def refund(self, decision: Decision, now: datetime) -> None:
        if decision.started_at is None:
            return
        async with self._engine.begin() as conn:
            await conn.execute(
                update(_T)
                .where(
                    _T.c.key == decision.window.key,
                    _T.c.window_start == decision.started_at,
                    _T.c.expires_at > now,
                    _T.c["count"] > 0,
                )
                .values({"count": _T.c["count"] - 1})
            )

    async def aclose(self) -> None:
        """The engine belongs to the application."""


async def _count(conn: AsyncConnection, window: Window, now: datetime) -> Counter:
    """Count one hit in ``window`` (opening a new one if the stored one closed): the
    counter after it."""
    insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
    expires = now + window.length
    closed = _T.c.expires_at <= literal(now, UTCDateTime())
    stmt = insert(_T).values(key=window.key, window_start=now, expires_at=expires, count=1)
    upsert = stmt.on_conflict_do_update(
        index_elements=["key"],
        set_={
            "count": case((closed, 1), else_=_T.c["count"] + 1),
            "window_start": case((closed, literal(now, UTCDateTime())), else_=_T.c.window_start),
            "expires_at": case((closed, literal(expires, UTCDateTime())), else_=_T.c.expires_at),
        },
    ).returning(_T.c.window_start, _T.c["count"])
    started, count = (await conn.execute(upsert)).one()
    return Counter(started, int(count))
