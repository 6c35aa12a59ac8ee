"""Housekeeping removes what nobody can use any more and keeps the rest."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import func, insert, select

from nopass.core.jobs import IMPORT, PENDING, Job, RowError
from nopass.core.keyring import Keyring
from nopass.store.engine import create_engine
from nopass.store.housekeeping import purge
from nopass.store.tables import (
    ChallengeRow,
    JobErrorRow,
    JobRow,
    OutboxRow,
    TenantRow,
    table,
)
from nopass.store.unit_of_work import SqlUnitOfWork
from tests.support.config import tenant_config
from tests.support.harness import prepare_database


async def test_purge_removes_only_dead_rows(database_url: str) -> None:
    await prepare_database(database_url, tenant_config("http://127.0.0.1:8123"))
    engine = create_engine(database_url)
    now = datetime.now(UTC)
    try:
        async with engine.begin() as conn:
            tenant_id = await conn.scalar(select(TenantRow.id))
            for i, age in enumerate((timedelta(days=3), timedelta(minutes=1)) * 600):
                await conn.execute(
                    insert(table(ChallengeRow)).values(
                        id=f"{i:024x}",
                        tenant_id=tenant_id,
                        connection_id="c",
                        client_id="x",
                        identifier=f"u{i}@example.com",
                        code_hmac="0" * 64,
                        key_id="k",
                        send="code",
                        auth_params={},
                        phantom=False,
                        attempts=0,
                        created_at=now - age,
                        expires_at=now - age + timedelta(minutes=3),
                    )
                )
            for i, (status, age) in enumerate(
                [
                    ("sent", timedelta(days=2)),
                    ("pending", timedelta(days=2)),
                    ("sent", timedelta(hours=1)),
                    ("failed", timedelta(days=2)),
                ]
            ):
                await conn.execute(
                    insert(table(OutboxRow)).values(
                        id=f"{i:024x}",
                        tenant_id=tenant_id,
                        channel="email",
                        provider="smtp",
                        recipient="a@example.com",
                        status=status,
                        attempts=1,
                        next_attempt_at=now,
                        created_at=now - age,
                    )
                )
        removed = await purge(engine, now)
        assert removed == 600 + 2
        async with engine.connect() as conn:
            left = await conn.scalar(select(func.count()).select_from(table(ChallengeRow)))
            statuses = sorted((await conn.execute(select(table(OutboxRow).c.status))).scalars())
        assert left == 600
        assert statuses == ["pending", "sent"]
    finally:
        await engine.dispose()


async def test_purge_removes_jobs_a_day_old(database_url: str) -> None:
    """ "All job-related data is automatically deleted after 24 hours": the job, its file
    and its row errors (docs/specs/management-api.md §7.1)."""
    await prepare_database(database_url, tenant_config("http://127.0.0.1:8123"))
    engine = create_engine(database_url)
    now = datetime.now(UTC)
    try:
        async with engine.connect() as conn:
            tenant_id = str(await conn.scalar(select(TenantRow.id)))
        async with SqlUnitOfWork(engine, Keyring([b"k" * 32])) as uow:
            for name, age in (("old", timedelta(hours=25)), ("new", timedelta(hours=23))):
                job = Job(
                    id=f"job_{name:0>16}",
                    tenant_id=tenant_id,
                    type=IMPORT,
                    status=PENDING,
                    created_at=now - age,
                )
                await uow.jobs.add(job, b"[]")
                error = RowError(0, {"email": "x"}, [{"code": "FORMAT", "message": "m"}])
                await uow.jobs.add_errors(tenant_id, job.id, [error], now - age)
            await uow.commit()
        await purge(engine, now)
        async with engine.connect() as conn:
            jobs = (await conn.execute(select(table(JobRow).c.id))).scalars().all()
            errors = await conn.scalar(select(func.count()).select_from(table(JobErrorRow)))
        assert jobs == ["job_0000000000000new"]
        assert errors == 1
    finally:
        await engine.dispose()
