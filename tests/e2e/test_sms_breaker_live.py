"""The SMS conversion breaker holds across processes (issue 13): 60 starts to one country,
all at once, to a live ``nopass serve --workers 2`` on PostgreSQL (and on PostgreSQL + Redis)
send exactly 20 SMS to a real gateway on loopback, and open the breaker once."""

from __future__ import annotations

import asyncio
import collections
import json
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text

from nopass.store.engine import create_engine
from tests.support.config import NATIVE_ID, tenant_config
from tests.support.harness import prepare_database
from tests.support.live import live_server, nopass_env
from tests.support.services import REDIS_ENV, free_port, required_url, throwaway_database
from tests.support.sms_gateway import Gateway

pytestmark = [pytest.mark.slow, pytest.mark.postgres]
STARTS = 60


@pytest.fixture
async def postgres_url(tmp_path: Path) -> AsyncIterator[str]:
    async with throwaway_database("postgres", tmp_path / "unused.db") as url:
        yield url


async def opened_events(database_url: str) -> list[dict[str, object]]:
    engine = create_engine(database_url)
    try:
        async with engine.connect() as conn:
            rows = await conn.execute(
                text("SELECT details FROM audit_events WHERE type = 'limit_sms' ORDER BY id")
            )
            details = [d if isinstance(d, dict) else json.loads(d) for (d,) in rows]
    finally:
        await engine.dispose()
    return [d for d in details if d.get("opened")]


@pytest.mark.parametrize("with_redis", [False, pytest.param(True, marks=pytest.mark.redis)])
async def test_racing_starts_to_two_workers_send_exactly_20_sms(
    postgres_url: str, gateway: Gateway, tmp_path: Path, with_redis: bool
) -> None:
    port = free_port()
    sms = {"provider": "sms_gateway", "gateway_url": gateway.url, "template": "@@password@@"}
    cfg = tenant_config(f"http://127.0.0.1:{port}", sms=sms)
    cfg["tenant"]["rate_limits"] = {"start_per_ip_per_hour": 0}
    await prepare_database(postgres_url, cfg)
    env = nopass_env(postgres_url)
    if with_redis:
        env["NOPASS_REDIS_URL"] = required_url(REDIS_ENV)
    with live_server(env, tmp_path, port=port, workers=2) as server:
        limits = httpx.Limits(max_connections=STARTS, max_keepalive_connections=STARTS)
        async with httpx.AsyncClient(base_url=server.url, limits=limits, timeout=60) as http:
            bodies = [
                {"client_id": NATIVE_ID, "connection": "sms", "phone_number": phone(n)}
                for n in range(STARTS)
            ]
            responses = await asyncio.gather(
                *(http.post("/passwordless/start", json=body) for body in bodies)
            )
    statuses = collections.Counter(r.status_code for r in responses)
    assert statuses == {200: 20, 429: STARTS - 20}, statuses
    assert len(gateway.requests) == 20
    opened = await opened_events(postgres_url)
    assert [(d["sent"], d["verified"], d["country"]) for d in opened] == [(20, 0, "US")]


def phone(n: int) -> str:
    """US numbers over 4 prefixes (15 each: under the prefix velocity of 30 per hour)."""
    return f"+1{212 + n % 4}555{n:04d}"
