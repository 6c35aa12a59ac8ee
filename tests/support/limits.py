"""Rate-limit backends for tests: the database ones on throwaway databases, Redis on
``NOPASS_TEST_REDIS_URL`` (required in CI), and a fallback that fails the test when used."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence
from datetime import datetime
from pathlib import Path

from nopass.ratelimit.base import Decision, RateLimiter, Window
from nopass.ratelimit.memory import MemoryRateLimiter
from nopass.ratelimit.redis import RedisRateLimiter
from nopass.ratelimit.sql import SqlRateLimiter
from nopass.store.engine import create_engine
from nopass.store.migrate import migrate_engine
from tests.support.services import (
    POSTGRES_ENV,
    REDIS_ENV,
    create_postgres_database,
    drop_postgres_database,
    required_url,
)


class MustNotFallBack:
    """A fallback that fails: proves the Redis backend answered by itself."""

    async def hit(self, windows: Sequence[Window], now: datetime) -> list[Decision]:
        raise AssertionError("Redis was not used")

    async def peek(self, windows: Sequence[Window], now: datetime) -> list[Decision]:
        raise AssertionError("Redis was not used")

    async def refund(self, decision: Decision, now: datetime) -> None:
        raise AssertionError("Redis was not used")

    async def aclose(self) -> None:
        pass


@contextlib.asynccontextmanager
async def database_limiter(url: str) -> AsyncIterator[SqlRateLimiter]:
    engine = create_engine(url)
    try:
        await migrate_engine(engine)
        yield SqlRateLimiter(engine)
    finally:
        await engine.dispose()


@contextlib.asynccontextmanager
async def limiter_for(kind: str, tmp_path: Path) -> AsyncIterator[RateLimiter]:
    """``memory``, ``sqlite``, ``postgres`` or ``redis``."""
    if kind == "memory":
        yield MemoryRateLimiter()
    elif kind == "sqlite":
        async with database_limiter(f"sqlite:///{tmp_path / 'limits.db'}") as sql:
            yield sql
    elif kind == "postgres":
        url = await create_postgres_database(required_url(POSTGRES_ENV))
        try:
            async with database_limiter(url) as sql:
                yield sql
        finally:
            await drop_postgres_database(url)
    else:
        redis = RedisRateLimiter(required_url(REDIS_ENV), fallback=MustNotFallBack())
        try:
            yield redis
        finally:
            await redis.aclose()
