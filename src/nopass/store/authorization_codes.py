"""Authorization codes in SQL: redeemed by one conditional update (single use)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from nopass.core.models import AuthorizationCode
from nopass.store.tables import AuthorizationCodeRow, table

_T = table(AuthorizationCodeRow)


def _code(row: Any) -> AuthorizationCode:
    return AuthorizationCode(
        id=row.id,
        client_id=row.client_id,
        user_id=row.user_id,
        redirect_uri=row.redirect_uri,
        scope=row.scope,
        audience=row.audience,
        nonce=row.nonce,
        code_challenge=row.code_challenge,
        code_challenge_method=row.code_challenge_method,
        auth_time=row.auth_time,
        created_at=row.created_at,
        expires_at=row.expires_at,
        used_at=row.used_at,
        refresh_family_id=row.refresh_family_id,
    )


class SqlAuthorizationCodeRepo:
    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn

    async def add(self, tenant_id: str, code: AuthorizationCode, code_hash: str) -> None:
        await self._conn.execute(
            insert(_T).values(
                id=code.id,
                tenant_id=tenant_id,
                code_hash=code_hash,
                client_id=code.client_id,
                user_id=code.user_id,
                redirect_uri=code.redirect_uri,
                scope=code.scope,
                audience=code.audience,
                nonce=code.nonce,
                code_challenge=code.code_challenge,
                code_challenge_method=code.code_challenge_method,
                auth_time=code.auth_time,
                created_at=code.created_at,
                expires_at=code.expires_at,
            )
        )

    async def redeem(
        self, tenant_id: str, code_hash: str, now: datetime
    ) -> tuple[AuthorizationCode | None, bool]:
        """``(code, first)``: ``first`` is True for the one redemption that wins; a known
        code with ``first`` False was redeemed before (a replay)."""
        row = (
            await self._conn.execute(
                update(_T)
                .where(
                    _T.c.tenant_id == tenant_id,
                    _T.c.code_hash == code_hash,
                    _T.c.used_at.is_(None),
                )
                .values(used_at=now)
                .returning(*_T.c)
            )
        ).first()
        if row is not None:
            return _code(row), True
        row = (
            await self._conn.execute(
                select(_T).where(_T.c.tenant_id == tenant_id, _T.c.code_hash == code_hash)
            )
        ).first()
        return (_code(row) if row is not None else None), False

    async def remember_refresh_family(self, tenant_id: str, code_id: str, family: str) -> None:
        await self._conn.execute(
            update(_T)
            .where(_T.c.tenant_id == tenant_id, _T.c.id == code_id)
            .values(refresh_family_id=family)
        )
