"""Engines for ``NOPASS_DATABASE_URL``: SQLite (WAL, synchronous=FULL) or PostgreSQL.

Users write ``sqlite:///PATH`` or ``postgresql://...``; the async driver is picked here.

Every wait on the database is bounded, so that an unreachable database makes a request fail
(503, docs/specs/security.md §6 "Fail closed") within seconds instead of hanging: PostgreSQL
connects time out after ``connect_timeout`` and statements after ``command_timeout``; a SQLite
transaction waits at most ``busy_timeout`` for the write lock. Pooled PostgreSQL connections
are pinged before use, so the pool recovers by itself once the database is back.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

from nopass.store import sqlite_driver

SQLITE_BUSY_TIMEOUT_MS = 10_000
CONNECT_TIMEOUT_SECONDS = 5.0


class DatabaseUrlError(ValueError):
    pass


def async_url(url: str) -> str:
    """Map an operator URL onto the async driver SQLAlchemy needs."""
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        return parsed.set(drivername="sqlite+aiosqlite").render_as_string(hide_password=False)
    if backend in ("postgresql", "postgres"):
        return parsed.set(drivername="postgresql+asyncpg").render_as_string(hide_password=False)
    raise DatabaseUrlError(f"unsupported database URL scheme: {parsed.drivername}")


def _sqlite_pragmas(busy_timeout_ms: int, dbapi_connection: Any, _record: Any) -> None:
    # Take over transaction control from the driver so that BEGIN is ours (see _sqlite_begin).
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    # Switching a new database to WAL may meet another process doing the same: SQLite waits.
    cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute("PRAGMA foreign_keys=ON")
    # From here on nothing waits inside SQLite: statements run on the event loop, and a
    # transaction that finds the database locked waits in asyncio (store/sqlite_driver.py).
    cursor.execute("PRAGMA busy_timeout=0")
    cursor.close()


READ_ONLY = {"nopass_read_only": True}


def reader(engine: AsyncEngine) -> AsyncEngine:
    """The same engine (and pool) for work that only reads: on SQLite its transactions
    begin deferred, so they neither take nor wait for the write lock."""
    return engine.execution_options(**READ_ONLY)


def _sqlite_begin(conn: Any) -> None:
    # BEGIN IMMEDIATE takes the write lock up front: no deadlocked lock upgrades between
    # processes, and the busy timeout applies. Work that only reads (execution option READ_ONLY)
    # begins a deferred read transaction instead and never waits for writers under WAL.
    read_only = conn.get_execution_options().get("nopass_read_only")
    statement = "BEGIN" if read_only else sqlite_driver.IMMEDIATE
    driver = conn.connection.driver_connection
    if isinstance(driver, sqlite_driver.LeanConnection):
        driver.begin(statement)  # sent with the transaction's first statement
    else:
        conn.exec_driver_sql(statement)


def create_engine(
    url: str,
    *,
    pool_size: int = 10,
    connect_timeout: float = CONNECT_TIMEOUT_SECONDS,
    command_timeout: float | None = None,
    sqlite_busy_timeout_ms: int = SQLITE_BUSY_TIMEOUT_MS,
) -> AsyncEngine:
    """``command_timeout`` bounds each PostgreSQL statement (the server passes one; ``nopass
    migrate`` does not, a migration may legitimately run long)."""
    aurl = async_url(url)
    if aurl.startswith("sqlite"):
        database = make_url(aurl).database or ":memory:"
        # A file's pool keeps up to 2 × pool_size connections: one dropped and opened again
        # costs a thread, the file's opening and the pragmas.
        pooling: dict[str, Any] = (
            {"poolclass": NullPool}
            if ":memory:" in aurl
            else {"pool_size": pool_size, "max_overflow": pool_size}
        )
        engine = create_async_engine(
            aurl,
            async_creator=sqlite_driver.connector(database, sqlite_busy_timeout_ms / 1000),
            **pooling,
        )
        event.listen(
            engine.sync_engine, "connect", partial(_sqlite_pragmas, sqlite_busy_timeout_ms)
        )
        event.listen(engine.sync_engine, "begin", _sqlite_begin)
        return engine
    connect_args: dict[str, Any] = {"timeout": connect_timeout}
    if command_timeout is not None:
        connect_args["command_timeout"] = command_timeout
    return create_async_engine(
        aurl,
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_pre_ping=True,
        pool_timeout=max(connect_timeout, command_timeout or 0.0),
        connect_args=connect_args,
    )
