"""Limits hold across processes (docs/specs/security.md §6 "Shared state"): two app instances on one
database, requests alternating between them; the same through Redis; and when Redis is down,
the database keeps counting (logged once)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.support.config import NATIVE_ID, tenant_config
from tests.support.harness import Harness, running_app
from tests.support.services import REDIS_ENV, free_port, required_url

ORIGIN = "http://127.0.0.1:8123"
ADA = {"client_id": NATIVE_ID, "connection": "email", "email": "ada@example.com"}


def config() -> dict[str, Any]:
    cfg = tenant_config(ORIGIN)
    cfg["tenant"]["rate_limits"] = {"start_per_ip_per_hour": 8}
    return cfg


@contextlib.asynccontextmanager
async def two_apps(database_url: str, **settings: Any) -> AsyncIterator[tuple[Harness, Harness]]:
    async with (
        running_app(database_url, config(), **settings) as one,
        running_app(database_url, config(), **settings) as two,
    ):
        yield one, two


async def alternate(apps: tuple[Harness, Harness]) -> None:
    """5 sends per identity per 10 minutes and 8 starts per IP, whichever instance serves."""
    one, two = apps
    statuses = [(await (one, two)[i % 2].start(ADA)).status_code for i in range(6)]
    assert statuses == [200] * 5 + [429]
    answers = []
    for i in range(4):
        body = {**ADA, "email": f"other{i}@example.com"}
        response = await (two, one)[i % 2].start(body)
        answers.append((response.status_code, response.headers["x-ratelimit-remaining"]))
    assert answers == [(200, "2"), (200, "1"), (200, "0"), (429, "0")], "8 per IP, in all"
    assert await one.count("challenges") == 8


async def test_two_instances_share_limits_through_the_database(database_url: str) -> None:
    async with two_apps(database_url) as apps:
        await alternate(apps)
        assert await apps[0].count("rate_counters") > 0


@pytest.mark.redis
async def test_two_instances_share_limits_through_redis(database_url: str) -> None:
    async with two_apps(database_url, redis_url=required_url(REDIS_ENV)) as apps:
        await alternate(apps)
        assert await apps[0].count("rate_counters") == 0, "the counts live in Redis"


async def test_redis_down_limits_still_hold_through_the_database(
    database_url: str, capfd: pytest.CaptureFixture[str]
) -> None:
    closed = f"redis://127.0.0.1:{free_port()}/0"
    async with two_apps(database_url, redis_url=closed) as apps:
        await alternate(apps)
        assert await apps[0].count("rate_counters") > 0
    logged = capfd.readouterr().err.count("redis_unavailable_using_database")
    assert logged == 2, "once per instance"
