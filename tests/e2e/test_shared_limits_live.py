"""Limits hold across two real `nopass serve` processes on one database (and one Redis),
requests alternating between them (issue 5: a per-identity limit must hold across both)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.config import NATIVE_ID, tenant_config
from tests.support.harness import prepare_database
from tests.support.live import LiveServer, live_server, nopass_env
from tests.support.services import REDIS_ENV, free_port, required_url

pytestmark = pytest.mark.slow
ADA = {"client_id": NATIVE_ID, "connection": "email", "email": "ada@example.com"}


@contextlib.contextmanager
def two_servers(
    database_url: str, tmp_path: Path, ports: tuple[int, int], **env: str
) -> Iterator[tuple[LiveServer, LiveServer]]:
    with (
        live_server(nopass_env(database_url, **env), tmp_path, port=ports[0]) as one,
        live_server(nopass_env(database_url, **env), tmp_path, port=ports[1]) as two,
    ):
        yield one, two


async def alternate(servers: tuple[LiveServer, LiveServer]) -> None:
    statuses = []
    async with httpx.AsyncClient() as http:
        for i in range(6):
            server = servers[i % 2]
            response = await http.post(f"{server.url}/passwordless/start", json=ADA)
            statuses.append(response.status_code)
        assert statuses == [200] * 5 + [429], "5 sends per identity per 10 minutes, in all"
        refused = await http.post(f"{servers[0].url}/passwordless/start", json=ADA)
        assert refused.json() == {
            "error": "too_many_requests",
            "error_description": "Too many requests. Try again later.",
        }
        assert int(refused.headers["retry-after"]) > 0


def config(ports: tuple[int, int]) -> dict[str, Any]:
    cfg = tenant_config(f"http://127.0.0.1:{ports[0]}")
    cfg["tenant"]["domains"].append(f"http://127.0.0.1:{ports[1]}")
    return cfg


async def test_two_serve_processes_share_limits_through_the_database(
    database_url: str, tmp_path: Path
) -> None:
    ports = (free_port(), free_port())
    await prepare_database(database_url, config(ports))
    with two_servers(database_url, tmp_path, ports) as servers:
        await alternate(servers)


@pytest.mark.redis
async def test_two_serve_processes_share_limits_through_redis(
    database_url: str, tmp_path: Path
) -> None:
    ports = (free_port(), free_port())
    await prepare_database(database_url, config(ports))
    redis = required_url(REDIS_ENV)
    with two_servers(database_url, tmp_path, ports, NOPASS_REDIS_URL=redis) as servers:
        await alternate(servers)
