"""The lean SQLite connection (store/sqlite_driver.py): statements run on the event loop,
and a writer that finds the database locked waits in asyncio, not inside SQLite, so the rest
of the process goes on; it gives up after the busy timeout, and a cancelled waiter leaves no
transaction and no lock behind."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine

from nopass.store.engine import create_engine, reader


@contextlib.asynccontextmanager
async def locked(tmp_path: Path, busy_timeout_ms: int) -> AsyncIterator[tuple[AsyncEngine, Any]]:
    """An engine on a database with table ``t`` holding 1, whose write lock another program
    holds (``BEGIN IMMEDIATE``); the caller ends that program's transaction."""
    path = tmp_path / "db.sqlite"
    engine = create_engine(f"sqlite:///{path}", sqlite_busy_timeout_ms=busy_timeout_ms)
    try:
        async with engine.begin() as conn:
            await conn.execute(text("CREATE TABLE t (v INTEGER)"))
            await conn.execute(text("INSERT INTO t VALUES (1)"))
        other = sqlite3.connect(path, isolation_level=None)
        other.execute("BEGIN IMMEDIATE")
        try:
            yield engine, other
        finally:
            other.close()
    finally:
        await engine.dispose()


async def insert(engine: AsyncEngine, value: int) -> float:
    async with engine.begin() as conn:
        await conn.execute(text("INSERT INTO t VALUES (:v)"), {"v": value})
    return asyncio.get_running_loop().time()


async def test_cancelled_writer_leaves_no_lock_behind(tmp_path: Path) -> None:
    async with locked(tmp_path, 5_000) as (engine, other):
        waiting = asyncio.create_task(insert(engine, 2))
        await asyncio.sleep(0.3)
        waiting.cancel()
        await asyncio.gather(waiting, return_exceptions=True)
        other.execute("ROLLBACK")

        # The next writer gets in at once, and nothing of the cancelled one was kept.
        await asyncio.wait_for(insert(engine, 3), timeout=3)
        other.execute("BEGIN IMMEDIATE")  # nobody holds the write lock any more
        other.execute("ROLLBACK")
        assert other.execute("SELECT v FROM t").fetchall() == [(1,), (3,)]


async def test_a_waiting_writer_does_not_stall_the_process(tmp_path: Path) -> None:
    async with locked(tmp_path, 5_000) as (engine, other):
        other.execute("INSERT INTO t VALUES (2)")
        writer = asyncio.create_task(insert(engine, 3))
        await asyncio.sleep(0.2)
        assert not writer.done()
        # The loop is free while the writer waits: reads (WAL) and timers go on.
        ticks = 0
        for _ in range(10):
            began = asyncio.get_running_loop().time()
            await asyncio.sleep(0.01)
            ticks += asyncio.get_running_loop().time() - began < 0.05
        async with reader(engine).connect() as conn:
            assert (await conn.execute(text("SELECT v FROM t"))).scalars().all() == [1]
        assert ticks == 10 and not writer.done()

        other.execute("COMMIT")
        released = asyncio.get_running_loop().time()
        finished = await asyncio.wait_for(writer, timeout=2)
        assert finished - released < 0.1  # it tries again within milliseconds
        assert sorted(other.execute("SELECT v FROM t").fetchall()) == [(1,), (2,), (3,)]


async def test_a_writer_gives_up_after_the_busy_timeout(tmp_path: Path) -> None:
    async with locked(tmp_path, 300) as (engine, other):
        began = asyncio.get_running_loop().time()
        with pytest.raises(OperationalError, match="database is locked"):
            await insert(engine, 2)
        assert 0.3 <= asyncio.get_running_loop().time() - began < 1.5
        other.execute("ROLLBACK")
        # Nothing was left held: the next writer gets in at once.
        await asyncio.wait_for(insert(engine, 3), timeout=1)
        assert other.execute("SELECT v FROM t").fetchall() == [(1,), (3,)]


async def test_writers_of_two_engines_take_turns(tmp_path: Path) -> None:
    """Two engines stand for two processes: each has its own lock-file descriptors."""
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    first, second = create_engine(url), create_engine(url)
    try:
        async with first.begin() as conn:
            await conn.execute(text("CREATE TABLE c (n INTEGER)"))
            await conn.execute(text("INSERT INTO c VALUES (0)"))

        async def bump(engine_index: int) -> None:
            engine = (first, second)[engine_index % 2]
            async with engine.begin() as conn:
                n = (await conn.execute(text("SELECT n FROM c"))).scalar_one()
                await asyncio.sleep(0)  # let the other engine try to write meanwhile
                await conn.execute(text("UPDATE c SET n = :n"), {"n": n + 1})

        await asyncio.gather(*(bump(i) for i in range(40)))
        async with first.connect() as conn:
            assert (await conn.execute(text("SELECT n FROM c"))).scalar_one() == 40
        assert (tmp_path / "db.sqlite-writer.lock").exists()
    finally:
        await first.dispose()
        await second.dispose()
