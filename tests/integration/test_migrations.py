"""The Alembic migrations build exactly the schema the models declare, on both databases,
and running them again changes nothing."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Connection, text

from nopass.store import user_keys
from nopass.store.engine import create_engine
from nopass.store.migrate import migrate_engine
from nopass.store.tables import Base
from tests.support.services import throwaway_database

# Alembic compares expression indexes as text, which each database rewrites in its own way:
# those of store/user_keys.py are compared below as the database itself shows them.
_EXPRESSION_INDEXES = {name for name, *_ in user_keys.indexes()}


def _include(obj: Any, name: str | None, kind: str, reflected: bool, other: Any) -> bool:
    return not (kind == "index" and name in _EXPRESSION_INDEXES)


def _diff(conn: Connection) -> list[object]:
    context = MigrationContext.configure(
        conn, opts={"compare_type": True, "include_object": _include}
    )
    with warnings.catch_warnings():  # SQLite cannot reflect expression indexes at all
        warnings.filterwarnings("ignore", "Skipped unsupported reflection of expression-based")
        warnings.filterwarnings("ignore", "autogenerate skipping metadata-specified expression")
        return list(compare_metadata(context, Base.metadata))


def _users_indexes(conn: Connection) -> dict[str, str]:
    """Every index of ``users`` as the database defines it."""
    if conn.dialect.name == "postgresql":
        rows = conn.execute(
            text("SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'users'")
        )
    else:
        rows = conn.execute(
            text(
                "SELECT name, sql FROM sqlite_master WHERE type = 'index'"
                " AND tbl_name = 'users' AND sql IS NOT NULL"
            )
        )
    return {str(name): " ".join(str(sql).split()) for name, sql in rows}


async def test_migrations_match_the_models(database_url: str) -> None:
    engine = create_engine(database_url)
    try:
        await migrate_engine(engine)
        await migrate_engine(engine)  # idempotent
        async with engine.connect() as conn:
            assert await conn.run_sync(_diff) == []
    finally:
        await engine.dispose()


@pytest.mark.parametrize(
    "backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
async def test_user_search_indexes_are_the_ones_create_all_makes(
    backend: str, tmp_path: Path
) -> None:
    """Migration 0007's expression indexes equal, as the database states them, the ones the
    models create."""
    found = []
    for name in ("migrated", "created"):
        async with throwaway_database(backend, tmp_path / f"{name}.db") as url:
            engine = create_engine(url)
            try:
                if name == "migrated":
                    await migrate_engine(engine)
                else:
                    async with engine.begin() as conn:
                        await conn.run_sync(Base.metadata.create_all)
                async with engine.connect() as conn:
                    found.append(await conn.run_sync(_users_indexes))
            finally:
                await engine.dispose()
    migrated, created = found
    assert migrated == created
    dialect = "postgresql" if backend == "postgres" else "sqlite"
    expected = {name for name, on, *_ in user_keys.indexes() if on == dialect}
    assert expected <= set(migrated)
