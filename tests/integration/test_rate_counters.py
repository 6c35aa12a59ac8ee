"""The rate-limit counter contract (``nopass.ratelimit.base``), one suite over every backend:
memory, SQLite, PostgreSQL and Redis. Fixed windows opened by the first hit, all-or-nothing
hits, refunds, and no overrun under concurrency; the database backends also inside a caller's
unit of work."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from nopass.core.keyring import Keyring
from nopass.logconfig import configure_logging
from nopass.ratelimit.base import UNCAPPED, Breaker, Guarded, RateLimiter, Window
from nopass.ratelimit.redis import RedisRateLimiter
from nopass.ratelimit.sql import SqlRateLimiter
from nopass.store.unit_of_work import SqlUnitOfWork
from tests.support.limits import database_backend, database_limiter, limiter_for
from tests.support.services import free_port, throwaway_database

T0 = datetime(2026, 11, 27, 12, 0, 0, 123000, tzinfo=UTC)


@pytest.fixture(
    params=[
        "memory",
        "sqlite",
        pytest.param("postgres", marks=pytest.mark.postgres),
        pytest.param("redis", marks=pytest.mark.redis),
    ]
)
async def limiter(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[RateLimiter]:
    async with limiter_for(request.param, tmp_path) as backend:
        yield backend


def window(limit: int, seconds: int = 60, name: str = "w") -> Window:
    return Window(key=f"t{secrets.token_hex(6)}:{name}", limit=limit, seconds=seconds, name=name)


async def test_counts_to_the_limit_then_refuses(limiter: RateLimiter) -> None:
    w = window(3)
    seen = []
    for i in range(4):
        [d] = await limiter.hit([w], T0 + timedelta(seconds=i))
        seen.append((d.allowed, d.count, d.remaining))
        assert d.started_at == T0
        assert d.reset_at == T0 + timedelta(seconds=60)
    assert seen == [(True, 1, 2), (True, 2, 1), (True, 3, 0), (False, 3, 0)]


async def test_a_window_opens_at_its_first_hit_and_closes_after_its_length(
    limiter: RateLimiter,
) -> None:
    w = window(1)
    assert (await limiter.hit([w], T0))[0].allowed
    assert not (await limiter.hit([w], T0 + timedelta(seconds=59.9)))[0].allowed
    [d] = await limiter.hit([w], T0 + timedelta(seconds=60))
    assert (d.allowed, d.count, d.started_at) == (True, 1, T0 + timedelta(seconds=60))


async def test_hits_are_all_or_nothing(limiter: RateLimiter) -> None:
    small, large = window(1, name="small"), window(5, name="large")
    assert all(d.allowed for d in await limiter.hit([large, small], T0))
    refused = await limiter.hit([large, small], T0)
    assert [(d.allowed, d.count) for d in refused] == [(True, 1), (False, 1)]
    [after] = await limiter.peek([large], T0)
    assert after.count == 1, "a refused request counts nowhere"


async def test_peek_counts_nothing(limiter: RateLimiter) -> None:
    w = window(2)
    [empty] = await limiter.peek([w], T0)
    assert (empty.allowed, empty.count, empty.started_at) == (True, 0, None)
    await limiter.hit([w], T0)
    for _ in range(3):
        [d] = await limiter.peek([w], T0)
        assert (d.allowed, d.count, d.remaining) == (True, 1, 1)


async def test_refund_gives_back_one_hit_of_the_same_window(limiter: RateLimiter) -> None:
    w = window(2)
    await limiter.hit([w], T0)
    [second] = await limiter.hit([w], T0)
    await limiter.refund(second, T0)
    [d] = await limiter.peek([w], T0)
    assert d.count == 1
    later = T0 + timedelta(seconds=61)
    await limiter.hit([w], later)  # a new window: an old refund must not touch it
    await limiter.refund(second, later)
    [d] = await limiter.peek([w], later)
    assert d.count == 1


async def test_concurrent_hits_never_overrun_the_limit(limiter: RateLimiter) -> None:
    w = window(10)
    decisions = await asyncio.gather(*(limiter.hit([w], T0) for _ in range(40)))
    assert sum(d.allowed for [d] in decisions) == 10
    [d] = await limiter.peek([w], T0)
    assert d.count == 10


def breaker(hour: int = 3600) -> Breaker:
    """A conversion breaker like the SMS one: >= 20 sent and < 10 % verified trips it."""
    tag = f"t{secrets.token_hex(6)}"
    return Breaker(
        trip=Window(key=f"{tag}:trip", limit=1, seconds=hour, name="trip"),
        sent=Window(key=f"{tag}:sent", limit=UNCAPPED, seconds=hour, name="sent"),
        verified_prefix=f"{tag}:verified",
        verified_seconds=hour,
        min_sent=20,
        min_percent=10,
    )


def tally(results: list[Guarded]) -> tuple[int, int, int]:
    """(admitted, tripped by this hit, refused as open already)."""
    admitted = sum(r.tripped is None and all(d.allowed for d in r.decisions) for r in results)
    opened = sum(r.tripped is not None and r.tripped.opened for r in results)
    refused = sum(r.tripped is not None and not r.tripped.opened for r in results)
    return admitted, opened, refused


async def test_concurrent_breaker_decisions_admit_exactly_min_sent(limiter: RateLimiter) -> None:
    b, other = breaker(), window(1000)
    results = await asyncio.gather(*(limiter.hit_guarded([other], b, T0) for _ in range(60)))
    assert tally(results) == (20, 1, 39)
    [opened] = [r.tripped for r in results if r.tripped and r.tripped.opened]
    assert (opened.sent, opened.verified) == (20, 0)
    assert opened.decision.reset_at == T0 + timedelta(hours=1)
    sent, counted = await limiter.peek([b.sent, other], T0)
    assert (sent.count, counted.count) == (20, 20), "a refused hit counts nowhere"
    later = T0 + timedelta(minutes=59)
    again = await limiter.hit_guarded([other], b, later)
    assert again.tripped is not None and not again.tripped.opened
    assert again.tripped.decision.reset_at == T0 + timedelta(hours=1)


async def test_verifications_keep_the_breaker_shut(limiter: RateLimiter) -> None:
    b = breaker()
    for _ in range(20):
        assert (await limiter.hit_guarded([], b, T0)).tripped is None
    [sent] = await limiter.peek([b.sent], T0)
    assert sent.started_at is not None
    await limiter.hit([b.verified_window(sent.started_at)], T0)
    await limiter.hit([b.verified_window(sent.started_at)], T0)  # 2 of 20: 10 %
    assert (await limiter.hit_guarded([], b, T0)).tripped is None
    tripped = (await limiter.hit_guarded([], b, T0)).tripped  # 2 of 21: < 10 %
    assert tripped is not None and (tripped.opened, tripped.sent, tripped.verified) == (
        True,
        21,
        2,
    )


async def test_a_hit_refused_by_another_window_counts_no_send(limiter: RateLimiter) -> None:
    b, small = breaker(), window(1)
    assert (await limiter.hit_guarded([small], b, T0)).tripped is None
    for _ in range(30):  # refused by ``small``: nothing sent, so nothing counted as sent
        refused = await limiter.hit_guarded([small], b, T0)
        assert refused.tripped is None and not refused.decisions[0].allowed
    [sent] = await limiter.peek([b.sent], T0)
    assert sent.count == 1
    results = [await limiter.hit_guarded([], b, T0) for _ in range(20)]
    assert tally(results) == (19, 1, 0)


async def test_windows_of_one_request_need_distinct_keys(limiter: RateLimiter) -> None:
    w = window(3)
    with pytest.raises(ValueError, match="distinct"):
        await limiter.hit([w, w], T0)


async def test_unreachable_redis_falls_back_to_the_database(tmp_path: Path) -> None:
    configure_logging("info")  # (to this test's stderr)
    async with database_limiter(f"sqlite:///{tmp_path / 'fallback.db'}") as database:
        closed = f"redis://127.0.0.1:{free_port()}/0"
        redis = RedisRateLimiter(closed, fallback=database)
        try:
            w = window(2)
            results = [(await redis.hit([w], T0))[0].allowed for _ in range(3)]
            assert results == [True, True, False]
            [stored] = await database.peek([w], T0)
            assert stored.count == 2, "the database holds the counts"
        finally:
            await redis.aclose()


async def test_sql_backend_reopens_a_closed_window_in_place(tmp_path: Path) -> None:
    async with database_limiter(f"sqlite:///{tmp_path / 'reopen.db'}") as database:
        assert isinstance(database, SqlRateLimiter)
        w = window(1, seconds=1)
        for i in range(5):
            [d] = await database.hit([w], T0 + timedelta(seconds=i))
            assert (d.allowed, d.count) == (True, 1)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def in_database(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[tuple[SqlRateLimiter, Callable[[], SqlUnitOfWork]]]:
    """The database counters and units of work on the same database."""
    keyring = Keyring([b"k" * 32])
    async with (
        throwaway_database(request.param, tmp_path / "limits.db") as url,
        database_backend(url) as (limiter, engine),
    ):
        yield limiter, lambda: SqlUnitOfWork(engine, keyring)


InDatabase = tuple[SqlRateLimiter, Callable[[], SqlUnitOfWork]]


async def test_hits_inside_a_unit_of_work_commit_or_roll_back_with_it(
    in_database: InDatabase,
) -> None:
    limiter, uow = in_database
    w = window(3)
    async with uow() as work:
        [d] = await limiter.hit([w], T0, within=work)
        assert (d.allowed, d.count) == (True, 1)
        [seen] = await limiter.peek([w], T0, within=work)
        assert seen.count == 1
    [after] = await limiter.peek([w], T0)
    assert after.count == 0, "rolled back with the unit of work"
    async with uow() as work:
        await limiter.hit([w], T0, within=work)
        await work.commit()
    [after] = await limiter.peek([w], T0)
    assert after.count == 1


async def test_a_refused_hit_inside_a_unit_of_work_counts_nowhere(
    in_database: InDatabase,
) -> None:
    limiter, uow = in_database
    small, large = window(1, name="small"), window(5, name="large")
    await limiter.hit([large, small], T0)
    async with uow() as work:
        refused = await limiter.hit([large, small], T0, within=work)
        assert [(d.allowed, d.count) for d in refused] == [(True, 1), (False, 1)]
        await work.commit()  # the transaction goes on and commits: still nothing counted
    after = await limiter.peek([large, small], T0)
    assert [d.count for d in after] == [1, 1]


async def test_a_refund_inside_a_unit_of_work_commits_with_it(in_database: InDatabase) -> None:
    limiter, uow = in_database
    w = window(5)
    await limiter.hit([w], T0)
    [second] = await limiter.hit([w], T0)
    async with uow() as work:
        await limiter.refund(second, T0, within=work)
    assert (await limiter.peek([w], T0))[0].count == 2, "rolled back"
    async with uow() as work:
        await limiter.refund(second, T0, within=work)
        await work.commit()
    assert (await limiter.peek([w], T0))[0].count == 1


async def test_concurrent_units_of_work_never_overrun_the_limit(in_database: InDatabase) -> None:
    limiter, uow = in_database
    w = window(10)

    async def request() -> bool:
        async with uow() as work:
            [d] = await limiter.hit([w], T0, within=work)
            await asyncio.sleep(0.001)  # the request's other work, while the count is held
            await work.commit()
            return d.allowed

    allowed = await asyncio.gather(*(request() for _ in range(30)))
    assert sum(allowed) == 10
    assert (await limiter.peek([w], T0))[0].count == 10


async def test_concurrent_breaker_decisions_in_units_of_work_admit_exactly_min_sent(
    in_database: InDatabase,
) -> None:
    limiter, uow = in_database
    b, other = breaker(), window(1000)

    async def request() -> Guarded:
        async with uow() as work:
            result = await limiter.hit_guarded([other], b, T0, within=work)
            await asyncio.sleep(0.001)  # the request's other work, while the count is held
            await work.commit()
            return result

    results = await asyncio.gather(*(request() for _ in range(40)))
    assert tally(results) == (20, 1, 19)
    sent, counted, trip = await limiter.peek([b.sent, other, b.trip], T0)
    assert (sent.count, counted.count, trip.count) == (20, 20, 1)
