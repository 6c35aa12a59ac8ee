"""The user search in SQL (store/user_search.py) on SQLite and PostgreSQL: it returns exactly
the users ``core.user_query.matches`` accepts, in a deterministic order, in one tenant, and
an exact email, an exact user_id and the unfiltered page go through their indexes."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st
from sqlalchemy import delete, insert, select, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from nopass.core.errors import InvalidQuery
from nopass.core.models import User
from nopass.core.user_query import DEFAULT_SORT, Sort, matches, ordered, parse_query, search_view
from nopass.store.engine import create_engine
from nopass.store.tables import ConnectionRow, TenantRow, UserRow, table
from nopass.store.user_search import search_filter, search_users
from tests.support.harness import prepare_database
from tests.support.tokens import login_config

T0 = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
USERS = table(UserRow)


@dataclass
class World:
    engine: AsyncEngine
    tenant: str
    connections: dict[str, str]  # name -> id


@pytest.fixture
async def world(database_url: str) -> AsyncIterator[World]:
    await prepare_database(database_url, login_config("127.0.0.1:1"))
    engine = create_engine(database_url)
    try:
        async with engine.connect() as conn:
            rows = (await conn.execute(select(table(ConnectionRow)))).all()
        yield World(engine, rows[0].tenant_id, {row.name: row.id for row in rows})
    finally:
        await engine.dispose()


def user(world: World, n: int, **fields: Any) -> dict[str, Any]:
    """A users row: an email user by default."""
    email = fields.pop("email", f"user{n}@example.com")
    sms = fields.pop("sms", False)
    profile = fields.pop("profile", None)
    if profile is None:
        profile = {"phone_number": f"+1555000{n:04d}"} if sms else {"email": email}
    row = {
        "tenant_id": world.tenant,
        "user_id": f"{'sms' if sms else 'email'}|{n:024x}",
        "connection_id": world.connections["sms" if sms else "email"],
        "identifier": profile.get("phone_number", "") if sms else email.lower(),
        "profile": profile,
        "created_at": T0 + timedelta(hours=n),
        "updated_at": T0 + timedelta(hours=n),
        "last_login": None,
        "last_ip": None,
        "logins_count": 0,
        "app_metadata": {},
        "user_metadata": {},
        "blocked": False,
    }
    row.update(fields)
    return row


async def store(world: World, rows: list[dict[str, Any]]) -> None:
    async with world.engine.begin() as conn:
        await conn.execute(delete(USERS))
        if rows:
            await conn.execute(insert(USERS), rows)


def views(world: World, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    names = {v: k for k, v in world.connections.items()}
    return [search_view(User(**r), names[r["connection_id"]]) for r in rows]


async def ids(world: World, q: str | None, sort: Sort = DEFAULT_SORT, **page: int) -> list[str]:
    async with world.engine.connect() as conn:
        found, total = await search_users(conn, world.tenant, parse_query(q), sort, **page)
    if not page:
        assert total == len(found)
    return [u.user_id for u in found]


def expected(world: World, rows: list[dict[str, Any]], q: str | None) -> list[str]:
    query = parse_query(q)
    return [v["user_id"] for v in ordered([v for v in views(world, rows) if matches(query, v)])]


# --- examples ------------------------------------------------------------------------------


async def test_examples_of_every_construct(world: World) -> None:
    rows = [
        user(world, 1, email="Ann@Example.com", profile={"email": "ann@example.com",
             "name": "Ann Smith", "email_verified": True}, logins_count=3,
             last_login=T0 + timedelta(days=2), app_metadata={"roles": ["admin", "dev"]}),
        user(world, 2, email="bob@test.org", profile={"email": "bob@test.org", "name": "bob",
             "email_verified": False}, app_metadata={"roles": "user", "plan": {"tier": "gold"}},
             user_metadata={"n": 5}, blocked=True),
        user(world, 3, sms=True, profile={"phone_number": "+15550003", "email": "Carol@Example.COM",
             "name": "Carol"}, app_metadata={"plan": [{"tier": "gold"}, {"tier": "silver"}],
             "empty": [], "none": None, "obj": {}}, last_ip="192.0.2.1"),
    ]  # fmt: skip
    await store(world, rows)
    e1, e2, s3 = (r["user_id"] for r in rows)
    cases = {
        'email:"ANN@example.com"': [e1],
        "email:carol@example.com": [s3],
        "email.domain:example.com": [e1, s3],
        "name:ann\\ smith": [e1],
        'name:("bob" OR "carol")': [e2, s3],
        "name:*smith": [e1],
        "email:b*": [e2],
        "email_verified:true": [e1],
        "email_verified:false": [e2],
        "NOT email_verified:true": [e2, s3],
        "blocked:true": [e2],
        "logins_count:[1 TO 3]": [e1],
        "logins_count:{1 TO 3}": [],
        "NOT _exists_:logins_count OR logins_count:0": [e2, s3],
        "last_login:[2026-11-29 TO *]": [e1],
        "last_login:2026-11-29": [e1],
        "created_at:[* TO 2026-11-27T14:00}": [e1],
        "_exists_:last_ip": [s3],
        "identities.connection:sms": [s3],
        "identities.provider:email": [e1, e2],
        f"identities.user_id:{e2.split('|')[1]}": [e2],
        f'user_id:"{e1}"': [e1],
        "app_metadata.roles:admin": [e1],
        "app_metadata.plan.tier:gold": [e2, s3],
        "app_metadata.plan.tier:silver AND name:carol": [s3],
        "user_metadata.n:5": [e2],
        "_exists_:app_metadata.empty OR _exists_:app_metadata.none": [],
        "_exists_:app_metadata.obj": [],
        "_exists_:app_metadata.plan": [e2, s3],
        "ann\\ smith bob": [e1, e2],
        "email.domain:example.com -name:carol": [e1],
        "phone_number:+15550003": [s3],
    }
    for q, want in cases.items():
        assert await ids(world, q) == want, q
        assert expected(world, rows, q) == want, q


async def test_the_search_is_scoped_by_tenant(world: World) -> None:
    async with world.engine.begin() as conn:
        await conn.execute(
            insert(table(TenantRow)),
            {"id": "other", "name": "other", "created_at": T0, "updated_at": T0},
        )
    mine = user(world, 1)
    theirs = user(world, 2, tenant_id="other", email="user1@example.com")
    theirs["identifier"] = "user1@example.com"
    await store(world, [mine, theirs])
    assert await ids(world, None) == [mine["user_id"]]
    assert await ids(world, 'email:"user1@example.com"') == [mine["user_id"]]


async def test_order_paging_and_totals(world: World) -> None:
    rows = [user(world, n, logins_count=n % 3, profile={"email": f"u{n}@x.io", "name": f"n{9 - n}"})
            for n in range(1, 8)]  # fmt: skip
    await store(world, rows)
    every = [r["user_id"] for r in rows]
    assert await ids(world, None) == every
    assert await ids(world, None, Sort("created_at", descending=True)) == every[::-1]
    assert await ids(world, None, Sort("name")) == every[::-1]
    # absent logins_count (0) sorts last either way; ties by user_id
    by_count = await ids(world, None, Sort("logins_count"))
    assert by_count == [every[i] for i in (0, 3, 6, 1, 4, 2, 5)]
    async with world.engine.connect() as conn:
        page, total = await search_users(conn, world.tenant, None, offset=2, limit=3)
        assert ([u.user_id for u in page], total) == (every[2:5], 7)
        empty, total = await search_users(conn, world.tenant, None, offset=50, limit=50)
        assert (empty, total) == ([], 7)
        with pytest.raises(InvalidQuery, match="at most the first 1000"):
            await search_users(conn, world.tenant, None, offset=990, limit=20)


async def plan(conn: AsyncConnection, where: Any, ordered_page: bool) -> str:
    query = select(USERS).where(where)
    if ordered_page:
        query = query.order_by(USERS.c.created_at, USERS.c.user_id).limit(50)
    compiled = query.compile(conn.engine, compile_kwargs={"literal_binds": True})
    if conn.dialect.name == "sqlite":
        rows = await conn.execute(text(f"EXPLAIN QUERY PLAN {compiled}"))
        return "\n".join(str(r[-1]) for r in rows)
    await conn.execute(text("ANALYZE users"))
    await conn.execute(text("SET LOCAL enable_seqscan = off"))
    rows = await conn.execute(text(f"EXPLAIN {compiled}"))
    return "\n".join(str(r[0]) for r in rows)


async def test_exact_email_user_id_and_the_default_page_use_indexes(world: World) -> None:
    await store(world, [user(world, n) for n in range(1, 30)])
    async with world.engine.begin() as conn:
        dialect = conn.dialect.name
        email = await plan(
            conn, search_filter(world.tenant, parse_query('email:"a@b.c"'), dialect), False
        )
        assert "ix_users_tenant_email_folded" in email, email
        by_id = await plan(
            conn, search_filter(world.tenant, parse_query('user_id:"email|1"'), dialect), False
        )
        if dialect == "sqlite":
            assert "(tenant_id=? AND user_id=?)" in by_id, by_id
        else:
            assert "Index Cond" in by_id and "user_id" in by_id.split("Index Cond")[1], by_id
        page = await plan(conn, search_filter(world.tenant, None, dialect), True)
        assert "ix_users_tenant_created" in page, page
        assert "TEMP B-TREE" not in page and "Sort" not in page, page


# --- the property: SQL == matches ----------------------------------------------------------

NAMES = ["Ann", "ann", "ANN", "Ann Smith", "bób", "Bób", "Émile", "émile", "x*y", "50%_off"]
EMAILS = ["ann@example.com", "bob@example.org", "carol@test.example.com", "a_b@x.io"]
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(0, 6),
    st.sampled_from(["admin", "Admin", "5", "true", "gold"]),
)
LEAVES = st.one_of(
    SCALARS, st.lists(SCALARS, max_size=3), st.lists(st.lists(SCALARS, max_size=2), max_size=2)
)
OBJECTS = st.dictionaries(st.sampled_from(["tier", "roles", "n"]), LEAVES, max_size=2)
META = st.dictionaries(
    st.sampled_from(["roles", "plan", "n", "flag", "x"]),
    st.one_of(LEAVES, OBJECTS, st.lists(OBJECTS, max_size=2)),
    max_size=3,
)


@st.composite
def user_rows(draw: st.DrawFn) -> list[dict[str, Any]]:
    placeholder = World(None, "t", {"email": "ce", "sms": "cs"})  # type: ignore[arg-type]
    rows = []
    for n in range(draw(st.integers(0, 6))):
        sms = draw(st.booleans())
        profile: dict[str, Any] = {}
        email = draw(st.sampled_from(EMAILS))
        if sms:
            profile["phone_number"] = f"+1555{n}"
            if draw(st.booleans()):
                profile["email"] = draw(st.sampled_from([e.upper() for e in EMAILS] + EMAILS))
        else:
            email = f"{n}{email}"
            profile["email"] = email
        for key in ("name", "nickname", "given_name"):
            if draw(st.booleans()):
                profile[key] = draw(st.sampled_from(NAMES))
        if draw(st.booleans()):
            profile["email_verified"] = draw(st.booleans())
        rows.append(
            user(
                placeholder,
                n,
                sms=sms,
                email=email,
                profile=profile,
                created_at=T0 + timedelta(hours=n, minutes=draw(st.integers(0, 59))),
                last_login=draw(st.none() | st.sampled_from([T0, T0 + timedelta(days=1)])),
                logins_count=draw(st.integers(0, 4)),
                last_ip=draw(st.none() | st.just("192.0.2.1")),
                blocked=draw(st.booleans()),
                app_metadata=draw(META),
                user_metadata=draw(META),
            )
        )
    return rows


LEAF_QUERIES = st.one_of(
    st.builds("{}:{}".format, st.sampled_from(["name", "nickname", "given_name"]),
              st.sampled_from(["ann", '"ANN SMITH"', "Ann\\ Smith", "bób", "BÓB", "ann*", "*smith",
                               "*mile", "x\\*y", "x*", '"50%_off"', "5*"])),
    st.builds("email:{}".format, st.sampled_from(['"0ann@example.com"', "1BOB@example.org",
              "ANN@EXAMPLE.COM", "*example.com", "0*", '"a_b@x.io"'])),
    st.builds("email.domain:{}".format, st.sampled_from(["example.com", "EXAMPLE.org", "x.io"])),
    st.builds("{}:{}".format, st.sampled_from(["email_verified", "blocked"]),
              st.sampled_from(["true", "false"])),
    st.builds("logins_count:{}".format,
              st.sampled_from(["0", "2", "[1 TO 3]", "{1 TO *]", "[* TO 2}"])),
    st.builds("{}:{}".format, st.sampled_from(["created_at", "last_login", "updated_at"]),
              st.sampled_from(["2026-11-27", "[2026-11-27T14:00 TO *]", "{* TO 2026-11-28}",
                               "2026-11-27T12:00:00", "[2026-11-27 TO 2026-11-27T15:30}"])),
    st.builds("_exists_:{}".format, st.sampled_from(["last_login", "logins_count", "email",
              "name", "email_verified", "last_ip", "app_metadata.roles", "user_metadata.plan",
              "app_metadata.plan.tier", "app_metadata.x", "user_metadata.n"])),
    st.builds("{}.{}:{}".format, st.sampled_from(["app_metadata", "user_metadata"]),
              st.sampled_from(["roles", "plan.tier", "n", "flag", "x", "plan.roles", "plan.n"]),
              st.sampled_from(["admin", "Admin", "5", "true", "false", "gold", '"5"', "0"])),
    st.sampled_from(["identities.connection:sms", "identities.provider:email",
                     "identities.connection:*mail", "identities.user_id:000000000000000000000001",
                     "user_id:email|000000000000000000000002", "last_ip:192.0.2.1",
                     "phone_number:+15551", "ann", "admin"]),
)  # fmt: skip
QUERIES = st.recursive(
    LEAF_QUERIES,
    lambda inner: st.one_of(
        st.builds("({} AND {})".format, inner, inner),
        st.builds("{} OR {}".format, inner, inner),
        st.builds("{} {}".format, inner, inner),
        st.builds("NOT {}".format, inner),
        st.builds("({} -{})".format, inner, inner),
    ),
    max_leaves=5,
)
SORTS = st.builds(
    Sort,
    st.sampled_from(["created_at", "name", "logins_count", "last_login", "email"]),
    st.booleans(),
)


@settings(
    max_examples=60,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(rows=user_rows(), queries=st.lists(QUERIES, min_size=1, max_size=6), sort=SORTS)
async def test_sql_returns_exactly_what_matches_accepts(
    world: World, rows: list[dict[str, Any]], queries: list[str], sort: Sort
) -> None:
    for row in rows:
        row["tenant_id"] = world.tenant
        row["connection_id"] = world.connections[
            "sms" if row["user_id"].startswith("sms") else "email"
        ]
    await store(world, rows)
    for q in queries:
        want = expected(world, rows, q)
        assert await ids(world, q) == want, q
        query = parse_query(q)
        hits = [v for v in views(world, rows) if matches(query, v)]
        assert await ids(world, q, sort) == [v["user_id"] for v in ordered(hits, sort)], q
