"""Units of work on SQLite keep their connection open for the next one
(store/kept_connections.py): only healthy connections outside a transaction are kept."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from nopass.core.keyring import Keyring
from nopass.store.engine import create_engine
from nopass.store.kept_connections import KeptConnections
from nopass.store.unit_of_work import SqlUnitOfWork

KEYRING = Keyring([b"k" * 32])


@pytest.fixture
async def engine(sqlite_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(sqlite_url)
    async with engine.begin() as conn:
        await conn.execute(text("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)"))
    try:
        yield engine
    finally:
        await engine.dispose()


@pytest.fixture
async def kept(engine: AsyncEngine) -> AsyncIterator[KeptConnections]:
    kept = KeptConnections(engine, most=2)
    try:
        yield kept
    finally:
        await kept.aclose()


async def notes(work: SqlUnitOfWork) -> list[str]:
    rows = await work.connection.execute(text("SELECT body FROM notes ORDER BY id"))
    return [row.body for row in rows]


async def test_the_next_unit_of_work_reuses_the_connection_and_sees_committed_work(
    engine: AsyncEngine, kept: KeptConnections
) -> None:
    async with SqlUnitOfWork(engine, KEYRING, kept=kept) as work:
        first = work.connection
        await first.execute(text("INSERT INTO notes (body) VALUES ('kept')"))
        await work.commit()
    async with SqlUnitOfWork(engine, KEYRING, kept=kept) as work:
        assert work.connection is first
        assert await notes(work) == ["kept"]


async def test_work_not_committed_is_rolled_back_before_the_connection_is_kept(
    engine: AsyncEngine, kept: KeptConnections
) -> None:
    with pytest.raises(LookupError):
        async with SqlUnitOfWork(engine, KEYRING, kept=kept) as work:
            first = work.connection
            await first.execute(text("INSERT INTO notes (body) VALUES ('undone')"))
            raise LookupError("a flow refused the request")
    async with SqlUnitOfWork(engine, KEYRING, kept=kept) as work:
        assert work.connection is first  # a refusal is not a broken connection
        assert await notes(work) == []
    # and the write lock was let go: another connection writes at once
    async with engine.begin() as other:
        await other.execute(text("INSERT INTO notes (body) VALUES ('next')"))


async def test_a_connection_that_met_a_database_error_is_closed_not_kept(
    engine: AsyncEngine, kept: KeptConnections
) -> None:
    with pytest.raises(IntegrityError):
        async with SqlUnitOfWork(engine, KEYRING, kept=kept) as work:
            first = work.connection
            await first.execute(text("INSERT INTO notes (id, body) VALUES (1, 'a')"))
            await first.execute(text("INSERT INTO notes (id, body) VALUES (1, 'b')"))
    assert first.closed
    async with SqlUnitOfWork(engine, KEYRING, kept=kept) as work:
        assert work.connection is not first
        assert await notes(work) == []


async def test_no_more_than_most_are_kept_and_aclose_closes_them(
    engine: AsyncEngine, kept: KeptConnections
) -> None:
    works = [SqlUnitOfWork(engine, KEYRING, kept=kept) for _ in range(4)]
    for work in works:  # four at once: four connections
        await work.__aenter__()
    connections = [work.connection for work in works]
    assert len({id(c) for c in connections}) == 4
    for work in works:
        await work.__aexit__(None, None, None)
    assert [c.closed for c in connections] == [False, False, True, True]  # two kept
    await kept.aclose()
    assert all(c.closed for c in connections)
    async with SqlUnitOfWork(engine, KEYRING, kept=kept) as work:  # after aclose: not kept
        late = work.connection
    assert late.closed
