"""Counters in the database, shared by every process on it (docs/specs/security.md §6: "without
Redis, a multi-process serve keeps them in the database").

A call runs in the caller's unit of work when it passes one (``within``: the counts then
commit or roll back with the request's own writes), else in one short transaction of its own.
On PostgreSQL a counted row stays locked until that transaction ends, so requests sharing a
window (one IP) take turns for the length of their transaction; with Redis they do not.

``hit`` counts with one atomic multi-row upsert (keys in sorted order, so concurrent requests
lock rows in the same order), reads back the counts, and rolls everything back when one window
is over its limit: all or nothing, correct across processes on PostgreSQL (row locks) and
SQLite (BEGIN IMMEDIATE). In the caller's transaction, a second statement takes a refused
request's hits back instead.

``hit_guarded`` counts the breaker's ``sent`` window in that same upsert, then reads the trip
and verified windows while it holds the ``sent`` row: requests sharing a breaker (one country)
decide one after the other, each seeing what the previous one counted or tripped.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import AsyncIterator, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, case, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncTransaction

from nopass.core.ports import UnitOfWork
from nopass.ratelimit.base import (
    Breaker,
    Counter,
    Decision,
    Guarded,
    Window,
    check_distinct,
    current,
    decide,
    judge,
)
from nopass.store.engine import reader
from nopass.store.prebuilt import run
from nopass.store.tables import RateCounterRow, UTCDateTime, table
from nopass.store.unit_of_work import SqlUnitOfWork

_T = table(RateCounterRow)


class SqlRateLimiter:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def hit(
        self, windows: Sequence[Window], now: datetime, *, within: UnitOfWork | None = None
    ) -> list[Decision]:
        check_distinct(windows)
        async with _transaction(self._engine, within) as (conn, tx):
            after = await _count(conn, windows, now)
            states: list[Counter | None] = [
                Counter(after[w.key].started_at, after[w.key].count - 1) for w in windows
            ]
            decisions, updated = decide(windows, states, now, counting=True)
            if updated:
                if tx is not None:
                    await tx.commit()
            elif tx is not None:
                await tx.rollback()
            else:  # the caller's transaction goes on: take the hits back (all or nothing)
                await conn.execute(_UNCOUNT, {"b_keys": [w.key for w in windows]})
        return decisions

    async def hit_guarded(
        self,
        windows: Sequence[Window],
        breaker: Breaker,
        now: datetime,
        *,
        within: UnitOfWork | None = None,
    ) -> Guarded:
        check_distinct([*windows, breaker.sent, breaker.trip])
        counted = [*windows, breaker.sent]
        async with _transaction(self._engine, within) as (conn, tx):
            after = await _count(conn, counted, now)  # holds the sent row from here on
            states = [Counter(after[w.key].started_at, after[w.key].count - 1) for w in counted]
            sent = states[-1]
            verified_window = breaker.verified_window(sent.started_at)
            rows = await conn.execute(_READ, {"b_keys": [breaker.trip.key, verified_window.key]})
            stored = {key: Counter(start, int(count)) for key, start, count in rows}
            trip = current(stored.get(breaker.trip.key), breaker.trip, now)
            verified = current(stored.get(verified_window.key), verified_window, now)
            tripped = judge(breaker, trip, sent, verified, now)
            decisions, updated = decide(counted, states, now, counting=tripped is None)
            opened = tripped is not None and tripped.opened
            if not updated and tx is not None and not opened:
                await tx.rollback()
                return Guarded(decisions[:-1], tripped)
            if not updated:  # counted nowhere: take the hits back (all or nothing)
                await conn.execute(_UNCOUNT, {"b_keys": [w.key for w in counted]})
            if opened:
                await _count(conn, [breaker.trip], now)
            if tx is not None:
                await tx.commit()
        return Guarded(decisions[:-1], tripped)

    async def peek(
        self, windows: Sequence[Window], now: datetime, *, within: UnitOfWork | None = None
    ) -> list[Decision]:
        check_distinct(windows)
        keys = [w.key for w in windows]
        query = select(_T.c.key, _T.c.window_start, _T.c["count"]).where(_T.c.key.in_(keys))
        if within is not None:
            rows = await _connection(within).execute(query)
        else:
            async with reader(self._engine).connect() as conn:
                rows = await conn.execute(query)
        stored = {key: Counter(start, int(count)) for key, start, count in rows}
        states = [current(stored.get(w.key), w, now) for w in windows]
        decisions, _ = decide(windows, states, now, counting=False)
        return decisions

    async def refund(
        self, decision: Decision, now: datetime, *, within: UnitOfWork | None = None
    ) -> None:
        if decision.started_at is None:
            return
        params = {"b_key": decision.window.key, "b_start": decision.started_at, "b_now": now}
        async with _transaction(self._engine, within) as (conn, tx):
            await run(conn, _REFUND, params)
            if tx is not None:
                await tx.commit()

    async def aclose(self) -> None:
        """The engine belongs to the application."""


def _connection(within: UnitOfWork) -> AsyncConnection:
    if not isinstance(within, SqlUnitOfWork):
        raise TypeError("the database counters count only in a database unit of work")
    return within.connection


@contextlib.asynccontextmanager
async def _transaction(
    engine: AsyncEngine, within: UnitOfWork | None
) -> AsyncIterator[tuple[AsyncConnection, AsyncTransaction | None]]:
    """The caller's transaction (no transaction object: it is not ours to end), or a short
    one of our own."""
    if within is not None:
        yield _connection(within), None
        return
    async with engine.connect() as conn, conn.begin() as tx:
        yield conn, tx


_REFUND = (
    update(_T)
    .where(
        _T.c.key == bindparam("b_key"),
        _T.c.window_start == bindparam("b_start", type_=UTCDateTime()),
        _T.c.expires_at > bindparam("b_now", type_=UTCDateTime()),
        _T.c["count"] > 0,
    )
    .values({"count": _T.c["count"] - 1})
)


_READ = select(_T.c.key, _T.c.window_start, _T.c["count"]).where(
    _T.c.key.in_(bindparam("b_keys", expanding=True))
)


# Takes back one hit from each of ``b_keys``: a refused request inside a caller's transaction,
# whose counts must not stay. (A window that this request opened stays open with 0 hits: the
# same budget, from a little earlier.)
_UNCOUNT = (
    update(_T)
    .where(_T.c.key.in_(bindparam("b_keys", expanding=True)), _T.c["count"] > 0)
    .values({"count": _T.c["count"] - 1})
)


async def _count(
    conn: AsyncConnection, windows: Sequence[Window], now: datetime
) -> dict[str, Counter]:
    """Count one hit in each window (opening a new one where the stored one closed), in one
    statement: the counters after it, by key. On PostgreSQL an ``executemany`` that
    SQLAlchemy sends as one multi-row statement; on SQLite a prebuilt multi-row statement
    per number of windows (``store/prebuilt.py``)."""
    ordered = sorted(windows, key=lambda w: w.key)  # rows lock in key order
    if conn.dialect.name == "sqlite":
        params: dict[str, Any] = {"b_now": now}
        for i, w in enumerate(ordered):
            params[f"b_key_{i}"], params[f"b_expires_{i}"] = w.key, now + w.length
        rows = list(await run(conn, _sqlite_upsert(len(ordered)), params))
    else:
        rows = list(
            await conn.execute(
                _upsert(),
                [{"b_key": w.key, "b_now": now, "b_expires": now + w.length} for w in ordered],
            )
        )
    return {key: Counter(started, int(count)) for key, started, count in rows}


@functools.cache
def _upsert() -> Any:
    """PostgreSQL's counting statement, built once: statements built per request cost more
    CPU than running them. (A multi-row ``values()`` would be compiled again at every call.)"""
    stmt = postgresql.insert(_T).values(
        key=bindparam("b_key"),
        window_start=bindparam("b_now", type_=UTCDateTime()),
        expires_at=bindparam("b_expires", type_=UTCDateTime()),
        count=1,
    )
    return _counting(stmt)


@functools.cache
def _sqlite_upsert(windows: int) -> Any:
    """SQLite's counting statement for ``windows`` windows, built once per number."""
    now = bindparam("b_now", type_=UTCDateTime())
    stmt = sqlite.insert(_T).values(
        [
            {
                "key": bindparam(f"b_key_{i}"),
                "window_start": now,
                "expires_at": bindparam(f"b_expires_{i}", type_=UTCDateTime()),
                "count": 1,
            }
            for i in range(windows)
        ]
    )
    return _counting(stmt)


def _counting(stmt: Any) -> Any:
    closed = _T.c.expires_at <= stmt.excluded.window_start  # the new row's start: now
    return stmt.on_conflict_do_update(
        index_elements=["key"],
        set_={
            "count": case((closed, 1), else_=_T.c["count"] + 1),
            "window_start": case((closed, stmt.excluded.window_start), else_=_T.c.window_start),
            "expires_at": case((closed, stmt.excluded.expires_at), else_=_T.c.expires_at),
        },
    ).returning(_T.c.key, _T.c.window_start, _T.c["count"])
