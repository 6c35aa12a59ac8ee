"""Fixtures for the CLI tests."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.support.services import (
    POSTGRES_ENV,
    create_postgres_database,
    drop_postgres_database,
    required_url,
)


@pytest.fixture
async def postgres_url() -> AsyncIterator[str]:
    """A throwaway PostgreSQL database, for behaviour that only PostgreSQL has."""
    url = await create_postgres_database(required_url(POSTGRES_ENV))
    try:
        yield url
    finally:
        await drop_postgres_database(url)
