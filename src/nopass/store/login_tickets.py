"""``/co/authenticate`` login tickets in SQL: consumed by one conditional update."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import insert, update
from sqlalchemy.ext.asyncio import AsyncConnection

from nopass.core.models import LoginTicket
from nopass.store.tables import LoginTicketRow, table

_T = table(LoginTicketRow)


class SqlLoginTicketRepo:
    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn

    async def add(
        self, tenant_id: str, ticket: LoginTicket, ticket_hash: str, now: datetime
    ) -> None:
        await self._conn.execute(
            insert(_T).values(
                id=ticket.id,
                tenant_id=tenant_id,
                ticket_hash=ticket_hash,
                co_id=ticket.co_id,
                co_verifier_hash=ticket.co_verifier_hash,
                client_id=ticket.client_id,
                user_id=ticket.user_id,
                realm=ticket.realm,
                created_at=now,
                expires_at=ticket.expires_at,
            )
        )

    async def consume(
        self, tenant_id: str, ticket_hash: str, client_id: str, now: datetime
    ) -> LoginTicket | None:
        row = (
            await self._conn.execute(
                update(_T)
                .where(
                    _T.c.tenant_id == tenant_id,
                    _T.c.ticket_hash == ticket_hash,
                    _T.c.client_id == client_id,
                    _T.c.used_at.is_(None),
                    _T.c.expires_at > now,
                )
                .values(used_at=now)
                .returning(*_T.c)
            )
        ).first()
        if row is None:
            return None
        return LoginTicket(
            id=row.id,
            co_id=row.co_id,
            co_verifier_hash=row.co_verifier_hash,
            client_id=row.client_id,
            user_id=row.user_id,
            realm=row.realm,
            expires_at=row.expires_at,
        )
