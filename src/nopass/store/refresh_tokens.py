"""Refresh tokens in SQL, stored as SHA-256 of their value (RFC 9700 §4.14 rotation)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import delete, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.elements import ColumnElement

from nopass.core.models import RefreshGrant
from nopass.store.prebuilt import run
from nopass.store.tables import RefreshTokenRow, table

_T = table(RefreshTokenRow)
_ADD = insert(_T)  # one per login with offline_access: prebuilt (store/prebuilt.py)


def _grant(row: Any) -> RefreshGrant:
    return RefreshGrant(
        id=row.id,
        family_id=row.family_id,
        client_id=row.client_id,
        user_id=row.user_id,
        scope=row.scope,
        audience=row.audience,
        created_at=row.created_at,
        expires_at=row.expires_at,
        rotated_at=row.rotated_at,
        revoked_at=row.revoked_at,
    )


def _usable(now: datetime) -> tuple[ColumnElement[bool], ...]:
    """Neither revoked nor rotated, and unexpired."""
    return (
        _T.c.revoked_at.is_(None),
        _T.c.rotated_at.is_(None),
        or_(_T.c.expires_at.is_(None), _T.c.expires_at > now),
    )


class SqlRefreshTokenRepo:
    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn

    async def add(self, tenant_id: str, grant: RefreshGrant, token_hash: str) -> None:
        values = {
            "id": grant.id,
            "tenant_id": tenant_id,
            "token_hash": token_hash,
            "family_id": grant.family_id,
            "client_id": grant.client_id,
            "user_id": grant.user_id,
            "scope": grant.scope,
            "audience": grant.audience,
            "created_at": grant.created_at,
            "expires_at": grant.expires_at,
        }
        await run(self._conn, _ADD, values)

    async def find(self, tenant_id: str, token_hash: str) -> RefreshGrant | None:
        row = (
            await self._conn.execute(
                select(_T).where(_T.c.tenant_id == tenant_id, _T.c.token_hash == token_hash)
            )
        ).first()
        return _grant(row) if row is not None else None

    async def mark_rotated(self, tenant_id: str, grant_id: str, now: datetime) -> bool:
        """Conditional: True for exactly one caller; False when already rotated or revoked."""
        result = await self._conn.execute(
            update(_T)
            .where(
                _T.c.tenant_id == tenant_id,
                _T.c.id == grant_id,
                _T.c.rotated_at.is_(None),
                _T.c.revoked_at.is_(None),
            )
            .values(rotated_at=now)
        )
        return bool(result.rowcount)

    async def revoke_family(self, tenant_id: str, family_id: str, now: datetime) -> int:
        result = await self._conn.execute(
            update(_T)
            .where(
                _T.c.tenant_id == tenant_id,
                _T.c.family_id == family_id,
                _T.c.revoked_at.is_(None),
            )
            .values(revoked_at=now)
        )
        return int(result.rowcount)

    async def delete_for_user(self, tenant_id: str, user_id: str) -> int:
        result = await self._conn.execute(
            delete(_T).where(_T.c.tenant_id == tenant_id, _T.c.user_id == user_id)
        )
        return int(result.rowcount)

    async def get(self, tenant_id: str, grant_id: str, now: datetime) -> RefreshGrant | None:
        row = (
            await self._conn.execute(
                select(_T).where(
                    _T.c.tenant_id == tenant_id,
                    _T.c.id == grant_id,
                    *_usable(now),
                )
            )
        ).first()
        return _grant(row) if row is not None else None

    async def delete(self, tenant_id: str, grant_id: str) -> bool:
        result = await self._conn.execute(
            delete(_T).where(_T.c.tenant_id == tenant_id, _T.c.id == grant_id)
        )
        return bool(result.rowcount)

    async def delete_for_client(self, tenant_id: str, client_id: str) -> int:
        result = await self._conn.execute(
            delete(_T).where(_T.c.tenant_id == tenant_id, _T.c.client_id == client_id)
        )
        return int(result.rowcount)

    async def list_for_user(
        self, tenant_id: str, user_id: str, *, after: str | None, limit: int, now: datetime
    ) -> list[RefreshGrant]:
        stmt = select(_T).where(
            _T.c.tenant_id == tenant_id,
            _T.c.user_id == user_id,
            *_usable(now),
        )
        if after is not None:
            stmt = stmt.where(_T.c.id > after)
        rows = await self._conn.execute(stmt.order_by(_T.c.id).limit(limit))
        return [_grant(r) for r in rows]
