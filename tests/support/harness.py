"""An in-process nopass (create_app + lifespan) on a real database, driven over httpx."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
from asgi_lifespan import LifespanManager
from pydantic import SecretStr
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from nopass.app import create_app
from nopass.config_file import parse_config
from nopass.core.clock import Clock
from nopass.core.keyring import Keyring
from nopass.settings import Settings
from nopass.store.apply import apply_config
from nopass.store.engine import create_engine
from nopass.store.migrate import migrate_engine
from nopass.store.outbox_queue import SqlOutboxQueue

TEST_SECRET = "test-secret-key-0123456789abcdef"


def test_settings(database_url: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "database_url": database_url,
        "secret_key": SecretStr(TEST_SECRET),
        "outbox_poll_seconds": 0.05,
        "outbox_retry_base_seconds": 0.05,
        "outbox_retry_cap_seconds": 0.2,
        "sms_timeout_seconds": 2.0,
    }
    values.update(overrides)
    return Settings(**values)


async def prepare_database(database_url: str, config: dict[str, Any] | None) -> dict[str, Any]:
    engine = create_engine(database_url)
    try:
        await migrate_engine(engine)
        if config is None:
            return {}
        return await apply_config(engine, parse_config(config), now=datetime.now(UTC))
    finally:
        await engine.dispose()


@dataclass
class Harness:
    client: httpx.AsyncClient
    engine: AsyncEngine  # a separate engine for assertions on stored rows
    summary: dict[str, Any]

    async def start(self, body: dict[str, Any], **kwargs: Any) -> httpx.Response:
        return await self.client.post("/passwordless/start", json=body, **kwargs)

    async def count(self, table: str, where: str = "1=1") -> int:
        async with self.engine.connect() as conn:
            value = await conn.scalar(text(f"SELECT COUNT(*) FROM {table} WHERE {where}"))  # noqa: S608
        return int(value or 0)

    async def code_for(self, recipient: str) -> str:
        """The code of the newest outbox message to ``recipient`` (outbox providers keep
        their messages; the payload is decrypted with the test secret)."""
        queue = SqlOutboxQueue(self.engine, Keyring([TEST_SECRET.encode()]))
        for tenant in await self.rows("SELECT id FROM tenants"):
            for entry in await queue.list_recent(tenant["id"], limit=200):
                if entry.recipient == recipient and entry.code:
                    return entry.code
        raise AssertionError(f"no message to {recipient}")

    async def rows(self, sql: str) -> list[dict[str, Any]]:
        async with self.engine.connect() as conn:
            result = await conn.execute(text(sql))
            return [dict(r._mapping) for r in result]


@contextlib.asynccontextmanager
async def running_app(
    database_url: str,
    config: dict[str, Any] | None,
    *,
    base_url: str = "http://127.0.0.1:8123",
    clock: Clock | None = None,
    http_transport: httpx.AsyncBaseTransport | None = None,
    **settings: Any,
) -> AsyncIterator[Harness]:
    summary = await prepare_database(database_url, config)
    app = create_app(
        test_settings(database_url, **settings), clock=clock, http_transport=http_transport
    )
    engine = create_engine(database_url)
    try:
        async with LifespanManager(app) as manager:
            transport = httpx.ASGITransport(app=manager.app, client=("203.0.113.7", 50000))
            async with httpx.AsyncClient(transport=transport, base_url=base_url) as client:
                yield Harness(client=client, engine=engine, summary=summary)
    finally:
        await engine.dispose()
