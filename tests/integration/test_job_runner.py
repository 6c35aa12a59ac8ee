"""Users import jobs survive their runner (docs/specs/management-api.md §7): a job whose
runner died mid-file is taken up by another once the lease ran out and goes on after the last
committed batch (each row imported once); a runner that lost its claim writes nothing more;
of two runners racing for one job, one runs it. On SQLite and PostgreSQL, and the same claim
and fence rules in the in-memory store."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from nopass.api.management.jobs import job_object
from nopass.api.management.user_object import user_object
from nopass.core.ids import job_id
from nopass.core.jobs import IMPORT, PENDING, PROCESSING, Job
from nopass.core.keyring import Keyring
from nopass.core.ports import UnitOfWork, UnitOfWorkFactory
from nopass.flows.management.job_runner import MAX_CLAIMS, RunnerDeps, run_next
from nopass.flows.management.jobs import JobView
from nopass.store.config import ConfigCache
from nopass.store.engine import create_engine
from nopass.store.memory import MemoryStore
from nopass.store.unit_of_work import SqlUnitOfWork
from tests.support.clock import MovableClock
from tests.support.config import tenant_config
from tests.support.harness import prepare_database

KEYRING = Keyring([b"k" * 32])
LEASE = 30.0
ROWS = [{"email": f"user{i}@acme.example", "user_id": f"u{i:03d}"} for i in range(7)]


class Killed(Exception):
    """The runner's process died."""


@dataclass
class Store:
    engine: AsyncEngine
    tenant_id: str
    connection_id: str

    def uow(self) -> SqlUnitOfWork:
        return SqlUnitOfWork(self.engine, KEYRING)

    async def scalar(self, sql: str) -> Any:
        async with self.engine.connect() as conn:
            return await conn.scalar(text(sql))


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[Store]:
    await prepare_database(database_url, tenant_config("http://127.0.0.1:8123"))
    engine = create_engine(database_url)
    try:
        async with engine.connect() as conn:
            tenant_id = await conn.scalar(text("SELECT id FROM tenants"))
            connection = await conn.scalar(text("SELECT id FROM connections WHERE name='email'"))
        yield Store(engine, str(tenant_id), str(connection))
    finally:
        await engine.dispose()


def runner(store: Store, clock: MovableClock, uow: UnitOfWorkFactory | None = None) -> RunnerDeps:
    return RunnerDeps(
        uow=uow or store.uow,
        clock=clock,
        tenants=ConfigCache(store.engine, recheck_seconds=0).by_id,
        user_object=user_object,
        lease_seconds=LEASE,
        batch=2,
    )


async def submitted(store: Store, clock: MovableClock, rows: list[Any] = ROWS) -> Job:
    job = Job(
        id=job_id(),
        tenant_id=store.tenant_id,
        type=IMPORT,
        status=PENDING,
        created_at=clock.now(),
        connection_id=store.connection_id,
        options={"upsert": False},
    )
    async with store.uow() as uow:
        await uow.jobs.add(job, json.dumps(rows).encode())
        await uow.commit()
    return job


class DyingFactory:
    """Units of work that work until the ``dies_at``-th is opened: then the process dies."""

    def __init__(self, inner: UnitOfWorkFactory, dies_at: int) -> None:
        self.inner = inner
        self.opened = 0
        self.dies_at = dies_at

    def __call__(self) -> UnitOfWork:
        self.opened += 1
        if self.opened >= self.dies_at:
            raise Killed
        return self.inner()


async def test_a_job_whose_runner_died_is_finished_by_another(store: Store) -> None:
    clock = MovableClock(datetime.now(UTC))
    job = await submitted(store, clock)
    # claim, read the file, two batches; dies opening the third
    dying = DyingFactory(store.uow, dies_at=5)
    with pytest.raises(Killed):
        await run_next(runner(store, clock, dying))
    assert await store.scalar("SELECT status FROM jobs") == PROCESSING
    assert await store.scalar("SELECT progress FROM jobs") == 4
    assert await store.scalar("SELECT COUNT(*) FROM users") == 4
    other = runner(store, clock)
    assert await run_next(other) is False  # the lease still holds
    clock.advance(LEASE + 1)
    assert await run_next(other) is True
    assert await store.scalar("SELECT status FROM jobs") == "completed"
    assert await store.scalar("SELECT attempts FROM jobs") == 2
    assert await store.scalar("SELECT COUNT(*) FROM users") == len(ROWS)  # each row once
    assert await store.scalar("SELECT COUNT(*) FROM job_errors") == 0
    summary = await store.scalar("SELECT summary FROM jobs")
    summary = json.loads(summary) if isinstance(summary, str) else summary
    assert summary == {"failed": 0, "updated": 0, "inserted": len(ROWS), "total": len(ROWS)}
    assert await store.scalar("SELECT upload FROM jobs") is None  # the file is dropped
    async with store.uow() as uow:
        assert (await uow.jobs.get(store.tenant_id, job.id)) is not None


async def test_a_runner_that_lost_its_claim_writes_nothing(store: Store) -> None:
    clock = MovableClock(datetime.now(UTC))
    await submitted(store, clock)
    now = clock.now()
    async with store.uow() as uow:
        stale = await uow.jobs.claim(now, now + timedelta(seconds=LEASE))
        await uow.commit()
    assert stale is not None and stale.attempts == 1
    clock.advance(LEASE + 1)
    assert await run_next(runner(store, clock)) is True  # taken over and finished
    async with store.uow() as uow:
        moved = await uow.jobs.progress(stale, done=1, summary={}, lease_until=clock.now())
        finished = await uow.jobs.finish(
            stale, status="failed", summary=None, details="x", output=None, now=clock.now()
        )
        await uow.commit()
    assert (moved, finished) == (False, False)
    assert await store.scalar("SELECT status FROM jobs") == "completed"


async def test_two_runners_racing_one_runs_the_job(store: Store) -> None:
    clock = MovableClock(datetime.now(UTC))
    await submitted(store, clock)
    other_engine = create_engine(str(store.engine.url))
    try:
        other = Store(other_engine, store.tenant_id, store.connection_id)
        ran = await asyncio.gather(run_next(runner(store, clock)), run_next(runner(other, clock)))
    finally:
        await other_engine.dispose()
    assert sorted(ran) == [False, True]
    assert await store.scalar("SELECT attempts FROM jobs") == 1
    assert await store.scalar("SELECT COUNT(*) FROM users") == len(ROWS)
    completed = "SELECT COUNT(*) FROM audit_events WHERE description = 'Users import job completed'"
    assert await store.scalar(completed) == 1


async def test_claims_race(store: Store) -> None:
    clock = MovableClock(datetime.now(UTC))
    for _ in range(3):
        await submitted(store, clock)
    engines = [create_engine(str(store.engine.url)) for _ in range(5)]

    async def claim(engine: AsyncEngine) -> str | None:
        now = clock.now()
        async with SqlUnitOfWork(engine, KEYRING) as uow:
            job = await uow.jobs.claim(now, now + timedelta(seconds=LEASE))
            await uow.commit()
        return job.id if job else None

    try:
        claimed = await asyncio.gather(*(claim(e) for e in engines))
    finally:
        for engine in engines:
            await engine.dispose()
    won = [c for c in claimed if c is not None]
    assert len(won) == len(set(won))  # nobody shares a claim


async def test_a_job_interrupted_too_often_fails(store: Store) -> None:
    clock = MovableClock(datetime.now(UTC))
    await submitted(store, clock)
    for _ in range(MAX_CLAIMS):
        now = clock.now()
        async with store.uow() as uow:
            assert await uow.jobs.claim(now, now + timedelta(seconds=LEASE)) is not None
            await uow.commit()
        clock.advance(LEASE + 1)
    assert await run_next(runner(store, clock)) is True
    assert await store.scalar("SELECT status FROM jobs") == "failed"
    assert await store.scalar("SELECT COUNT(*) FROM users") == 0


# --- the in-memory store decides the same ---------------------------------------------------


async def test_memory_claims_and_fences() -> None:
    memory = MemoryStore()
    clock = MovableClock(datetime.now(UTC))
    job = Job(id=job_id(), tenant_id="t1", type=IMPORT, status=PENDING, created_at=clock.now())
    async with memory() as uow:
        await uow.jobs.add(job, b"[]")
        await uow.commit()
    now = clock.now()
    async with memory() as uow:
        first = await uow.jobs.claim(now, now + timedelta(seconds=LEASE))
        again = await uow.jobs.claim(now, now + timedelta(seconds=LEASE))
        await uow.commit()
    assert first is not None and first.attempts == 1 and again is None
    clock.advance(LEASE + 1)
    now = clock.now()
    async with memory() as uow:
        second = await uow.jobs.claim(now, now + timedelta(seconds=LEASE))
        assert second is not None and second.attempts == 2
        assert not await uow.jobs.progress(first, done=1, summary={}, lease_until=now)
        assert await uow.jobs.progress(second, done=1, summary={}, lease_until=now)
        assert await uow.jobs.file("t1", job.id) == b"[]"
        assert await uow.jobs.file("t2", job.id) is None
        assert await uow.jobs.get("t2", job.id) is None
        await uow.commit()


async def test_a_running_import_shows_how_far_it_is(store: Store) -> None:
    clock = MovableClock(datetime.now(UTC))
    job = await submitted(store, clock)
    with pytest.raises(Killed):
        await run_next(runner(store, clock, DyingFactory(store.uow, dies_at=4)))  # one batch
    async with store.uow() as uow:
        running = await uow.jobs.get(store.tenant_id, job.id)
    assert running is not None and running.status == PROCESSING
    shown = job_object(JobView(running, "email"), "https://x")
    assert shown["percentage_done"] == 2 * 100 // len(ROWS)
    assert "summary" not in shown


@pytest.mark.parametrize("backend", ["sql", "memory"])
async def test_a_download_token_is_spent_once(backend: str, database_url: str) -> None:
    """The SQL and memory stores decide the same: a file is offered under one token at a
    time, taken once, and only by its own tenant."""
    clock = MovableClock(datetime.now(UTC))
    memory = MemoryStore()
    engine = create_engine(database_url)
    try:
        if backend == "sql":
            await prepare_database(database_url, tenant_config("http://127.0.0.1:8123"))
            async with engine.connect() as conn:
                tenant_id = str(await conn.scalar(text("SELECT id FROM tenants")))
            factory: UnitOfWorkFactory = lambda: SqlUnitOfWork(engine, KEYRING)  # noqa: E731
        else:
            tenant_id, factory = "t1", memory
        job = Job(
            id=job_id(),
            tenant_id=tenant_id,
            type="users_export",
            status=PENDING,
            created_at=clock.now(),
        )
        now = clock.now()
        async with factory() as uow:
            await uow.jobs.add(job, None)
            claimed = await uow.jobs.claim(now, now + timedelta(seconds=LEASE))
            assert claimed is not None
            assert not await uow.jobs.offer_download(tenant_id, job.id, "h0", now)  # no file yet
            await uow.jobs.finish(
                claimed, status="completed", summary=None, details=None, output=b"gz", now=now
            )
            expires = now + timedelta(minutes=10)
            assert await uow.jobs.offer_download(tenant_id, job.id, "h1", expires)
            assert await uow.jobs.offer_download(tenant_id, job.id, "h2", expires)  # replaces
            assert not await uow.jobs.offer_download("other", job.id, "h3", expires)
            await uow.commit()
        async with factory() as uow:
            assert await uow.jobs.take_download(tenant_id, "h1", now) is None
            assert await uow.jobs.take_download("other", "h2", now) is None
            taken = await uow.jobs.take_download(tenant_id, "h2", now)
            assert taken is not None and taken.data == b"gz"
            spent = await uow.jobs.take_download(tenant_id, "h2", now)
            assert spent is not None and spent.data is None
            await uow.commit()
        async with factory() as uow:
            shown = await uow.jobs.get(tenant_id, job.id)
            assert shown is not None and not shown.has_file
    finally:
        await engine.dispose()
