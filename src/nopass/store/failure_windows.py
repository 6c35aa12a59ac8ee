"""Per-identity failure windows (docs/specs/security.md §6: 10 failures per 15 minutes, then 429
until the window passes; a success resets; new codes do not). Always in the database, never per
process."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import bindparam, case, delete, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from nopass.store.prebuilt import run
from nopass.store.tables import FailureWindowRow, table

_T = table(FailureWindowRow)
_IDENTITY = (
    _T.c.tenant_id == bindparam("b_tenant_id"),
    _T.c.connection_id == bindparam("b_connection_id"),
    _T.c.identifier == bindparam("b_identifier"),
)
CURRENT = select(_T.c.failures, _T.c.window_start).where(*_IDENTITY)  # built once
RESET = delete(_T).where(*_IDENTITY)


def _identity(tenant_id: str, connection_id: str, identifier: str) -> dict[str, str]:
    return {"b_tenant_id": tenant_id, "b_connection_id": connection_id, "b_identifier": identifier}


class SqlFailureWindowRepo:
    """One transaction's windows. An identity that ``current`` found without a row needs no
    ``DELETE`` to reset in the same transaction (the common sign-in): on SQLite nobody else
    writes until it ends; on PostgreSQL a failure counted meanwhile by another request stays
    counted, which errs on the safe side."""

    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn
        self._absent: set[tuple[str, str, str]] = set()

    async def current(
        self, tenant_id: str, connection_id: str, identifier: str, window: timedelta, now: datetime
    ) -> tuple[int, datetime | None]:
        """Failures in the open window and when it started (0, None when none is open)."""
        row = (
            await run(self._conn, CURRENT, _identity(tenant_id, connection_id, identifier))
        ).first()
        if row is None:
            self._absent.add((tenant_id, connection_id, identifier))
        if row is None or row.window_start <= now - window:
            return 0, None
        return int(row.failures), row.window_start

    async def record_failure(
        self, tenant_id: str, connection_id: str, identifier: str, window: timedelta, now: datetime
    ) -> int:
        """Count one failure atomically (upsert); a stale window starts over."""
        self._absent.discard((tenant_id, connection_id, identifier))
        dialect = self._conn.dialect.name
        insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
        stmt = insert(_T).values(
            tenant_id=tenant_id,
            connection_id=connection_id,
            identifier=identifier,
            window_start=now,
            failures=1,
        )
        stale = _T.c.window_start <= now - window
        upsert = stmt.on_conflict_do_update(
            index_elements=["tenant_id", "connection_id", "identifier"],
            set_={
                "failures": case((stale, 1), else_=_T.c.failures + 1),
                "window_start": case((stale, now), else_=_T.c.window_start),
            },
        ).returning(_T.c.failures)
        return int((await self._conn.execute(upsert)).scalar_one())

    async def reset(self, tenant_id: str, connection_id: str, identifier: str) -> None:
        if (tenant_id, connection_id, identifier) in self._absent:
            return
        await run(self._conn, RESET, _identity(tenant_id, connection_id, identifier))
