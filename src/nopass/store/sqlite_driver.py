"""SQLite under SQLAlchemy's aiosqlite dialect, its statements run on the event loop.

aiosqlite runs every call in a thread of its own connection, and SQLAlchemy's adapter makes
several such calls per statement: each a thread wake-up, an event-loop wake-up and a GIL
hand-off, more CPU than the statement itself (a statement on an indexed table takes a few
microseconds; docs/benchmarks.md). ``LeanConnection`` runs statements, COMMIT and ROLLBACK
directly, the way an in-process database is used from any single-threaded server; the
aiosqlite thread only opens and closes the connection.

Nothing waits for a lock inside SQLite, which would stall every request of the process:
``busy_timeout`` is 0, and a transaction whose BEGIN finds the database locked tries again
after an asyncio sleep, until the configured busy timeout has passed. What is left blocking is
the disk: a commit's fsync (``synchronous=FULL``) and, every thousand pages, a checkpoint. That
is why SQLite is for one machine with a local disk (PostgreSQL otherwise).
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import sqlite3
import weakref
from collections.abc import Sequence
from functools import partial
from typing import Any

import aiosqlite

IMMEDIATE = "BEGIN IMMEDIATE"
# One writer at a time: SQLite has one write lock. Within a process, writers queue on an
# asyncio lock per database and event loop; between processes, on a lock file beside the
# database (``WriterLock``).
_gates: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, asyncio.Lock]] = (
    weakref.WeakKeyDictionary()
)
FIRST_PAUSE, LONGEST_PAUSE = 0.0002, 0.005


def _gate(path: str) -> asyncio.Lock:
    per_loop = _gates.setdefault(asyncio.get_running_loop(), {})
    return per_loop.setdefault(path, asyncio.Lock())


def _locked(exc: sqlite3.OperationalError) -> bool:
    return exc.sqlite_errorcode in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)


async def _pause(pause: float, deadline: float) -> float:
    """Sleep ``pause`` (doubling up to LONGEST_PAUSE), or raise "database is locked" once
    ``deadline`` has passed."""
    if asyncio.get_running_loop().time() >= deadline:
        raise sqlite3.OperationalError("database is locked")
    await asyncio.sleep(pause)
    return min(pause * 2, LONGEST_PAUSE)


Outcome = tuple[Any, int, int | None, list[Any]]


class WriterLock:
    """``flock`` on ``<database>-writer.lock``, taken before BEGIN IMMEDIATE and released
    after COMMIT or ROLLBACK. A process that dies lets go of it; another program writing the
    database (``sqlite3``) still meets SQLite's own lock.

    Taken without waiting when it is free. When another process holds it, the wait is a
    blocking ``flock`` in a worker thread, on a descriptor of its own: the kernel wakes it
    the moment the lock is let go, so a waiting process gets its turn instead of polling
    while the holder's next writers take the lock again (seen: 42 ms average waits in one
    process against 2 ms in the other). Only one writer per process waits here; the others
    queue on the process's gate."""

    def __init__(self, database: str) -> None:
        self._path = f"{database}-writer.lock"
        self._fd: int | None = None
        self._holding_fd: int | None = None

    @property
    def held(self) -> bool:
        return self._holding_fd is not None

    async def acquire(self, deadline: float) -> None:
        if self._fd is None:
            self._fd = self._open()
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pass
        else:
            self._holding_fd = self._fd
            return
        loop = asyncio.get_running_loop()
        waiter = self._open()
        taken = loop.run_in_executor(None, fcntl.flock, waiter, fcntl.LOCK_EX)
        try:
            async with asyncio.timeout_at(deadline):
                await asyncio.shield(taken)
        except BaseException as exc:
            # The thread cannot be stopped: closing its descriptor once its flock returns
            # lets go of a lock taken too late.
            taken.add_done_callback(lambda _: os.close(waiter))
            if isinstance(exc, TimeoutError):
                raise sqlite3.OperationalError("database is locked") from None
            raise
        self._holding_fd = waiter

    def release(self) -> None:
        fd, self._holding_fd = self._holding_fd, None
        if fd is None:
            return
        if fd == self._fd:
            fcntl.flock(fd, fcntl.LOCK_UN)
        else:
            os.close(fd)  # a waiter's own descriptor: closing it lets go

    def close(self) -> None:
        self.release()
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def _open(self) -> int:
        return os.open(self._path, os.O_RDWR | os.O_CREAT, 0o600)


def _run(db: sqlite3.Connection, sql: str, parameters: Any, many: bool) -> Outcome:
    """One statement (``executemany`` when ``many``) and its rows: everything SQLAlchemy
    asks of a cursor, in one call."""
    cursor = db.executemany(sql, parameters) if many else db.execute(sql, parameters)
    try:
        rows = cursor.fetchall() if cursor.description else []
        return cursor.description, cursor.rowcount, cursor.lastrowid, rows
    finally:
        cursor.close()


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
    """``begin()`` only notes the BEGIN statement: it is sent with the transaction's first
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
        db = self._db()
        begin, self._begin = self._begin, None
        if begin is None:
            return _run(db, sql, parameters, many)
        try:
            await self._open(db, begin)
            return _run(db, sql, parameters, many)
        except BaseException:
            if not db.in_transaction:
                self._let_go()
            raise

    async def _open(self, db: sqlite3.Connection, begin: str) -> None:
        """BEGIN, once this connection's turn to write has come (``IMMEDIATE``) and SQLite
        takes it: waits are asyncio sleeps, bounded by ``lock_timeout``."""
        deadline = asyncio.get_running_loop().time() + self.lock_timeout
        if begin == IMMEDIATE:
            await self._take_gate(deadline)
            if self.writer is not None:
                await self.writer.acquire(deadline)
        pause = FIRST_PAUSE
        while True:
            try:
                db.execute(begin)
                return
            except sqlite3.OperationalError as exc:
                if not _locked(exc):
                    raise
            pause = await _pause(pause, deadline)

    async def commit(self) -> None:
        self._finish(commit=True)

    async def rollback(self) -> None:
        self._finish(commit=False)

    async def close(self) -> None:
        self._let_go()
        await super().close()
        if self.writer is not None:
            self.writer.close()

    def _finish(self, *, commit: bool) -> None:
        self._begin = None
        db = self._connection
        # Nothing to do for a connection that holds no transaction (the pool's reset on
        # return, a read that ran nothing).
        try:
            if db is not None and db.in_transaction:
                (db.commit if commit else db.rollback)()
        finally:
            if db is None or not db.in_transaction:
                self._let_go()

    def _db(self) -> sqlite3.Connection:
        if self._connection is None:
            raise ValueError("Connection closed")
        return self._connection

    async def _take_gate(self, deadline: float) -> None:
        if self._holding is not None:
            return
        gate = _gate(self.path)
        if gate.locked():
            try:
                async with asyncio.timeout_at(deadline):
                    await gate.acquire()
            except TimeoutError:
                raise sqlite3.OperationalError("database is locked") from None
        else:
            await gate.acquire()
        self._holding = gate

    def _let_go(self) -> None:
        """Let the next writer in: the lock file, then this process's queue."""
        if self.writer is not None:
            self.writer.release()
        gate, self._holding = self._holding, None
        if gate is not None:
            gate.release()


def connector(path: str, lock_timeout: float) -> Any:
    """``async_creator`` for ``create_async_engine``: a LeanConnection to ``path``."""

    def connect() -> LeanConnection:
        # timeout=0: SQLite's busy handler would block the event loop (see the module note)
        opener = partial(sqlite3.connect, path, timeout=0, check_same_thread=False)
        connection = LeanConnection(opener, 64)
        connection.path, connection.lock_timeout = path, lock_timeout
        if path != ":memory:" and not path.startswith("file:"):
            connection.writer = WriterLock(path)
        return connection

    return connect
