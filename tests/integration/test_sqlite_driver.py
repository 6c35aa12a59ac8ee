"""The lean SQLite connection (store/sqlite_driver.py): a writer cancelled while its statement
is still running in the connection's thread leaves no transaction and no lock behind."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

from sqlalchemy import text

from nopass.store.engine import create_engine


async def test_cancelled_writer_leaves_no_lock_behind(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite"
    engine = create_engine(f"sqlite:///{path}", sqlite_busy_timeout_ms=5_000)
    try:
        async with engine.begin() as conn:
            await conn.execute(text("CREATE TABLE t (v INTEGER)"))
        # Another program holds SQLite's write lock: our writer waits inside SQLite.
        other = sqlite3.connect(path, isolation_level=None, timeout=5)
        other.execute("BEGIN IMMEDIATE")

        async def write(value: int) -> None:
            async with engine.begin() as conn:
                await conn.execute(text("INSERT INTO t VALUES (:v)"), {"v": value})

        waiting = asyncio.create_task(write(1))
        await asyncio.sleep(0.3)
        waiting.cancel()
        await asyncio.gather(waiting, return_exceptions=True)
        other.execute("ROLLBACK")

        # The abandoned statement finishes in its thread and is rolled back there: the
        # next writer gets in at once, and nothing of the cancelled one was kept.
        await asyncio.wait_for(write(2), timeout=3)
        other.execute("BEGIN IMMEDIATE")  # nobody holds the write lock any more
        other.execute("ROLLBACK")
        assert other.execute("SELECT v FROM t").fetchall() == [(2,)]
        other.close()
    finally:
        await engine.dispose()


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
