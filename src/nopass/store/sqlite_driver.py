"""SQLite under SQLAlchemy's aiosqlite dialect, with one thread round trip per statement.

aiosqlite runs every call of a cursor in its connection thread, and SQLAlchemy's adapter makes
four such calls per SELECT (cursor, execute, fetchall, close) and three per write: each one a
thread wake-up plus an event-loop wake-up, about 60 µs of CPU here, most of a statement's cost
(docs/benchmarks.md). ``LeanConnection`` runs execute and fetchall as one call in the thread and
answers the rest from memory; the thread, its queue and close are aiosqlite's own.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import sqlite3
import time
import weakref
from collections.abc import Sequence
from functools import partial
from typing import Any

import aiosqlite

IMMEDIATE = "BEGIN IMMEDIATE"
# One writer at a time: SQLite has one write lock, and its busy handler polls for it with
# sleeps of 1-100 ms, so writers racing for it wait far longer than they would in a queue.
# Within a process, writers queue on an asyncio lock per database and event loop; between
# processes, on a lock file beside the database (``WriterLock``), polled every 50 µs-1 ms.
_gates: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, asyncio.Lock]] = (
    weakref.WeakKeyDictionary()
)


def _gate(path: str) -> asyncio.Lock:
    per_loop = _gates.setdefault(asyncio.get_running_loop(), {})
    return per_loop.setdefault(path, asyncio.Lock())


Outcome = tuple[Any, int, int | None, list[Any]]


class WriterLock:
    """``flock`` on ``<database>-writer.lock``, taken before BEGIN IMMEDIATE and released
    after COMMIT or ROLLBACK, in the connection's thread. A process that dies lets go of it;
    another program writing the database (``nopass apply``) still meets SQLite's own lock."""

    def __init__(self, database: str, timeout: float) -> None:
        self._path = f"{database}-writer.lock"
        self._timeout = timeout
        self._fd: int | None = None
        self.held = False

    def acquire(self) -> None:
        if self._fd is None:
            self._fd = os.open(self._path, os.O_RDWR | os.O_CREAT, 0o600)
        deadline, pause = time.monotonic() + self._timeout, 0.00005
        while True:
            try:
                fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise sqlite3.OperationalError("database is locked") from None
                time.sleep(pause)
                pause = min(pause * 2, 0.001)
            else:
                self.held = True
                return

    def release(self) -> None:
        if self.held and self._fd is not None:
            self.held = False
            fcntl.flock(self._fd, fcntl.LOCK_UN)

    def close(self) -> None:
        self.release()
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def _begin(db: sqlite3.Connection, begin: str | None, writer: WriterLock | None) -> None:
    if not begin:
        return
    if begin == IMMEDIATE and writer is not None:
        writer.acquire()
    try:
        db.execute(begin)
    except BaseException:
        if writer is not None:
            writer.release()
        raise


def _run(
    db: sqlite3.Connection,
    begin: str | None,
    writer: WriterLock | None,
    sql: str,
    parameters: Any,
    many: bool,
) -> Outcome:
    """One statement (``executemany`` when ``many``), the transaction's BEGIN before it,
    and its rows: everything SQLAlchemy asks of a cursor, in one call in the thread."""
    _begin(db, begin, writer)
    try:
        cursor = db.executemany(sql, parameters) if many else db.execute(sql, parameters)
    except BaseException:
        if writer is not None and not db.in_transaction:
            writer.release()
        raise
    try:
        rows = cursor.fetchall() if cursor.description else []
        return cursor.description, cursor.rowcount, cursor.lastrowid, rows
    finally:
        cursor.close()


def _end(db: sqlite3.Connection, writer: WriterLock | None, commit: bool) -> None:
    try:
        if db.in_transaction:
            (db.commit if commit else db.rollback)()
    finally:
        if writer is not None and not db.in_transaction:
            writer.release()


class LeanCursor:
    """The part of aiosqlite's cursor SQLAlchemy uses; results are fetched with the execute."""

    arraysize = 1

    def __init__(self, connection: LeanConnection) -> None:
        self._connection = connection
        self.description: Any = None
        self.rowcount = -1
        self.lastrowid: int | None = None
        self._rows: list[Any] = []

    async def __aenter__(self) -> LeanCursor:
        return self

    async def __aexit__(self, *_: object) -> None:
        self._rows = []

    async def execute(self, sql: str, parameters: Any = ()) -> LeanCursor:
        outcome = await self._connection.run(sql, parameters, many=False)
        self.description, self.rowcount, self.lastrowid, self._rows = outcome
        return self

    async def executemany(self, sql: str, parameters: Sequence[Any]) -> LeanCursor:
        outcome = await self._connection.run(sql, parameters, many=True)
        self.description, self.rowcount, self.lastrowid, self._rows = outcome
        return self

    async def fetchall(self) -> list[Any]:
        rows, self._rows = self._rows, []
        return rows

    async def fetchone(self) -> Any:
        return self._rows.pop(0) if self._rows else None

    async def fetchmany(self, size: int | None = None) -> list[Any]:
        count = size or self.arraysize
        rows, self._rows = self._rows[:count], self._rows[count:]
        return rows

    async def close(self) -> None:
        self._rows = []


class LeanConnection(aiosqlite.Connection):
    """``begin()`` only notes the BEGIN statement: it travels with the transaction's first
    statement, and a transaction that ran none has nothing to commit or roll back."""

    _begin: str | None = None
    _holding: asyncio.Lock | None = None
    path = ""
    lock_timeout = 10.0
    writer: WriterLock | None = None

    def cursor(self) -> LeanCursor:  # type: ignore[override]
        return LeanCursor(self)

    def begin(self, statement: str) -> None:
        self._begin = statement

    async def run(self, sql: str, parameters: Any, *, many: bool) -> Outcome:
        begin, self._begin = self._begin, None
        if begin == IMMEDIATE and self._holding is None:
            await self._take_gate()
        try:
            outcome: Outcome = await self._execute(  # type: ignore[no-untyped-call]
                _run, self._conn, begin, self.writer, sql, parameters, many
            )
            return outcome
        except asyncio.CancelledError:
            self._abandon()
            raise
        except BaseException:
            if not self._in_transaction():
                self._release_gate()
            raise

    def _abandon(self) -> None:
        """The caller was cancelled while its statement runs on (the thread cannot be
        stopped): roll back once it is done, in the thread, then let the next writer in."""
        gate, self._holding = self._holding, None
        if self._connection is None:
            if gate is not None:
                gate.release()
            return
        done = asyncio.get_running_loop().create_future()
        self._tx.put_nowait((done, partial(_end, self._connection, self.writer, False)))

        def settled(future: asyncio.Future[Any]) -> None:
            if not future.cancelled():
                future.exception()  # retrieved: a failed rollback leaves nothing to undo
            if gate is not None:
                gate.release()

        done.add_done_callback(settled)

    async def commit(self) -> None:
        await self._finish(commit=True)

    async def rollback(self) -> None:
        await self._finish(commit=False)

    async def close(self) -> None:
        self._release_gate()
        await super().close()
        if self.writer is not None:
            self.writer.close()

    async def _finish(self, *, commit: bool) -> None:
        self._begin = None
        try:
            # No round trip for a connection that holds no transaction (the pool's reset on
            # return, a read that ran nothing).
            if self._in_transaction():
                await self._execute(_end, self._conn, self.writer, commit)  # type: ignore[no-untyped-call]
        finally:
            self._release_gate()

    def _in_transaction(self) -> bool:
        # Read only between calls, when the connection's thread is idle.
        return self._connection is not None and self._connection.in_transaction

    async def _take_gate(self) -> None:
        gate = _gate(self.path)
        try:
            async with asyncio.timeout(self.lock_timeout):
                await gate.acquire()
        except TimeoutError:
            raise sqlite3.OperationalError("database is locked") from None
        self._holding = gate

    def _release_gate(self) -> None:
        gate, self._holding = self._holding, None
        if gate is not None:
            gate.release()


def connector(path: str, lock_timeout: float) -> Any:
    """``async_creator`` for ``create_async_engine``: a LeanConnection to ``path``."""

    def connect() -> LeanConnection:
        connection = LeanConnection(partial(sqlite3.connect, path, check_same_thread=False), 64)
        connection.path, connection.lock_timeout = path, lock_timeout
        if path != ":memory:" and not path.startswith("file:"):
            connection.writer = WriterLock(path, lock_timeout)
        return connection

    return connect
