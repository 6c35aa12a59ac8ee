"""Real services for tests: throwaway PostgreSQL databases, free ports, a required-service rule.

Tests that need PostgreSQL or Redis skip with a reason when their URL is not set, and fail
instead when NOPASS_TEST_REQUIRE_SERVICES=1 (CI), so CI can never skip them silently.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest

POSTGRES_ENV = "NOPASS_TEST_POSTGRES_URL"
REDIS_ENV = "NOPASS_TEST_REDIS_URL"


def required_url(env: str) -> str:
    url = os.environ.get(env)
    if url:
        return url
    if os.environ.get("NOPASS_TEST_REQUIRE_SERVICES") == "1":
        pytest.fail(f"{env} is not set but NOPASS_TEST_REQUIRE_SERVICES=1 (CI must not skip)")
    pytest.skip(f"{env} is not set: no PostgreSQL/Redis test service on this machine")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "/" + name, parts.query, parts.fragment))


async def create_postgres_database(admin_url: str) -> str:
    import asyncpg

    name = "nopass_t_" + secrets.token_hex(6)
    conn = await asyncpg.connect(_with_database(admin_url, "postgres"))
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return _with_database(admin_url, name)


async def drop_postgres_database(url: str) -> None:
    import asyncpg

    name = urlsplit(url).path.lstrip("/")
    conn = await asyncpg.connect(_with_database(url, "postgres"))
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


@contextlib.asynccontextmanager
async def throwaway_database(kind: str, sqlite_path: Path) -> AsyncIterator[str]:
    """The URL of a ``sqlite`` database file or of a new ``postgres`` database (dropped
    afterwards)."""
    if kind == "sqlite":
        yield f"sqlite:///{sqlite_path}"
        return
    url = await create_postgres_database(required_url(POSTGRES_ENV))
    try:
        yield url
    finally:
        await drop_postgres_database(url)
