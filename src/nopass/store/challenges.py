"""One-time codes in SQL. Verification is one conditional statement (docs/specs/security.md §6):

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

from sqlalchemy import and_, bindparam, case, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from nopass.core.models import Challenge
from nopass.core.otp import MAX_ATTEMPTS
from nopass.store.prebuilt import run
from nopass.store.tables import ChallengeRow, UTCDateTime, table

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


def _p(name: str) -> Any:
    """A bound parameter of a statement built once (statements are cached below: building
    one costs more CPU than running it)."""
    return bindparam(f"b_{name}")  # not a column's name: UPDATE ... SET reserves those


def _at(name: str) -> Any:
    return bindparam(f"b_{name}", type_=UTCDateTime())


def _args(**values: Any) -> dict[str, Any]:
    return {f"b_{name}": value for name, value in values.items()}


_IDENTITY = (
    _T.c.tenant_id == _p("tenant_id"),
    _T.c.connection_id == _p("connection_id"),
    _T.c.identifier == _p("identifier"),
)
_OPEN_FOR_GUESSES = (
    _T.c.tenant_id == _p("tenant_id"),
    _T.c.id == _p("challenge_id"),
    _T.c.attempts < MAX_ATTEMPTS,
    _T.c.consumed_at.is_(None),
    _T.c.voided_at.is_(None),
    _T.c.expires_at > _at("now"),
)
_MATCHES = and_(_T.c.code_hmac == _p("guess_mac"), _T.c.phantom.is_(False))
_IS_OPEN = case((and_(_T.c.consumed_at.is_(None), _T.c.voided_at.is_(None)), 1), else_=0)

VOID_PENDING = (
    update(_T)
    .where(*_IDENTITY, _T.c.consumed_at.is_(None), _T.c.voided_at.is_(None))
    .values(voided_at=_at("now"))
)
ADD = insert(_T)
VOID = (
    update(_T)
    .where(_T.c.tenant_id == _p("tenant_id"), _T.c.id == _p("challenge_id"))
    .where(_T.c.voided_at.is_(None))
    .values(voided_at=_at("now"))
)
LATEST = (
    select(_T)
    .where(*_IDENTITY)
    .order_by(_IS_OPEN.desc(), _T.c.created_at.desc(), _T.c.id.desc())
    .limit(1)
)
GET = select(_T).where(_T.c.tenant_id == _p("tenant_id"), _T.c.id == _p("challenge_id"))
ATTEMPT = (
    update(_T)
    .where(*_OPEN_FOR_GUESSES)
    .values(attempts=_T.c.attempts + 1, consumed_at=case((_MATCHES, _at("now")), else_=None))
    .returning(_T.c.consumed_at)
)
CHECK = (
    update(_T)
    .where(*_OPEN_FOR_GUESSES)
    .values(attempts=_T.c.attempts + case((_MATCHES, 0), else_=1))
    .returning(case((_MATCHES, 1), else_=0).label("ok"))
)


class SqlChallengeRepo:
    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn

    async def void_pending(
        self, tenant_id: str, connection_id: str, identifier: str, now: datetime
    ) -> int:
        result = await run(
            self._conn,
            VOID_PENDING,
            _args(tenant_id=tenant_id, connection_id=connection_id, identifier=identifier, now=now),
        )
        return int(result.rowcount)

    async def add(self, challenge: Challenge) -> None:
        await run(
            self._conn,
            ADD,
            {
                "id": challenge.id,
                "tenant_id": challenge.tenant_id,
                "connection_id": challenge.connection_id,
                "client_id": challenge.client_id,
                "identifier": challenge.identifier,
                "code_hmac": challenge.code_hmac,
                "key_id": challenge.key_id,
                "send": challenge.send,
                "auth_params": dict(challenge.auth_params),
                "phantom": challenge.phantom,
                "attempts": 0,
                "created_at": challenge.created_at,
                "expires_at": challenge.expires_at,
            },
        )

    async def void(self, tenant_id: str, challenge_id: str, now: datetime) -> None:
        await run(self._conn, VOID, _args(tenant_id=tenant_id, challenge_id=challenge_id, now=now))

    async def latest(self, tenant_id: str, connection_id: str, identifier: str) -> Challenge | None:
        """The identity's most recent code, whatever its state: only the latest counts.
        An open code sorts first (a new start voids the older ones, so at most one is open
        unless two starts raced; then the newer wins)."""
        params = _args(tenant_id=tenant_id, connection_id=connection_id, identifier=identifier)
        row = (await run(self._conn, LATEST, params)).first()
        return _challenge(row) if row is not None else None

    async def get(self, tenant_id: str, challenge_id: str) -> Challenge | None:
        params = _args(tenant_id=tenant_id, challenge_id=challenge_id)
        row = (await run(self._conn, GET, params)).first()
        return _challenge(row) if row is not None else None

    async def attempt(
        self, tenant_id: str, challenge_id: str, guess_mac: str, now: datetime
    ) -> bool | None:
        """Count one guess and decide it, atomically. True: consumed now (the guess was
        right); False: a counted wrong guess; None: the code was not open for guesses."""
        params = _guess(tenant_id, challenge_id, guess_mac, now)
        row = (await run(self._conn, ATTEMPT, params)).first()
        if row is None:
            return None
        return row.consumed_at is not None

    async def check(
        self, tenant_id: str, challenge_id: str, guess_mac: str, now: datetime
    ) -> bool | None:
        params = _guess(tenant_id, challenge_id, guess_mac, now)
        row = (await run(self._conn, CHECK, params)).first()
        return None if row is None else bool(row.ok)


def _guess(tenant_id: str, challenge_id: str, guess_mac: str, now: datetime) -> dict[str, Any]:
    return _args(tenant_id=tenant_id, challenge_id=challenge_id, guess_mac=guess_mac, now=now)
