"""Users import and export jobs in memory, deciding like ``store/jobs.py``: a claim and every
fenced write check ``attempts`` under the store's write lock."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import datetime

from nopass.core.jobs import ACTIVE, PENDING, PROCESSING, Download, Job, RowError
from nopass.store.memory.repos import Work
from nopass.store.memory.tables import JobRecord, Tables, insert


def _held(tables: Tables, job: Job) -> JobRecord | None:
    record = tables.jobs.get(job.id)
    if record is None or record.job.tenant_id != job.tenant_id:
        return None
    if record.job.attempts != job.attempts or record.job.status != PROCESSING:
        return None
    return record


def _shown(record: JobRecord) -> Job:
    return replace(record.job, has_file=record.output is not None)


class MemoryJobRepo:
    def __init__(self, work: Work) -> None:
        self._work = work

    async def add(self, job: Job, file: bytes | None) -> None:
        tables = await self._work.writing()
        insert(tables.jobs, job.id, JobRecord(job=job, upload=file))

    async def get(self, tenant_id: str, job_id: str) -> Job | None:
        record = self._work.reading().jobs.get(job_id)
        if record is None or record.job.tenant_id != tenant_id:
            return None
        return _shown(record)

    async def count_active(self, tenant_id: str, job_type: str) -> int:
        tables = await self._work.writing()  # serialises submits, as the SQL row lock does
        return sum(
            1
            for r in tables.jobs.values()
            if r.job.tenant_id == tenant_id and r.job.type == job_type and r.job.status in ACTIVE
        )

    async def claim(self, now: datetime, lease_until: datetime) -> Job | None:
        tables = await self._work.writing()
        claimable = [
            r
            for r in tables.jobs.values()
            if r.job.status == PENDING
            or (r.job.status == PROCESSING and r.lease_until is not None and r.lease_until < now)
        ]
        if not claimable:
            return None
        record = min(claimable, key=lambda r: (r.job.created_at, r.job.id))
        job = replace(record.job, status=PROCESSING, attempts=record.job.attempts + 1)
        tables.jobs[job.id] = replace(record, job=job, lease_until=lease_until)
        return _shown(tables.jobs[job.id])

    async def file(self, tenant_id: str, job_id: str) -> bytes | None:
        record = self._work.reading().jobs.get(job_id)
        return record.upload if record and record.job.tenant_id == tenant_id else None

    async def progress(
        self, job: Job, *, done: int, summary: Mapping[str, int], lease_until: datetime
    ) -> bool:
        tables = await self._work.writing()
        record = _held(tables, job)
        if record is None:
            return False
        changed = replace(record.job, progress=done, summary=dict(summary))
        tables.jobs[job.id] = replace(record, job=changed, lease_until=lease_until)
        return True

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
        tables = await self._work.writing()
        record = _held(tables, job)
        if record is None:
            return False
        changed = replace(
            record.job,
            status=status,
            summary=dict(summary) if summary is not None else None,
            status_details=details,
        )
        tables.jobs[job.id] = replace(
            record, job=changed, lease_until=None, upload=None, output=output
        )
        return True

    async def add_errors(
        self, tenant_id: str, job_id: str, errors: Sequence[RowError], now: datetime
    ) -> None:
        if errors:
            tables = await self._work.writing()
            tables.job_errors.extend((tenant_id, job_id, e) for e in errors)

    async def errors(self, tenant_id: str, job_id: str) -> list[RowError]:
        found = [e for t, j, e in self._work.reading().job_errors if t == tenant_id and j == job_id]
        return sorted(found, key=lambda e: e.position)

    async def offer_download(
        self, tenant_id: str, job_id: str, token_hash: str, expires_at: datetime
    ) -> bool:
        tables = await self._work.writing()
        record = tables.jobs.get(job_id)
        if record is None or record.job.tenant_id != tenant_id or record.output is None:
            return False
        tables.jobs[job_id] = replace(
            record, download_hash=token_hash, download_expires_at=expires_at, downloaded_at=None
        )
        return True

    async def take_download(
        self, tenant_id: str, token_hash: str, now: datetime
    ) -> Download | None:
        tables = await self._work.writing()
        record = next(
            (
                r
                for r in tables.jobs.values()
                if r.job.tenant_id == tenant_id and r.download_hash == token_hash
            ),
            None,
        )
        if record is None:
            return None
        usable = (
            record.downloaded_at is None
            and record.download_expires_at is not None
            and record.download_expires_at > now
            and record.output is not None
        )
        if not usable:
            return Download(job=_shown(record), data=None)
        tables.jobs[record.job.id] = replace(record, downloaded_at=now, output=None)
        return Download(job=_shown(record), data=record.output)
