"""Reading the tenant audit log (``nopass logs``)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from nopass.store.engine import reader
from nopass.store.tables import AuditEventRow, TenantRow, table

_T = table(AuditEventRow)


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
                "log_id": str(m["id"]),
            }
