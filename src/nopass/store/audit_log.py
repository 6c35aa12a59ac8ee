"""The tenant audit log in SQL: written in the request's transaction (``SqlAuditRepo.add``),
read by the Management API (``get``, ``page``, ``after``) and by ``nopass logs``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

from sqlalchemy import func, insert, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from nopass.core.lucene import Node
from nopass.core.models import AuditEvent, LoggedEvent
from nopass.store.engine import reader
from nopass.store.log_search import log_filter
from nopass.store.prebuilt import run
from nopass.store.tables import AuditEventRow, TenantRow, table

_T = table(AuditEventRow)
ADD_AUDIT = insert(_T)


def _logged(row: Any) -> LoggedEvent:
    return LoggedEvent(
        log_id=LoggedEvent.id_of(row.id),
        date=row.created_at,
        event=AuditEvent(
            tenant_id=row.tenant_id,
            type=row.type,
            description=row.description,
            ip=row.ip,
            user_agent=row.user_agent,
            client_id=row.client_id,
            connection=row.connection,
            user_name=row.user_name,
            user_id=row.user_id,
            details=row.details or {},
        ),
    )


class SqlAuditRepo:
    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn

    async def add(self, event: AuditEvent, now: datetime) -> None:
        await run(
            self._conn,
            ADD_AUDIT,
            {
                "tenant_id": event.tenant_id,
                "type": event.type,
                "created_at": now,
                "description": event.description,
                "ip": event.ip,
                "user_agent": (event.user_agent or "")[:512] or None,
                "client_id": event.client_id,
                "connection": event.connection,
                "user_name": event.user_name,
                "user_id": event.user_id,
                "details": dict(event.details),
            },
        )

    async def get(self, tenant_id: str, log_id: str) -> LoggedEvent | None:
        number = LoggedEvent.number_of(log_id)
        if number is None:
            return None
        query = select(_T).where(_T.c.tenant_id == tenant_id, _T.c.id == number)
        row = (await self._conn.execute(query)).first()
        return _logged(row) if row is not None else None

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
        where = [_T.c.tenant_id == tenant_id]
        if user_id is not None:
            where.append(_T.c.user_id == user_id)
        searched = log_filter(query, self._conn.dialect.name)
        if searched is not None:
            where.append(searched)
        order = _T.c.id.desc() if newest_first else _T.c.id.asc()
        chosen = select(_T).where(*where).order_by(order).offset(offset).limit(limit)
        rows = (await self._conn.execute(chosen)).all()
        total = await self._conn.scalar(select(func.count()).select_from(_T).where(*where))
        return [_logged(row) for row in rows], int(total or 0)

    async def after(self, tenant_id: str, log_id: str | None, limit: int) -> list[LoggedEvent]:
        query = select(_T).where(_T.c.tenant_id == tenant_id)
        if log_id is not None:
            query = query.where(_T.c.id > (LoggedEvent.number_of(log_id) or 0))
        rows = (await self._conn.execute(query.order_by(_T.c.id).limit(limit))).all()
        return [_logged(row) for row in rows]


async def tenant_id_by_name(engine: AsyncEngine, name: str) -> str | None:
    async with reader(engine).connect() as conn:
        value = await conn.scalar(select(TenantRow.id).where(TenantRow.name == name))
    return str(value) if value is not None else None


async def read_events(
    engine: AsyncEngine,
    tenant_id: str,
    *,
    type_: str | None = None,
    since: datetime | None = None,
    user_id: str | None = None,
    limit: int | None = None,
) -> AsyncIterator[dict[str, Any]]:
    query = select(_T).where(_T.c.tenant_id == tenant_id).order_by(_T.c.id)
    if type_:
        query = query.where(_T.c.type == type_)
    if since:
        query = query.where(_T.c.created_at >= since)
    if user_id:
        query = query.where(_T.c.user_id == user_id)
    if limit:
        query = query.limit(limit)
    async with reader(engine).connect() as conn:
        result = await conn.stream(query)
        async for row in result:
            m = row._mapping
            yield {
                "date": m["created_at"].isoformat().replace("+00:00", "Z"),
                "type": m["type"],
                "description": m["description"],
                "ip": m["ip"],
                "user_agent": m["user_agent"],
                "client_id": m["client_id"],
                "connection": m["connection"],
                "user_name": m["user_name"],
                "user_id": m["user_id"],
                "details": m["details"],
                "log_id": LoggedEvent.id_of(m["id"]),
            }
