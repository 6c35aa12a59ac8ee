"""One-time codes in SQL. Verification is one conditional statement (security.md §6):

    UPDATE challenges SET attempts = attempts + 1,
                          consumed_at = CASE WHEN code_hmac = :guess AND NOT phantom
                                             THEN :now END
     WHERE id = :id AND attempts < 3 AND consumed_at IS NULL AND voided_at IS NULL
       AND expires_at > :now
    RETURNING attempts, consumed_at

The row lock (PostgreSQL) or the write lock (SQLite, BEGIN IMMEDIATE) serialises concurrent
guesses, each re-checking the WHERE clause, so a code is checked at most 3 times and consumed
at most once, across threads and processes. Guesses are compared as HMACs, never as codes.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import and_, case, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from nopass.core.models import Challenge
from nopass.store.tables import ChallengeRow, table

MAX_ATTEMPTS = 3
_T = table(ChallengeRow)


def _challenge(row: Any) -> Challenge:
    return Challenge(
        id=row.id,
        tenant_id=row.tenant_id,
        connection_id=row.connection_id,
        client_id=row.client_id,
        identifier=row.identifier,
        code_hmac=row.code_hmac,
        key_id=row.key_id,
        send=row.send,
        created_at=row.created_at,
        expires_at=row.expires_at,
        phantom=row.phantom,
        auth_params=row.auth_params,
        attempts=row.attempts,
        consumed_at=row.consumed_at,
        voided_at=row.voided_at,
    )


class SqlChallengeRepo:
    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn

    async def void_pending(
        self, tenant_id: str, connection_id: str, identifier: str, now: datetime
    ) -> int:
        result = await self._conn.execute(
            update(_T)
            .where(
                _T.c.tenant_id == tenant_id,
                _T.c.connection_id == connection_id,
                _T.c.identifier == identifier,
                _T.c.consumed_at.is_(None),
                _T.c.voided_at.is_(None),
            )
            .values(voided_at=now)
        )
        return int(result.rowcount)

    async def add(self, challenge: Challenge) -> None:
        await self._conn.execute(
            insert(_T).values(
                id=challenge.id,
                tenant_id=challenge.tenant_id,
                connection_id=challenge.connection_id,
                client_id=challenge.client_id,
                identifier=challenge.identifier,
                code_hmac=challenge.code_hmac,
                key_id=challenge.key_id,
                send=challenge.send,
                auth_params=dict(challenge.auth_params),
                phantom=challenge.phantom,
                attempts=0,
                created_at=challenge.created_at,
                expires_at=challenge.expires_at,
            )
        )

    async def void(self, tenant_id: str, challenge_id: str, now: datetime) -> None:
        await self._conn.execute(
            update(_T)
            .where(_T.c.tenant_id == tenant_id, _T.c.id == challenge_id, _T.c.voided_at.is_(None))
            .values(voided_at=now)
        )

    async def latest(self, tenant_id: str, connection_id: str, identifier: str) -> Challenge | None:
        """The identity's most recent code, whatever its state: only the latest counts.
        An open code sorts first (a new start voids the older ones, so at most one is open
        unless two starts raced; then the newer wins)."""
        is_open = case((and_(_T.c.consumed_at.is_(None), _T.c.voided_at.is_(None)), 1), else_=0)
        row = (
            await self._conn.execute(
                select(_T)
                .where(
                    _T.c.tenant_id == tenant_id,
                    _T.c.connection_id == connection_id,
                    _T.c.identifier == identifier,
                )
                .order_by(is_open.desc(), _T.c.created_at.desc(), _T.c.id.desc())
                .limit(1)
            )
        ).first()
        return _challenge(row) if row is not None else None

    async def get(self, tenant_id: str, challenge_id: str) -> Challenge | None:
        row = (
            await self._conn.execute(
                select(_T).where(_T.c.tenant_id == tenant_id, _T.c.id == challenge_id)
            )
        ).first()
        return _challenge(row) if row is not None else None

    async def attempt(
        self, tenant_id: str, challenge_id: str, guess_mac: str, now: datetime
    ) -> bool | None:
        """Count one guess and decide it, atomically. True: consumed now (the guess was
        right); False: a counted wrong guess; None: the code was not open for guesses."""
        matches = and_(_T.c.code_hmac == guess_mac, _T.c.phantom.is_(False))
        row = (
            await self._conn.execute(
                update(_T)
                .where(*_open_for_guesses(tenant_id, challenge_id, now))
                .values(attempts=_T.c.attempts + 1, consumed_at=case((matches, now), else_=None))
                .returning(_T.c.consumed_at)
            )
        ).first()
        if row is None:
            return None
        return row.consumed_at is not None

    async def check(
        self, tenant_id: str, challenge_id: str, guess_mac: str, now: datetime
    ) -> bool | None:
        matches = and_(_T.c.code_hmac == guess_mac, _T.c.phantom.is_(False))
        row = (
            await self._conn.execute(
                update(_T)
                .where(*_open_for_guesses(tenant_id, challenge_id, now))
                .values(attempts=_T.c.attempts + case((matches, 0), else_=1))
                .returning(case((matches, 1), else_=0).label("ok"))
            )
        ).first()
        return None if row is None else bool(row.ok)


def _open_for_guesses(tenant_id: str, challenge_id: str, now: datetime) -> list[Any]:
    return [
        _T.c.tenant_id == tenant_id,
        _T.c.id == challenge_id,
        _T.c.attempts < MAX_ATTEMPTS,
        _T.c.consumed_at.is_(None),
        _T.c.voided_at.is_(None),
        _T.c.expires_at > now,
    ]
