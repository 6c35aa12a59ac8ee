"""The in-memory unit of work: one transaction over a ``MemoryStore``'s tables.

Isolation is that of the SQL stores. A unit of work reads what is committed until it first
writes; its first write takes the store's write lock (one writer at a time, as SQLite's write
lock; PostgreSQL's row locks serialise the same conflicting writes) and copies the committed
tables; every read and write after that sees the copy. ``commit`` publishes the copy and lets
the lock go; leaving without ``commit`` (or on an error) drops it. Other units of work never
see uncommitted writes. A second unit of work that writes while the same task already holds
the lock in another one would wait forever: it raises ``RuntimeError`` instead.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Mapping
from types import TracebackType
from typing import Self

from nopass.store.memory.config import MemoryConfigRepo
from nopass.store.memory.grants import (
    MemoryAuthorizationCodeRepo,
    MemoryLoginTicketRepo,
    MemoryRefreshTokenRepo,
    MemorySessionRepo,
    MemoryTransactionRepo,
)
from nopass.store.memory.jobs import MemoryJobRepo
from nopass.store.memory.repos import (
    MemoryAssertionRepo,
    MemoryAuditRepo,
    MemoryChallengeRepo,
    MemoryFailureWindowRepo,
    MemoryOutboxRepo,
    MemoryUserRepo,
)
from nopass.store.memory.tables import Tables


class MemoryStore:
    """The committed tables, and the factory of units of work over them (a
    ``UnitOfWorkFactory``). ``tables`` is what is committed, for tests to look at."""

    def __init__(self) -> None:
        self.tables = Tables()
        # Connection id → name, for searches by ``identities.connection`` (the SQL store
        # joins its connections table; this one is told, by whoever configures connections).
        self.connection_names: dict[str, str] = {}
        self._lock = asyncio.Lock()
        self._holder: asyncio.Task[object] | None = None

    def __call__(self) -> MemoryUnitOfWork:
        return MemoryUnitOfWork(self)

    async def _acquire(self) -> None:
        task = asyncio.current_task()
        if self._lock.locked() and task is not None and self._holder is task:
            raise RuntimeError("this task already writes in another unit of work: deadlock")
        await self._lock.acquire()
        self._holder = task

    def _release(self) -> None:
        self._holder = None
        self._lock.release()


class MemoryUnitOfWork:
    challenges: MemoryChallengeRepo
    users: MemoryUserRepo
    outbox: MemoryOutboxRepo
    audit: MemoryAuditRepo
    assertions: MemoryAssertionRepo
    refresh_tokens: MemoryRefreshTokenRepo
    failures: MemoryFailureWindowRepo
    authorization_codes: MemoryAuthorizationCodeRepo
    sessions: MemorySessionRepo
    transactions: MemoryTransactionRepo
    tickets: MemoryLoginTicketRepo
    config: MemoryConfigRepo
    jobs: MemoryJobRepo

    def __init__(self, store: MemoryStore) -> None:
        self._store = store
        self._open = False
        self._working: Tables | None = None  # this transaction's tables once it writes
        self.challenges = MemoryChallengeRepo(self)
        self.users = MemoryUserRepo(self)
        self.outbox = MemoryOutboxRepo(self)
        self.audit = MemoryAuditRepo(self)
        self.assertions = MemoryAssertionRepo(self)
        self.refresh_tokens = MemoryRefreshTokenRepo(self)
        self.failures = MemoryFailureWindowRepo(self)
        self.authorization_codes = MemoryAuthorizationCodeRepo(self)
        self.sessions = MemorySessionRepo(self)
        self.transactions = MemoryTransactionRepo(self)
        self.tickets = MemoryLoginTicketRepo(self)
        self.config = MemoryConfigRepo(self)
        self.jobs = MemoryJobRepo(self)

    async def __aenter__(self) -> Self:
        if self._open:
            raise RuntimeError("unit of work is already open")
        self._open = True
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._open = False
        self._end()

    @property
    def connection_names(self) -> Mapping[str, str]:
        return self._store.connection_names

    def reading(self) -> Tables:
        self._check_open()
        return self._working if self._working is not None else self._store.tables

    async def writing(self) -> Tables:
        self._check_open()
        if self._working is None:
            await self._store._acquire()
            self._working = self._store.tables.copy()
        return self._working

    async def commit(self) -> None:
        """Publish this transaction's writes; later ones begin a new transaction."""
        self._check_open()
        if self._working is not None:
            self._store.tables = self._working
        self._end()

    @contextlib.asynccontextmanager
    async def savepoint(self, *, keep: bool) -> AsyncIterator[None]:
        """Kept at the end when ``keep``; else, or on an error, its writes are undone while
        the transaction goes on."""
        before = (await self.writing()).copy()
        try:
            yield
        except BaseException:
            self._working = before
            raise
        if not keep:
            self._working = before

    def _end(self) -> None:
        if self._working is not None:
            self._working = None
            self._store._release()

    def _check_open(self) -> None:
        if not self._open:
            raise RuntimeError("unit of work is not open")
