"""Rate-limit backends for tests: the database ones on throwaway databases, Redis on
``NOPASS_TEST_REDIS_URL`` (required in CI), and a fallback that fails the test when used."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence
from datetime import datetime
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncEngine

from nopass.core.ports import UnitOfWork
from nopass.ratelimit.base import Breaker, Decision, Guarded, RateLimiter, Window
from nopass.ratelimit.memory import MemoryRateLimiter
from nopass.ratelimit.redis import RedisRateLimiter
from nopass.ratelimit.sql import SqlRateLimiter
from nopass.store.engine import create_engine
from nopass.store.migrate import migrate_engine
from tests.support.services import REDIS_ENV, required_url, throwaway_database


class MustNotFallBack:
    """A fallback that fails: proves the Redis backend answered by itself."""

    async def hit(
        self, windows: Sequence[Window], now: datetime, *, within: UnitOfWork | None = None
    ) -> list[Decision]:
        raise AssertionError("Redis was not used")

    async def hit_guarded(
        self,
        windows: Sequence[Window],
        breaker: Breaker,
        now: datetime,
        *,
        within: UnitOfWork | None = None,
    ) -> Guarded:
        raise AssertionError("Redis was not used")

    async def peek(
        self, windows: Sequence[Window], now: datetime, *, within: UnitOfWork | None = None
    ) -> list[Decision]:
        raise AssertionError("Redis was not used")

    async def refund(
        self, decision: Decision, now: datetime, *, within: UnitOfWork | None = None
    ) -> None:
        raise AssertionError("Redis was not used")

    async def aclose(self) -> None:
        pass


@contextlib.asynccontextmanager
async def database_limiter(url: str) -> AsyncIterator[SqlRateLimiter]:
    async with database_backend(url) as (limiter, _):
        yield limiter


@contextlib.asynccontextmanager
async def database_backend(url: str) -> AsyncIterator[tuple[SqlRateLimiter, AsyncEngine]]:
    """The database counters and their engine (for units of work that count in it)."""
    engine = create_engine(url)
    try:
        await migrate_engine(engine)
        yield SqlRateLimiter(engine), engine
    finally:
        await engine.dispose()


@contextlib.asynccontextmanager
async def limiter_for(kind: str, tmp_path: Path) -> AsyncIterator[RateLimiter]:
    """``memory``, ``sqlite``, ``postgres`` or ``redis``."""
    if kind == "memory":
        yield MemoryRateLimiter()
    elif kind in ("sqlite", "postgres"):
        async with (
            throwaway_database(kind, tmp_path / "limits.db") as url,
            database_limiter(url) as sql,
        ):
            yield sql
    else:
        redis = RedisRateLimiter(required_url(REDIS_ENV), fallback=MustNotFallBack())
        try:
            yield redis
        finally:
            await redis.aclose()
