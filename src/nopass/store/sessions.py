"""Browser sessions and hosted-page login transactions in SQL (found by token hash)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from nopass.core.models import LoginTransaction, Session
from nopass.store.tables import LoginTransactionRow, SessionRow, table

_S = table(SessionRow)
_X = table(LoginTransactionRow)


def _session(row: Any) -> Session:
    return Session(
        id=row.id, user_id=row.user_id, created_at=row.created_at, expires_at=row.expires_at
    )


class SqlSessionRepo:
    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn

    async def add(self, tenant_id: str, session: Session, token_hash: str) -> None:
        await self._conn.execute(
            insert(_S).values(
                id=session.id,
                tenant_id=tenant_id,
                token_hash=token_hash,
                user_id=session.user_id,
                created_at=session.created_at,
                expires_at=session.expires_at,
            )
        )

    async def find(self, tenant_id: str, token_hash: str, now: datetime) -> Session | None:
        row = (
            await self._conn.execute(
                select(_S).where(
                    _S.c.tenant_id == tenant_id,
                    _S.c.token_hash == token_hash,
                    _S.c.revoked_at.is_(None),
                    _S.c.expires_at > now,
                )
            )
        ).first()
        return _session(row) if row is not None else None

    async def revoke(self, tenant_id: str, token_hash: str, now: datetime) -> None:
        await self._conn.execute(
            update(_S)
            .where(_S.c.tenant_id == tenant_id, _S.c.token_hash == token_hash)
            .values(revoked_at=now)
        )

    async def list_for_user(
        self, tenant_id: str, user_id: str, *, after: str | None, limit: int, now: datetime
    ) -> list[Session]:
        stmt = select(_S).where(
            _S.c.tenant_id == tenant_id,
            _S.c.user_id == user_id,
            _S.c.revoked_at.is_(None),
            _S.c.expires_at > now,
        )
        if after is not None:
            stmt = stmt.where(_S.c.id > after)
        rows = await self._conn.execute(stmt.order_by(_S.c.id).limit(limit))
        return [_session(r) for r in rows]

    async def get(self, tenant_id: str, session_id: str, now: datetime) -> Session | None:
        row = (
            await self._conn.execute(
                select(_S).where(
                    _S.c.tenant_id == tenant_id,
                    _S.c.id == session_id,
                    _S.c.revoked_at.is_(None),
                    _S.c.expires_at > now,
                )
            )
        ).first()
        return _session(row) if row is not None else None

    async def delete(self, tenant_id: str, session_id: str) -> bool:
        result = await self._conn.execute(
            delete(_S).where(_S.c.tenant_id == tenant_id, _S.c.id == session_id)
        )
        return bool(result.rowcount)

    async def delete_for_user(self, tenant_id: str, user_id: str) -> int:
        result = await self._conn.execute(
            delete(_S).where(_S.c.tenant_id == tenant_id, _S.c.user_id == user_id)
        )
        return int(result.rowcount)


def _transaction(row: Any) -> LoginTransaction:
    return LoginTransaction(
        id=row.id,
        client_id=row.client_id,
        params=row.params,
        created_at=row.created_at,
        expires_at=row.expires_at,
        connection=row.connection,
        identifier=row.identifier,
        challenge_id=row.challenge_id,
        send=row.send,
        last_sent_at=row.last_sent_at,
        completed_at=row.completed_at,
    )


class SqlTransactionRepo:
    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn

    async def add(self, tenant_id: str, tx: LoginTransaction, token_hash: str) -> None:
        await self._conn.execute(
            insert(_X).values(
                id=tx.id,
                tenant_id=tenant_id,
                token_hash=token_hash,
                client_id=tx.client_id,
                params=dict(tx.params),
                connection=tx.connection,
                created_at=tx.created_at,
                expires_at=tx.expires_at,
            )
        )

    async def find(self, tenant_id: str, token_hash: str, now: datetime) -> LoginTransaction | None:
        row = (
            await self._conn.execute(
                select(_X).where(
                    _X.c.tenant_id == tenant_id,
                    _X.c.token_hash == token_hash,
                    _X.c.expires_at > now,
                    _X.c.completed_at.is_(None),
                )
            )
        ).first()
        return _transaction(row) if row is not None else None

    async def update(self, tenant_id: str, tx_id: str, values: Mapping[str, Any]) -> None:
        allowed = {
            "connection",
            "identifier",
            "challenge_id",
            "send",
            "last_sent_at",
            "completed_at",
        }
        if not set(values) <= allowed:
            raise ValueError(f"not updatable: {sorted(set(values) - allowed)}")
        await self._conn.execute(
            update(_X).where(_X.c.tenant_id == tenant_id, _X.c.id == tx_id).values(**values)
        )
