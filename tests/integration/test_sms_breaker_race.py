"""The SMS conversion breaker's policy (``nopass.flows.limits``) over every counter backend:
memory, SQLite, PostgreSQL and Redis. Starts racing to one country get exactly 20 SMS; the
21st opens the breaker (audited once) and the rest are refused (issue 13)."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from nopass.core.errors import RateLimited
from nopass.core.keyring import Keyring
from nopass.core.models import AuditEvent, Connection, Tenant
from nopass.core.options import RateLimits, SmsOptions
from nopass.flows.limits import Limits
from nopass.ratelimit.base import RateLimiter
from nopass.ratelimit.memory import MemoryRateLimiter
from nopass.ratelimit.redis import RedisRateLimiter
from nopass.ratelimit.sql import SqlRateLimiter
from nopass.store.engine import create_engine
from nopass.store.unit_of_work import SqlUnitOfWork
from tests.support.clock import MovableClock
from tests.support.config import tenant_config
from tests.support.harness import prepare_database
from tests.support.limits import MustNotFallBack
from tests.support.services import REDIS_ENV, required_url, throwaway_database

STARTS = 60
SMS = Connection(
    tenant_id="",
    id="con_sms",
    name="sms",
    strategy="sms",
    options=SmsOptions(),
    enabled_clients=frozenset(),
)


@dataclass
class Setup:
    limits: Limits
    engine: AsyncEngine  # the audit events' database (and the counters' for sqlite, postgres)
    tenant: Tenant

    def uow(self) -> SqlUnitOfWork:
        return SqlUnitOfWork(self.engine, Keyring([b"k" * 32]))


@contextlib.asynccontextmanager
async def setup_for(kind: str, tmp_path: Path) -> AsyncIterator[Setup]:
    database = "postgres" if kind == "postgres" else "sqlite"
    async with throwaway_database(database, tmp_path / "limits.db") as url:
        await prepare_database(url, tenant_config("http://127.0.0.1:8123"))
        engine = create_engine(url)
        limiter: RateLimiter
        if kind == "memory":
            limiter = MemoryRateLimiter()
        elif kind == "redis":
            limiter = RedisRateLimiter(required_url(REDIS_ENV), fallback=MustNotFallBack())
        else:
            limiter = SqlRateLimiter(engine)
        try:
            async with engine.connect() as conn:
                tenant_id = (await conn.execute(text("SELECT id FROM tenants"))).scalar_one()
            # No per-IP limit: the breaker is the only one that refuses here.
            tenant = Tenant(tenant_id, "acme", None, None, RateLimits(start_per_ip_per_hour=0))
            keyring = Keyring([b"k" * 32])
            limits = Limits(limiter, lambda: SqlUnitOfWork(engine, keyring), MovableClock())
            yield Setup(limits, engine, tenant)
        finally:
            await limiter.aclose()
            await engine.dispose()


@pytest.fixture(
    params=[
        "memory",
        "sqlite",
        pytest.param("postgres", marks=pytest.mark.postgres),
        pytest.param("redis", marks=pytest.mark.redis),
    ]
)
async def setup(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Setup]:
    async with setup_for(request.param, tmp_path) as value:
        yield value


def phone(n: int) -> str:
    """US numbers over 4 prefixes (15 each: under the prefix velocity of 30 per hour)."""
    return f"+1{212 + n % 4}555{n:04d}"


async def start(setup: Setup, n: int, *, in_uow: bool) -> str:
    audit = AuditEvent(tenant_id=setup.tenant.id, type="")
    try:
        if not in_uow:
            await setup.limits.admit_start(
                setup.tenant, SMS, phone(n), "192.0.2.1", audit, test_identity=False
            )
            return "sent"
        async with setup.uow() as uow:
            await setup.limits.admit_start(
                setup.tenant, SMS, phone(n), "192.0.2.1", audit, test_identity=False, uow=uow
            )
            await asyncio.sleep(0.001)  # the start's own writes, while its counts are held
            await uow.commit()
    except RateLimited as exc:
        assert exc.name == "sms_conversion_breaker"
        return "refused"
    return "sent"


async def breaker_events(setup: Setup) -> list[dict[str, object]]:
    async with setup.engine.connect() as conn:
        rows = await conn.execute(
            text("SELECT details FROM audit_events WHERE type = 'limit_sms' ORDER BY id")
        )
        return [d if isinstance(d, dict) else json.loads(d) for (d,) in rows]


async def assert_exactly_20(setup: Setup, outcomes: list[str]) -> None:
    assert collections.Counter(outcomes) == {"sent": 20, "refused": STARTS - 20}
    events = await breaker_events(setup)
    opened = [e for e in events if e.get("opened")]
    assert [(e["sent"], e["verified"], e["country"]) for e in opened] == [(20, 0, "US")]
    assert len(events) == STARTS - 20, "every refusal audited"


async def test_racing_starts_get_exactly_20_sms(setup: Setup) -> None:
    outcomes = await asyncio.gather(*(start(setup, n, in_uow=False) for n in range(STARTS)))
    await assert_exactly_20(setup, list(outcomes))


async def test_racing_starts_in_units_of_work_get_exactly_20_sms(setup: Setup) -> None:
    outcomes = await asyncio.gather(*(start(setup, n, in_uow=True) for n in range(STARTS)))
    await assert_exactly_20(setup, list(outcomes))
