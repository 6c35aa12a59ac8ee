"""Shared fixtures: every storage test runs on SQLite and on PostgreSQL (when configured)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from tests.support.services import free_port, throwaway_database
from tests.support.sms_gateway import Gateway, serve_gateway
from tests.support.smtp import SmtpSink
from tests.support.tls import ca_bundle, tls_files

__all__ = ["ca_bundle", "tls_files"]  # fixtures of tests/support/tls.py, for every test


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    async with throwaway_database(request.param, tmp_path / "nopass.db") as url:
        yield url


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'nopass.db'}"


@pytest.fixture
def smtp_sink() -> Iterator[SmtpSink]:
    sink = SmtpSink(free_port())
    sink.start()
    try:
        yield sink
    finally:
        sink.stop()


@pytest.fixture
def gateway() -> Iterator[Gateway]:
    """A real HTTP SMS gateway on loopback (Auth0's custom gateway format)."""
    with serve_gateway() as state:
        yield state
