"""SQL side of users import and export jobs (docs/specs/management-api.md §7).

A claim is a compare-and-set on ``attempts`` (the fence): the claimer reads a candidate and
updates it only if nobody claimed it meanwhile, so two runners never hold the same claim, on
either database, without locks held across the job. Every later write of the claim checks
the fence again, in the transaction of the batch it records.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import and_, func, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from nopass.core.jobs import ACTIVE, PENDING, PROCESSING, Download, Job, RowError
from nopass.store.tables import JobErrorRow, JobRow, TenantRow, table

_J = table(JobRow)
_E = table(JobErrorRow)
_T = table(TenantRow)
CANDIDATES = 5  # read per claim: the others' compare-and-set may win the first ones
_JOB_COLUMNS = [c for c in _J.c if c.name not in ("upload", "output")]


def _job(row: Any) -> Job:
    return Job(
        id=row.id,
        tenant_id=row.tenant_id,
        type=row.type,
        status=row.status,
        created_at=row.created_at,
        connection_id=row.connection_id,
        options=row.options or {},
        summary=row.summary,
        status_details=row.status_details,
        progress=row.progress,
        attempts=row.attempts,
        has_file=bool(row.has_file),
    )


def _select_jobs() -> Any:
    return select(*_JOB_COLUMNS, _J.c.output.is_not(None).label("has_file"))


def _fence(job: Job) -> tuple[Any, ...]:
    return (
        _J.c.id == job.id,
        _J.c.tenant_id == job.tenant_id,
        _J.c.attempts == job.attempts,
        _J.c.status == PROCESSING,
    )


class SqlJobRepo:
    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn

    async def add(self, job: Job, file: bytes | None) -> None:
        await self._conn.execute(
            insert(_J).values(
                id=job.id,
                tenant_id=job.tenant_id,
                type=job.type,
                status=job.status,
                connection_id=job.connection_id,
                options=dict(job.options),
                summary=dict(job.summary) if job.summary is not None else None,
                status_details=job.status_details,
                progress=0,
                attempts=0,
                upload=file,
                created_at=job.created_at,
                updated_at=job.created_at,
            )
        )

    async def get(self, tenant_id: str, job_id: str) -> Job | None:
        query = _select_jobs().where(_J.c.tenant_id == tenant_id, _J.c.id == job_id)
        row = (await self._conn.execute(query)).first()
        return _job(row) if row is not None else None

    async def count_active(self, tenant_id: str, job_type: str) -> int:
        # The tenant's row lock serialises submits on PostgreSQL (SQLite: one writer). FOR NO
        # KEY UPDATE: it leaves alone the key-share locks of inserts that refer to the tenant
        # (a login's rows), which FOR UPDATE would make wait.
        await self._conn.execute(
            select(_T.c.id).where(_T.c.id == tenant_id).with_for_update(key_share=True)
        )
        query = select(func.count()).where(
            _J.c.tenant_id == tenant_id, _J.c.type == job_type, _J.c.status.in_(ACTIVE)
        )
        return int(await self._conn.scalar(query) or 0)

    async def claim(self, now: datetime, lease_until: datetime) -> Job | None:
        claimable = or_(
            _J.c.status == PENDING, and_(_J.c.status == PROCESSING, _J.c.lease_until < now)
        )
        candidates = (
            await self._conn.execute(
                select(_J.c.id, _J.c.attempts)
                .where(claimable)
                .order_by(_J.c.created_at, _J.c.id)
                .limit(CANDIDATES)
            )
        ).all()
        for job_id, attempts in candidates:
            claimed = await self._conn.execute(
                update(_J)
                .where(_J.c.id == job_id, _J.c.attempts == attempts, claimable)
                .values(
                    status=PROCESSING,
                    attempts=attempts + 1,
                    lease_until=lease_until,
                    updated_at=now,
                )
            )
            if claimed.rowcount == 1:
                row = (await self._conn.execute(_select_jobs().where(_J.c.id == job_id))).one()
                return _job(row)
        return None

    async def file(self, tenant_id: str, job_id: str) -> bytes | None:
        query = select(_J.c.upload).where(_J.c.tenant_id == tenant_id, _J.c.id == job_id)
        value = await self._conn.scalar(query)
        return bytes(value) if value is not None else None

    async def progress(
        self, job: Job, *, done: int, summary: Mapping[str, int], lease_until: datetime
    ) -> bool:
        result = await self._conn.execute(
            update(_J)
            .where(*_fence(job))
            .values(progress=done, summary=dict(summary), lease_until=lease_until)
        )
        return result.rowcount == 1

    async def finish(
        self,
        job: Job,
        *,
        status: str,
        summary: Mapping[str, int] | None,
        details: str | None,
        output: bytes | None,
        now: datetime,
    ) -> bool:
        result = await self._conn.execute(
            update(_J)
            .where(*_fence(job))
            .values(
                status=status,
                summary=dict(summary) if summary is not None else None,
                status_details=details,
                output=output,
                upload=None,
                lease_until=None,
                updated_at=now,
            )
        )
        return result.rowcount == 1

    async def add_errors(
        self, tenant_id: str, job_id: str, errors: Sequence[RowError], now: datetime
    ) -> None:
        if not errors:
            return
        await self._conn.execute(
            insert(_E),
            [
                {
                    "tenant_id": tenant_id,
                    "job_id": job_id,
                    "position": e.position,
                    "user": dict(e.user),
                    "errors": [dict(x) for x in e.errors],
                    "created_at": now,
                }
                for e in errors
            ],
        )

    async def errors(self, tenant_id: str, job_id: str) -> list[RowError]:
        rows = await self._conn.execute(
            select(_E.c.position, _E.c.user, _E.c.errors)
            .where(_E.c.tenant_id == tenant_id, _E.c.job_id == job_id)
            .order_by(_E.c.position, _E.c.id)
        )
        return [RowError(position=r.position, user=r.user, errors=r.errors) for r in rows]

    async def offer_download(
        self, tenant_id: str, job_id: str, token_hash: str, expires_at: datetime
    ) -> bool:
        result = await self._conn.execute(
            update(_J)
            .where(_J.c.tenant_id == tenant_id, _J.c.id == job_id, _J.c.output.is_not(None))
            .values(download_hash=token_hash, download_expires_at=expires_at, downloaded_at=None)
        )
        return result.rowcount == 1

    async def take_download(
        self, tenant_id: str, token_hash: str, now: datetime
    ) -> Download | None:
        mine = (_J.c.tenant_id == tenant_id, _J.c.download_hash == token_hash)
        # The gate: one statement, so one taker wins (PostgreSQL re-checks the condition
        # after waiting for a concurrent taker's row lock; SQLite has one writer).
        taken = await self._conn.execute(
            update(_J)
            .where(
                *mine,
                _J.c.downloaded_at.is_(None),
                _J.c.download_expires_at > now,
                _J.c.output.is_not(None),
            )
            .values(downloaded_at=now)
        )
        row = (
            await self._conn.execute(_select_jobs().add_columns(_J.c.output).where(*mine))
        ).first()
        if row is None:
            return None
        if taken.rowcount != 1:
            return Download(job=_job(row), data=None)
        await self._conn.execute(update(_J).where(*mine).values(output=None))
        return Download(job=_job(row), data=bytes(row.output))
