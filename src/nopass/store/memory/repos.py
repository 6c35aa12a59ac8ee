"""One-time codes, users, failure windows, the outbox, audit events and assertion ``jti``s in
memory, deciding like the SQL statements of ``store/challenges.py``, ``store/users.py``,
``store/failure_windows.py`` and ``store/unit_of_work.py``.

Every write first takes the store's write lock (``Work.writing``) and only then reads what it
decides on, so a conditional update is atomic as the SQL one is under its row or write lock.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any, Protocol

from nopass.core import log_query
from nopass.core.lucene import Node
from nopass.core.models import AuditEvent, Challenge, LoggedEvent, Message, User
from nopass.core.otp import MAX_ATTEMPTS, new_id
from nopass.core.ports import UserSort
from nopass.core.user_query import matches, ordered, search_view
from nopass.store.memory.tables import (
    AuditRecord,
    DuplicateKey,
    FailureRecord,
    OutboxRecord,
    Tables,
    insert,
)

OUTBOX_PROVIDER = "outbox"


class Work(Protocol):
    """A unit of work's view of the tables."""

    def reading(self) -> Tables:
        """What this unit of work sees: its own writes, else what is committed."""
        ...

    async def writing(self) -> Tables:
        """This unit of work's tables, to change (takes the write lock on first use)."""
        ...

    @property
    def connection_names(self) -> Mapping[str, str]:
        """Connection id → name (what SQL joins for ``identities.connection``)."""
        ...


def _open_for_guesses(row: Challenge | None, tenant_id: str, now: datetime) -> bool:
    return (
        row is not None
        and row.tenant_id == tenant_id
        and row.attempts < MAX_ATTEMPTS
        and row.consumed_at is None
        and row.voided_at is None
        and row.expires_at > now
    )


def _matches(row: Challenge, guess_mac: str) -> bool:
    return hmac.compare_digest(row.code_hmac.encode(), guess_mac.encode()) and not row.phantom


class MemoryChallengeRepo:
    def __init__(self, work: Work) -> None:
        self._work = work

    async def void_pending(
        self, tenant_id: str, connection_id: str, identifier: str, now: datetime
    ) -> int:
        tables = await self._work.writing()
        pending = [
            row
            for row in tables.challenges.values()
            if (row.tenant_id, row.connection_id, row.identifier)
            == (tenant_id, connection_id, identifier)
            and row.consumed_at is None
            and row.voided_at is None
        ]
        for row in pending:
            tables.challenges[row.id] = replace(row, voided_at=now)
        return len(pending)

    async def add(self, challenge: Challenge) -> None:
        tables = await self._work.writing()
        row = replace(
            challenge,
            auth_params=dict(challenge.auth_params),
            attempts=0,
            consumed_at=None,
            voided_at=None,
        )
        insert(tables.challenges, challenge.id, row)

    async def void(self, tenant_id: str, challenge_id: str, now: datetime) -> None:
        tables = await self._work.writing()
        row = tables.challenges.get(challenge_id)
        if row is not None and row.tenant_id == tenant_id and row.voided_at is None:
            tables.challenges[challenge_id] = replace(row, voided_at=now)

    async def latest(self, tenant_id: str, connection_id: str, identifier: str) -> Challenge | None:
        """The most recent code, an open one first (as ``SqlChallengeRepo.latest``)."""
        rows = [
            row
            for row in self._work.reading().challenges.values()
            if (row.tenant_id, row.connection_id, row.identifier)
            == (tenant_id, connection_id, identifier)
        ]

        def order(row: Challenge) -> tuple[bool, datetime, str]:
            return row.consumed_at is None and row.voided_at is None, row.created_at, row.id

        return max(rows, key=order, default=None)

    async def get(self, tenant_id: str, challenge_id: str) -> Challenge | None:
        row = self._work.reading().challenges.get(challenge_id)
        return row if row is not None and row.tenant_id == tenant_id else None

    async def attempt(
        self, tenant_id: str, challenge_id: str, guess_mac: str, now: datetime
    ) -> bool | None:
        tables = await self._work.writing()
        row = tables.challenges.get(challenge_id)
        if row is None or not _open_for_guesses(row, tenant_id, now):
            return None
        consumed = now if _matches(row, guess_mac) else None
        tables.challenges[challenge_id] = replace(
            row, attempts=row.attempts + 1, consumed_at=consumed
        )
        return consumed is not None

    async def check(
        self, tenant_id: str, challenge_id: str, guess_mac: str, now: datetime
    ) -> bool | None:
        tables = await self._work.writing()
        row = tables.challenges.get(challenge_id)
        if row is None or not _open_for_guesses(row, tenant_id, now):
            return None
        if _matches(row, guess_mac):
            return True
        tables.challenges[challenge_id] = replace(row, attempts=row.attempts + 1)
        return False


def _find_user(tables: Tables, tenant_id: str, connection_id: str, identifier: str) -> User | None:
    return next(
        (
            user
            for user in tables.users.values()
            if (user.tenant_id, user.connection_id, user.identifier)
            == (tenant_id, connection_id, identifier)
        ),
        None,
    )


class MemoryUserRepo:
    def __init__(self, work: Work) -> None:
        self._work = work

    async def exists(self, tenant_id: str, connection_id: str, identifier: str) -> bool:
        return _find_user(self._work.reading(), tenant_id, connection_id, identifier) is not None

    async def get(self, tenant_id: str, user_id: str) -> User | None:
        return self._work.reading().users.get((tenant_id, user_id))

    async def record_login(
        self,
        tenant_id: str,
        connection_id: str,
        identifier: str,
        *,
        new_user_id: str,
        profile: Mapping[str, Any],
        ip: str | None,
        now: datetime,
    ) -> tuple[User, bool] | None:
        """Create the user (``new_user_id``, ``profile``) or count its login; None, writing
        nothing, when the user is blocked."""
        tables = await self._work.writing()
        known = _find_user(tables, tenant_id, connection_id, identifier)
        if known is not None:
            counted = await self.count_login(tenant_id, connection_id, identifier, ip=ip, now=now)
            return None if counted is None else (counted, False)
        user = User(
            tenant_id=tenant_id,
            user_id=new_user_id,
            connection_id=connection_id,
            identifier=identifier,
            profile=dict(profile),
            created_at=now,
            updated_at=now,
            last_login=now,
            last_ip=ip,
            logins_count=1,
        )
        insert(tables.users, (tenant_id, new_user_id), user)
        return user, True

    async def count_login(
        self, tenant_id: str, connection_id: str, identifier: str, *, ip: str | None, now: datetime
    ) -> User | None:
        """Count an existing user's login; None, writing nothing, when there is none or it
        is blocked."""
        tables = await self._work.writing()
        known = _find_user(tables, tenant_id, connection_id, identifier)
        if known is None or known.blocked:
            return None
        user = replace(
            known, last_login=now, last_ip=ip, updated_at=now, logins_count=known.logins_count + 1
        )
        tables.users[(tenant_id, user.user_id)] = user
        return user

    async def find(self, tenant_id: str, connection_id: str, identifier: str) -> User | None:
        return _find_user(self._work.reading(), tenant_id, connection_id, identifier)

    async def set_blocked(
        self, tenant_id: str, user_id: str, blocked: bool, *, now: datetime
    ) -> User | None:
        tables = await self._work.writing()
        known = tables.users.get((tenant_id, user_id))
        if known is None:
            return None
        user = replace(known, blocked=blocked, updated_at=now)
        tables.users[(tenant_id, user_id)] = user
        return user

    async def add(self, user: User) -> bool:
        tables = await self._work.writing()
        key = (user.tenant_id, user.user_id)
        if key in tables.users or _find_user(
            tables, user.tenant_id, user.connection_id, user.identifier
        ):
            return False
        tables.users[key] = replace(
            user,
            profile=dict(user.profile),
            app_metadata=dict(user.app_metadata),
            user_metadata=dict(user.user_metadata),
        )
        return True

    async def replace(self, user: User) -> bool:
        tables = await self._work.writing()
        key = (user.tenant_id, user.user_id)
        stored = tables.users.get(key)
        holder = _find_user(tables, user.tenant_id, user.connection_id, user.identifier)
        if stored is None or (holder is not None and holder.user_id != user.user_id):
            return False
        tables.users[key] = replace(
            stored,
            connection_id=user.connection_id,
            identifier=user.identifier,
            profile=dict(user.profile),
            updated_at=user.updated_at,
            app_metadata=dict(user.app_metadata),
            user_metadata=dict(user.user_metadata),
            blocked=user.blocked,
        )
        return True

    async def delete(self, tenant_id: str, user_id: str) -> User | None:
        tables = await self._work.writing()
        return tables.users.pop((tenant_id, user_id), None)

    async def delete_for_connection(self, tenant_id: str, connection_id: str) -> list[str]:
        tables = await self._work.writing()
        gone = sorted(
            user_id
            for (tenant, user_id), user in tables.users.items()
            if tenant == tenant_id and user.connection_id == connection_id
        )
        for user_id in gone:
            del tables.users[(tenant_id, user_id)]
        return gone

    async def page(
        self,
        tenant_id: str,
        *,
        offset: int,
        limit: int,
        sort: UserSort,
        query: Node | None = None,
    ) -> list[User]:
        """The search's own semantics (``core/user_query.py``: ``matches``, ``ordered``), which
        the SQL translation is held to."""
        views = self._matching(tenant_id, query)
        return [view["_user"] for view in ordered(views, sort)[offset : offset + limit]]

    async def count(self, tenant_id: str, query: Node | None = None) -> int:
        return len(self._matching(tenant_id, query))

    def _matching(self, tenant_id: str, query: Node | None) -> list[dict[str, Any]]:
        names = self._work.connection_names
        found = []
        for (t, _), user in self._work.reading().users.items():
            if t == tenant_id:
                view = search_view(user, names.get(user.connection_id, user.connection_id))
                if matches(query, view):
                    found.append({**view, "_user": user})
        return found

    async def by_identifier(self, tenant_id: str, identifier: str) -> list[User]:
        found = [
            u
            for (t, _), u in self._work.reading().users.items()
            if t == tenant_id and u.identifier == identifier
        ]
        return sorted(found, key=lambda u: (u.created_at, u.user_id))


class MemoryFailureWindowRepo:
    def __init__(self, work: Work) -> None:
        self._work = work

    async def current(
        self, tenant_id: str, connection_id: str, identifier: str, window: timedelta, now: datetime
    ) -> tuple[int, datetime | None]:
        row = self._work.reading().failures.get((tenant_id, connection_id, identifier))
        if row is None or row.window_start <= now - window:
            return 0, None
        return row.failures, row.window_start

    async def record_failure(
        self, tenant_id: str, connection_id: str, identifier: str, window: timedelta, now: datetime
    ) -> int:
        tables = await self._work.writing()
        key = (tenant_id, connection_id, identifier)
        row = tables.failures.get(key)
        if row is None or row.window_start <= now - window:
            row = FailureRecord(window_start=now, failures=1)
        else:
            row = replace(row, failures=row.failures + 1)
        tables.failures[key] = row
        return row.failures

    async def reset(self, tenant_id: str, connection_id: str, identifier: str) -> None:
        tables = await self._work.writing()
        tables.failures.pop((tenant_id, connection_id, identifier), None)


class MemoryOutboxRepo:
    def __init__(self, work: Work) -> None:
        self._work = work

    async def add(
        self,
        tenant_id: str,
        message: Message,
        *,
        provider: str,
        challenge_id: str | None,
        code: str | None,
        link: str | None,
        now: datetime,
    ) -> str:
        tables = await self._work.writing()
        message_id = new_id()
        record = OutboxRecord(
            id=message_id,
            tenant_id=tenant_id,
            message=message,
            provider=provider,
            status="pending" if provider != OUTBOX_PROVIDER else "stored",
            challenge_id=challenge_id,
            code=code,
            link=link,
            attempts=0,
            next_attempt_at=now,
            created_at=now,
        )
        insert(tables.outbox, message_id, record)
        return message_id


class MemoryAuditRepo:
    def __init__(self, work: Work) -> None:
        self._work = work

    async def add(self, event: AuditEvent, now: datetime) -> None:
        tables = await self._work.writing()
        stored = replace(
            event, user_agent=(event.user_agent or "")[:512] or None, details=dict(event.details)
        )
        tables.audit.append(AuditRecord(event=stored, created_at=now))

    def _numbered(self, tenant_id: str) -> list[tuple[int, AuditRecord]]:
        """The tenant's events with their numbers (the append-only list's positions + 1)."""
        records = self._work.reading().audit
        return [(n, r) for n, r in enumerate(records, 1) if r.event.tenant_id == tenant_id]

    async def get(self, tenant_id: str, log_id: str) -> LoggedEvent | None:
        number = LoggedEvent.number_of(log_id)
        found = [_logged(n, r) for n, r in self._numbered(tenant_id) if n == number]
        return found[0] if found else None

    async def page(
        self,
        tenant_id: str,
        *,
        user_id: str | None,
        newest_first: bool,
        offset: int,
        limit: int,
        query: Node | None = None,
    ) -> tuple[list[LoggedEvent], int]:
        chosen = [
            (n, r)
            for n, r in self._numbered(tenant_id)
            if (user_id is None or r.event.user_id == user_id)
            and log_query.matches(query, log_query.stored_view(_logged(n, r)))
        ]
        ordered = chosen[::-1] if newest_first else chosen
        return [_logged(n, r) for n, r in ordered[offset : offset + limit]], len(chosen)

    async def after(self, tenant_id: str, log_id: str | None, limit: int) -> list[LoggedEvent]:
        start = LoggedEvent.number_of(log_id) or 0 if log_id is not None else 0
        later = [(n, r) for n, r in self._numbered(tenant_id) if n > start]
        return [_logged(n, r) for n, r in later[:limit]]


def _logged(number: int, record: AuditRecord) -> LoggedEvent:
    return LoggedEvent(log_id=LoggedEvent.id_of(number), date=record.created_at, event=record.event)


class MemoryAssertionRepo:
    def __init__(self, work: Work) -> None:
        self._work = work

    async def claim_jti(
        self, tenant_id: str, client_id: str, jti: str, expires_at: datetime, now: datetime
    ) -> bool:
        tables = await self._work.writing()
        try:
            insert(tables.assertions, (tenant_id, client_id, jti), expires_at)
        except DuplicateKey:
            return False
        return True
