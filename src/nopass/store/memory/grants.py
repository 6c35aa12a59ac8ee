"""Refresh tokens, authorization codes, sessions, login transactions and login tickets in
memory, found by the hash of their value like their SQL tables (``store/refresh_tokens.py``,
``store/authorization_codes.py``, ``store/sessions.py``, ``store/login_tickets.py``)."""

from __future__ import annotations

from collections.abc import Mapping, MutableMapping
from dataclasses import replace
from datetime import datetime
from typing import Any, Protocol

from nopass.core.models import (
    AuthorizationCode,
    LoginTicket,
    LoginTransaction,
    RefreshGrant,
    Session,
)
from nopass.store.memory.repos import Work
from nopass.store.memory.tables import (
    CodeRecord,
    DuplicateKey,
    RefreshRecord,
    SessionRecord,
    TicketRecord,
    TransactionRecord,
    insert,
)

TRANSACTION_UPDATABLE = frozenset(
    {"connection", "identifier", "challenge_id", "send", "last_sent_at", "completed_at"}
)


def _unique_hash(rows: Mapping[str, Any], attribute: str, value: str) -> None:
    """The hash columns are unique across tenants, as in the SQL schema."""
    if any(getattr(row, attribute) == value for row in rows.values()):
        raise DuplicateKey(f"duplicate {attribute}")


def _usable(grant: RefreshGrant, now: datetime) -> bool:
    """Neither revoked nor rotated, and unexpired."""
    return (
        grant.revoked_at is None
        and grant.rotated_at is None
        and (grant.expires_at is None or grant.expires_at > now)
    )


def _open(row: SessionRecord, now: datetime) -> bool:
    return row.revoked_at is None and row.session.expires_at > now


class MemoryRefreshTokenRepo:
    def __init__(self, work: Work) -> None:
        self._work = work

    async def add(self, tenant_id: str, grant: RefreshGrant, token_hash: str) -> None:
        tables = await self._work.writing()
        _unique_hash(tables.refresh_tokens, "token_hash", token_hash)
        stored = replace(grant, rotated_at=None, revoked_at=None)
        insert(tables.refresh_tokens, grant.id, RefreshRecord(tenant_id, token_hash, stored))

    async def find(self, tenant_id: str, token_hash: str) -> RefreshGrant | None:
        rows = self._work.reading().refresh_tokens.values()
        return next(
            (r.grant for r in rows if (r.tenant_id, r.token_hash) == (tenant_id, token_hash)),
            None,
        )

    async def mark_rotated(self, tenant_id: str, grant_id: str, now: datetime) -> bool:
        """True for exactly one caller; False when already rotated or revoked."""
        tables = await self._work.writing()
        row = tables.refresh_tokens.get(grant_id)
        if row is None or row.tenant_id != tenant_id:
            return False
        if row.grant.rotated_at is not None or row.grant.revoked_at is not None:
            return False
        tables.refresh_tokens[grant_id] = replace(row, grant=replace(row.grant, rotated_at=now))
        return True

    async def revoke_family(self, tenant_id: str, family_id: str, now: datetime) -> int:
        tables = await self._work.writing()
        family = [
            row
            for row in tables.refresh_tokens.values()
            if row.tenant_id == tenant_id
            and row.grant.family_id == family_id
            and row.grant.revoked_at is None
        ]
        for row in family:
            tables.refresh_tokens[row.grant.id] = replace(
                row, grant=replace(row.grant, revoked_at=now)
            )
        return len(family)

    async def get(self, tenant_id: str, grant_id: str, now: datetime) -> RefreshGrant | None:
        row = self._work.reading().refresh_tokens.get(grant_id)
        if row is None or row.tenant_id != tenant_id or not _usable(row.grant, now):
            return None
        return row.grant

    async def delete(self, tenant_id: str, grant_id: str) -> bool:
        return _remove_owned((await self._work.writing()).refresh_tokens, tenant_id, grant_id)

    async def list_for_user(
        self, tenant_id: str, user_id: str, *, after: str | None, limit: int, now: datetime
    ) -> list[RefreshGrant]:
        grants = sorted(
            (
                row.grant
                for row in self._work.reading().refresh_tokens.values()
                if row.tenant_id == tenant_id
                and row.grant.user_id == user_id
                and _usable(row.grant, now)
                and (after is None or row.grant.id > after)
            ),
            key=lambda g: g.id,
        )
        return grants[:limit]

    async def delete_for_user(self, tenant_id: str, user_id: str) -> int:
        tables = await self._work.writing()
        gone = [
            key
            for key, row in tables.refresh_tokens.items()
            if row.tenant_id == tenant_id and row.grant.user_id == user_id
        ]
        for key in gone:
            del tables.refresh_tokens[key]
        return len(gone)

    async def delete_for_client(self, tenant_id: str, client_id: str) -> int:
        tables = await self._work.writing()
        gone = [
            key
            for key, row in tables.refresh_tokens.items()
            if row.tenant_id == tenant_id and row.grant.client_id == client_id
        ]
        for key in gone:
            del tables.refresh_tokens[key]
        return len(gone)


class MemoryAuthorizationCodeRepo:
    def __init__(self, work: Work) -> None:
        self._work = work

    async def add(self, tenant_id: str, code: AuthorizationCode, code_hash: str) -> None:
        tables = await self._work.writing()
        _unique_hash(tables.authorization_codes, "code_hash", code_hash)
        stored = replace(code, used_at=None, refresh_family_id=None)
        insert(tables.authorization_codes, code.id, CodeRecord(tenant_id, code_hash, stored))

    async def redeem(
        self, tenant_id: str, code_hash: str, now: datetime
    ) -> tuple[AuthorizationCode | None, bool]:
        """``(code, first)``: ``first`` for the one redemption that wins."""
        tables = await self._work.writing()
        row = next(
            (
                r
                for r in tables.authorization_codes.values()
                if (r.tenant_id, r.code_hash) == (tenant_id, code_hash)
            ),
            None,
        )
        if row is None:
            return None, False
        if row.code.used_at is not None:
            return row.code, False
        used = replace(row.code, used_at=now)
        tables.authorization_codes[used.id] = replace(row, code=used)
        return used, True

    async def remember_refresh_family(self, tenant_id: str, code_id: str, family: str) -> None:
        tables = await self._work.writing()
        row = tables.authorization_codes.get(code_id)
        if row is not None and row.tenant_id == tenant_id:
            code = replace(row.code, refresh_family_id=family)
            tables.authorization_codes[code_id] = replace(row, code=code)


class MemorySessionRepo:
    def __init__(self, work: Work) -> None:
        self._work = work

    async def add(self, tenant_id: str, session: Session, token_hash: str) -> None:
        tables = await self._work.writing()
        _unique_hash(tables.sessions, "token_hash", token_hash)
        insert(tables.sessions, session.id, SessionRecord(tenant_id, token_hash, session))

    async def find(self, tenant_id: str, token_hash: str, now: datetime) -> Session | None:
        return next(
            (
                r.session
                for r in self._work.reading().sessions.values()
                if (r.tenant_id, r.token_hash) == (tenant_id, token_hash)
                and r.revoked_at is None
                and r.session.expires_at > now
            ),
            None,
        )

    async def revoke(self, tenant_id: str, token_hash: str, now: datetime) -> None:
        tables = await self._work.writing()
        for row in list(tables.sessions.values()):
            if (row.tenant_id, row.token_hash) == (tenant_id, token_hash):
                tables.sessions[row.session.id] = replace(row, revoked_at=now)

    async def get(self, tenant_id: str, session_id: str, now: datetime) -> Session | None:
        row = self._work.reading().sessions.get(session_id)
        if row is None or row.tenant_id != tenant_id or not _open(row, now):
            return None
        return row.session

    async def delete(self, tenant_id: str, session_id: str) -> bool:
        return _remove_owned((await self._work.writing()).sessions, tenant_id, session_id)

    async def list_for_user(
        self, tenant_id: str, user_id: str, *, after: str | None, limit: int, now: datetime
    ) -> list[Session]:
        sessions = sorted(
            (
                row.session
                for row in self._work.reading().sessions.values()
                if row.tenant_id == tenant_id
                and row.session.user_id == user_id
                and _open(row, now)
                and (after is None or row.session.id > after)
            ),
            key=lambda s: s.id,
        )
        return sessions[:limit]

    async def delete_for_user(self, tenant_id: str, user_id: str) -> int:
        tables = await self._work.writing()
        gone = [
            key
            for key, row in tables.sessions.items()
            if row.tenant_id == tenant_id and row.session.user_id == user_id
        ]
        for key in gone:
            del tables.sessions[key]
        return len(gone)


class MemoryTransactionRepo:
    def __init__(self, work: Work) -> None:
        self._work = work

    async def add(self, tenant_id: str, tx: LoginTransaction, token_hash: str) -> None:
        """Stored as the SQL ``INSERT`` stores it: what happens later starts empty."""
        tables = await self._work.writing()
        _unique_hash(tables.transactions, "token_hash", token_hash)
        stored = replace(
            tx,
            params=dict(tx.params),
            identifier=None,
            challenge_id=None,
            send=None,
            last_sent_at=None,
            completed_at=None,
        )
        insert(tables.transactions, tx.id, TransactionRecord(tenant_id, token_hash, stored))

    async def find(self, tenant_id: str, token_hash: str, now: datetime) -> LoginTransaction | None:
        return next(
            (
                r.tx
                for r in self._work.reading().transactions.values()
                if (r.tenant_id, r.token_hash) == (tenant_id, token_hash)
                and r.tx.expires_at > now
                and r.tx.completed_at is None
            ),
            None,
        )

    async def update(self, tenant_id: str, tx_id: str, values: Mapping[str, Any]) -> None:
        if not set(values) <= TRANSACTION_UPDATABLE:
            raise ValueError(f"not updatable: {sorted(set(values) - TRANSACTION_UPDATABLE)}")
        tables = await self._work.writing()
        row = tables.transactions.get(tx_id)
        if row is not None and row.tenant_id == tenant_id:
            tables.transactions[tx_id] = replace(row, tx=replace(row.tx, **values))


class MemoryLoginTicketRepo:
    def __init__(self, work: Work) -> None:
        self._work = work

    async def add(
        self, tenant_id: str, ticket: LoginTicket, ticket_hash: str, now: datetime
    ) -> None:
        tables = await self._work.writing()
        _unique_hash(tables.tickets, "ticket_hash", ticket_hash)
        insert(tables.tickets, ticket.id, TicketRecord(tenant_id, ticket_hash, ticket, now))

    async def consume(
        self, tenant_id: str, ticket_hash: str, client_id: str, now: datetime
    ) -> LoginTicket | None:
        tables = await self._work.writing()
        for row in tables.tickets.values():
            if (
                (row.tenant_id, row.ticket_hash) == (tenant_id, ticket_hash)
                and row.ticket.client_id == client_id
                and row.used_at is None
                and row.ticket.expires_at > now
            ):
                tables.tickets[row.ticket.id] = replace(row, used_at=now)
                return row.ticket
        return None


class _Owned(Protocol):
    tenant_id: str


def _remove_owned(rows: MutableMapping[str, Any], tenant_id: str, key: str) -> bool:
    """Delete ``rows[key]`` when the tenant owns it: whether it did."""
    row: _Owned | None = rows.get(key)
    if row is None or row.tenant_id != tenant_id:
        return False
    del rows[key]
    return True
