"""Every query shape of ``GET /api/v2/users`` and ``/users-by-email`` runs on an index, on
SQLite and PostgreSQL, over 20,000 analysed users (no planner switches): the statements are
the ones the repository sends (captured as it runs them), explained as sent.

PostgreSQL: no ``Seq Scan`` on users, an index scan on it, and no sort of more rows than a
page walk reads. SQLite: ``SEARCH users USING ... INDEX``, never ``SCAN users``, and no
temporary B-tree for the order of an index walk.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import event, insert, select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from nopass.core.user_query import SORTABLE, Sort, parse_query
from nopass.store.engine import create_engine
from nopass.store.tables import ConnectionRow, UserRow, table
from nopass.store.users import SqlUserRepo
from tests.support.harness import prepare_database
from tests.support.tokens import login_config

N = 20_000
T0 = datetime(2024, 1, 1, tzinfo=UTC)
USERS = table(UserRow)

# every q the search indexes (README "Users at a million"); each matches a few
SEARCHES = [
    'email:"user1234@example.com"',
    "email:user1234@example.com",
    "email:USER123*",
    "email:user77*@example.com",
    'user_id:"email|0000000000000000000004d2"',
    "user_id:sms|0000000000000000000001*",
    'name:"ann123 smith"',
    "name:ann12*",
    "nickname:nick42",
    "given_name:given42*",
    "family_name:family9*",
    'phone_number:"+15550001239"',
    "phone_number:+1555000123*",
    "logins_count:[40 TO 41]",
    "logins_count:{97 TO *]",
    "created_at:[2024-01-02 TO 2024-01-03]",
    "updated_at:2024-01-05",
    "last_login:[2025-01-01T00:00:00 TO 2025-01-01T06:00:00]",
    "user1234@example.com",  # a bare term: every default field
    "email:user1234* OR name:ann99*",
    "email:user12* AND logins_count:[1 TO 5]",
]


@dataclass
class Seeded:
    engine: AsyncEngine
    tenant: str


@pytest.fixture
async def seeded(database_url: str) -> AsyncIterator[Seeded]:
    await prepare_database(database_url, login_config("127.0.0.1:1"))
    engine = create_engine(database_url)
    try:
        async with engine.begin() as conn:
            rows = (await conn.execute(select(table(ConnectionRow)))).all()
            tenant = rows[0].tenant_id
            connections = {row.name: row.id for row in rows}
            await conn.execute(insert(USERS), [_row(n, tenant, connections) for n in range(N)])
        async with engine.connect() as conn:
            if conn.dialect.name == "postgresql":
                await conn.execute(text("COMMIT"))
                await conn.execute(text("VACUUM ANALYZE users"))
            else:
                await conn.execute(text("ANALYZE"))
                await conn.commit()
        yield Seeded(engine, tenant)
    finally:
        await engine.dispose()


def _row(n: int, tenant: str, connections: dict[str, str]) -> dict[str, Any]:
    """One user in ten an SMS user; two in three have logged in."""
    sms = n % 10 == 9
    profile: dict[str, Any] = {
        "name": f"Ann{n} Smith",
        "nickname": f"nick{n}",
        "given_name": f"Given{n}",
        "family_name": f"Family{n % 1000}",
    }
    if sms:
        profile["phone_number"] = f"+1555{n:07d}"
    else:
        profile["email"] = f"user{n}@example.com"
        profile["email_verified"] = True
    logins = 0 if n % 3 == 0 else n % 100
    created = T0 + timedelta(minutes=7 * n)
    return {
        "tenant_id": tenant,
        "user_id": f"{'sms' if sms else 'email'}|{n:024x}",
        "connection_id": connections["sms" if sms else "email"],
        "identifier": profile.get("phone_number") or profile["email"],
        "profile": profile,
        "created_at": created,
        "updated_at": created + timedelta(days=n % 30),
        "last_login": T0 + timedelta(days=366, minutes=3 * n) if logins else None,
        "last_ip": None,
        "logins_count": logins,
        "app_metadata": {},
        "user_metadata": {},
        "blocked": False,
    }


@contextmanager
def captured(engine: AsyncEngine) -> Iterator[list[tuple[str, Any]]]:
    sent: list[tuple[str, Any]] = []

    def record(conn: Any, cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        sent.append((statement, parameters))

    event.listen(engine.sync_engine, "before_cursor_execute", record)
    try:
        yield sent
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", record)


async def plans(seeded: Seeded, call: Any) -> list[Any]:
    """The plan of every statement ``call(repo)`` sends."""
    async with seeded.engine.connect() as conn:
        with captured(seeded.engine) as sent:
            await call(SqlUserRepo(conn))
        found = []
        for statement, parameters in sent:
            if conn.dialect.name == "postgresql":
                rows = await conn.exec_driver_sql("EXPLAIN (FORMAT JSON) " + statement, parameters)
                plan = rows.scalar_one()
                found.append(
                    json.loads(plan)[0]["Plan"] if isinstance(plan, str) else plan[0]["Plan"]
                )
            else:
                rows = await conn.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, parameters)
                found.append([str(row[-1]) for row in rows])
    assert found, "no statement was sent"
    return found


def _nodes(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield plan
    for child in plan.get("Plans", []):
        yield from _nodes(child)


SORT_INDEXES = {
    "created_at": "ix_users_tenant_created",
    "updated_at": "ix_users_tenant_updated",
    "last_login": "ix_users_tenant_last_login",
    "logins_count": "ix_users_tenant_logins_count",
    "user_id": "uq_users_tenant_id_user_id",  # SQLite names it sqlite_autoindex_users_<n>
}


def assert_indexed(plan: Any, *, walk: int | None = None, index: str | None = None) -> None:
    """On an index, no full scan; with ``walk`` (rows a page reads), no larger sort; with
    ``index``, every scan of users walks that index with no filter (a filter walk of
    another index in the right order reads every row it skips: at 10⁶ users, seconds)."""
    if isinstance(plan, list):  # SQLite
        shown = "\n".join(plan)
        users = [line for line in plan if " users" in f" {line}"]
        assert users, shown
        for line in users:
            assert not line.startswith("SCAN users"), shown
            assert "USING" in line and "INDEX" in line, shown
            if index is not None:
                unique = index.startswith("uq_") and "INDEX sqlite_autoindex_users_" in line
                assert unique or f"INDEX {index} " in f"{line} ", shown
        if walk is not None:  # only the merge of the walks (the last step) may sort
            assert "TEMP B-TREE" not in "\n".join(plan[:-1]), shown
        return
    nodes = list(_nodes(plan))
    shown = json.dumps(plan, indent=1)
    on_users = [n for n in nodes if n.get("Relation Name") == "users"]
    assert on_users, shown
    assert not any(n["Node Type"] == "Seq Scan" for n in on_users), shown
    assert any("Index" in n["Node Type"] for n in nodes), shown
    if index is not None:
        for node in on_users:
            assert node.get("Index Name") == index, shown
            assert "Filter" not in node, shown
    if walk is not None:
        for node in nodes:
            if node["Node Type"] in ("Sort", "Incremental Sort"):
                assert node["Plan Rows"] <= 3 * walk, shown  # three walks at most


async def test_every_query_shape_uses_an_index(seeded: Seeded) -> None:
    """One seeded database, every shape; the failures are reported together."""
    failures: list[str] = []

    async def check(
        name: str, call: Any, walk: int | None = None, index: str | None = None
    ) -> None:
        try:
            for plan in await plans(seeded, call):
                assert_indexed(plan, walk=walk, index=index)
        except AssertionError as failed:
            failures.append(f"{name}: {failed}")

    for field in SORTABLE:
        for descending in (False, True):
            sort = Sort(field, descending)
            for offset in (0, 950):

                async def page(repo: SqlUserRepo, s: Sort = sort, o: int = offset) -> None:
                    found = await repo.page(seeded.tenant, offset=o, limit=50, sort=s)
                    assert len(found) == 50

                name = f"sort={field}:{-1 if descending else 1} offset={offset}"
                index = SORT_INDEXES.get(field, f"ix_users_tenant_{field}")
                await check(name, page, 1000, index)

    for q in SEARCHES:
        query = parse_query(q)

        async def search(repo: SqlUserRepo, query: Any = query, q: str = q) -> None:
            found = await repo.page(seeded.tenant, offset=0, limit=50, sort=Sort(), query=query)
            assert found, f"nothing matches {q}"
            await repo.count(seeded.tenant, query)  # include_totals=true

        await check(f"q={q}", search)

    async def by_email(repo: SqlUserRepo) -> None:
        assert len(await repo.by_identifier(seeded.tenant, "user1234@example.com")) == 1

    await check("users-by-email", by_email)
    assert not failures, "\n\n".join(failures)
