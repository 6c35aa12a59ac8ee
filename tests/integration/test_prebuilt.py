"""Prebuilt statements (store/prebuilt.py), on SQLite and PostgreSQL: ``run`` gives the rows,
types and row counts SQLAlchemy's own ``execute`` gives, and SQLAlchemy's exceptions; on
SQLite it runs in the transaction SQLAlchemy began, so commit and rollback still decide."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    Integer,
    MetaData,
    String,
    Table,
    bindparam,
    case,
    insert,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError, StatementError
from sqlalchemy.ext.asyncio import AsyncEngine

from nopass.store import prebuilt
from nopass.store.engine import create_engine
from nopass.store.prebuilt import run
from nopass.store.tables import UTCDateTime

T0 = datetime(2026, 11, 27, 12, 0, 0, 123456, tzinfo=UTC)
_meta = MetaData()
_T = Table(
    "prebuilt_things",
    _meta,
    Column("id", String(32), primary_key=True),
    Column("at", UTCDateTime(), nullable=False),
    Column("data", JSON, nullable=False),
    Column("flag", Boolean, nullable=False),
    Column("n", Integer, nullable=False, default=0),
    Column("note", String(64)),
)
ADD = insert(_T)
GET = select(_T).where(_T.c.id == bindparam("b_id")).order_by(_T.c.id)
ALL = select(_T.c.id, _T.c.at).order_by(_T.c.id)
BUMP = (
    update(_T)
    .where(_T.c.at <= bindparam("b_now", type_=UTCDateTime()))
    .values(n=_T.c.n + 1)
    .returning(_T.c.id, case((_T.c.n > 1, 1), else_=0).label("many"))
)


def thing(n: int, **extra: Any) -> dict[str, Any]:
    return {
        "id": f"t{n}",
        "at": T0 + timedelta(minutes=n),
        "data": {"n": n, "list": [1, "a"]},
        "flag": n % 2 == 0,
        "n": 0,
        "note": None,
        **extra,
    }


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(database_url)
    async with engine.begin() as conn:
        await conn.run_sync(_meta.drop_all)
        await conn.run_sync(_meta.create_all)
    try:
        yield engine
    finally:
        await engine.dispose()


async def test_rows_match_sqlalchemys(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        for n in (1, 2):
            added = await run(conn, ADD, thing(n))
            assert added.rowcount == 1 and added.all() == ()
        ours = (await run(conn, GET, {"b_id": "t2"})).one()
        theirs = (await conn.execute(GET, {"b_id": "t2"})).one()
        assert tuple(ours) == tuple(theirs)
        assert ours._mapping == dict(theirs._mapping)
        assert (ours.at, ours.data, ours.flag) == (
            T0 + timedelta(minutes=2),
            thing(2)["data"],
            True,
        )
        assert ours.at.tzinfo is not None

        bumped = await run(conn, BUMP, {"b_now": T0 + timedelta(minutes=1)})
        assert bumped.rowcount == 1 and [tuple(r) for r in bumped] == [("t1", 0)]
        again = await run(conn, BUMP, {"b_now": T0 + timedelta(hours=1)})
        assert again.rowcount == 2  # RETURNING sees the new n: t1 at 2, t2 at 1
        assert sorted((r.id, r.many) for r in again.all()) == [("t1", 1), ("t2", 0)]
        assert (await run(conn, GET, {"b_id": "none"})).first() is None
        assert [r.id for r in await run(conn, ALL)] == ["t1", "t2"]
        first = (await run(conn, ALL)).first()
        assert first is not None and first.id == "t1"
    if engine.dialect.name == "sqlite":  # these ran on the driver, not through SQLAlchemy
        for statement, keys in (
            (ADD, tuple(sorted(thing(1)))),
            (GET, ("b_id",)),
            (BUMP, ("b_now",)),
        ):
            assert prebuilt._plans[(id(statement), keys)] is not None


async def test_commit_and_rollback_decide(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        await run(conn, ADD, thing(1))
    async with engine.connect() as conn, conn.begin() as tx:
        await run(conn, ADD, thing(2))
        await tx.rollback()
    async with engine.connect() as conn:
        assert [r.id for r in (await conn.execute(ALL)).all()] == ["t1"]


async def test_errors_are_sqlalchemys_and_the_transaction_goes_on(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        await run(conn, ADD, thing(1))
        with pytest.raises(IntegrityError):
            async with conn.begin_nested():
                await run(conn, ADD, thing(1))
        await run(conn, ADD, thing(2))
    async with engine.connect() as conn:
        assert [r.id for r in (await conn.execute(ALL)).all()] == ["t1", "t2"]


async def test_what_needs_sqlalchemy_is_left_to_it(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        # A column default computed by SQLAlchemy (n), and a missing parameter it names.
        without_n = {k: v for k, v in thing(1).items() if k != "n"}
        assert (await run(conn, ADD, without_n)).rowcount == 1
        assert (await run(conn, GET, {"b_id": "t1"})).one().n == 0
        with pytest.raises(StatementError, match="b_id"):
            await run(conn, GET, {})
    if engine.dialect.name == "sqlite":
        assert prebuilt._plans[(id(ADD), tuple(sorted(without_n)))] is None
        assert prebuilt._plans[(id(GET), ())] is None
    # No transaction open: SQLAlchemy begins one (rolled back when the block ends).
    async with engine.connect() as conn:
        assert [r.id for r in await run(conn, ALL)] == ["t1"]
