"""The log search in SQL (store/log_search.py, through ``SqlAuditRepo.page``) on SQLite and
PostgreSQL: it returns exactly the events ``core.log_query.matches`` accepts over
``log_view``, newest or oldest first, in one tenant."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st
from sqlalchemy import delete, insert, select
from sqlalchemy.ext.asyncio import AsyncEngine

from nopass.core.log_query import log_view, matches, parse_log_query, prepare
from nopass.core.models import LoggedEvent, TenantConfig
from nopass.store.audit_log import SqlAuditRepo
from nopass.store.engine import create_engine
from nopass.store.tables import AuditEventRow, TenantRow, table
from tests.support.flows import NATIVE, WEB, tenant_config
from tests.support.harness import prepare_database
from tests.support.tokens import login_config

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
EVENTS = table(AuditEventRow)
HOST = "login.acme.example"


@dataclass
class World:
    engine: AsyncEngine
    tenant: str
    other: str
    config: TenantConfig


@pytest.fixture
async def world(database_url: str) -> AsyncIterator[World]:
    await prepare_database(database_url, login_config("127.0.0.1:1"))
    engine = create_engine(database_url)
    try:
        async with engine.begin() as conn:
            tenant = str(await conn.scalar(select(TenantRow.id)))
            await conn.execute(
                insert(TenantRow),
                [{"id": "other-tenant", "name": "other", "created_at": T0, "updated_at": T0}],
            )
        yield World(engine, tenant, "other-tenant", tenant_config())
    finally:
        await engine.dispose()


def event(n: int, **fields: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "id": n,
        "type": "s",
        "created_at": T0 + timedelta(days=n - 3),
        "description": "",
        "ip": None,
        "user_agent": None,
        "client_id": None,
        "connection": None,
        "user_name": None,
        "user_id": None,
        "details": {},
    }
    row.update(fields)
    return row


async def store(world: World, rows: list[dict[str, Any]], *, other: bool = False) -> None:
    async with world.engine.begin() as conn:
        await conn.execute(delete(EVENTS))
        tenant = world.other if other else world.tenant
        if rows:
            await conn.execute(insert(EVENTS), [{**r, "tenant_id": tenant} for r in rows])


async def found(world: World, q: str | None, *, newest_first: bool = False) -> list[int]:
    query = prepare(parse_log_query(q), world.config, HOST)
    async with world.engine.connect() as conn:
        page, total = await SqlAuditRepo(conn).page(
            world.tenant, user_id=None, newest_first=newest_first, offset=0, limit=1000, query=query
        )
    assert total == len(page)
    return [LoggedEvent.number_of(e.log_id) or 0 for e in page]


def expected(world: World, rows: list[dict[str, Any]], q: str | None) -> list[int]:
    query = parse_log_query(q)
    hits = []
    for row in rows:
        logged = _logged(row, world.tenant)
        if matches(query, log_view(logged, world.config, HOST)):
            hits.append(row["id"])
    return sorted(hits)


def _logged(row: dict[str, Any], tenant: str) -> LoggedEvent:
    from nopass.core.models import AuditEvent

    fields = {k: v for k, v in row.items() if k not in ("id", "created_at")}
    return LoggedEvent(
        LoggedEvent.id_of(row["id"]), row["created_at"], AuditEvent(tenant, **fields)
    )


ROWS = [
    event(1, type="s", client_id=NATIVE, connection="email", user_name="ann@example.com",
          user_id="email|ann", ip="192.0.2.1", description="Successful login"),
    event(2, type="seacft", client_id=WEB, connection="sms", user_name="+15550002",
          user_id="sms|bob", ip="192.0.2.2"),
    event(3, type="f", client_id="gone-client", connection="gone", user_name="Ann@Example.com",
          description="Wrong email or verification code."),
    event(4, type="sapi", description="Create a User", user_agent="curl/8.0"),
    event(5, type="cls", client_id=NATIVE, connection="email", user_name="x", ip="198.51.100.7"),
]  # fmt: skip


async def test_worked_examples(world: World) -> None:
    await store(world, ROWS)
    cases = {
        "type:s*": [1, 2, 4],
        "type:s": [1],
        "date:[2026-01-01 TO *]": [3, 4, 5],
        "date:[* TO 2026-01-01}": [1, 2],
        "date:2026-01-02": [4],
        'user_name:"x"': [5],
        'user_name:"ann@example.com"': [1],  # case-sensitive: not event 3
        "user_name:Ann*": [3],
        'client_name:"Native App"': [1, 5],
        "client_name:*App": [1, 2, 5],
        "_exists_:client_name": [1, 2, 5],
        "NOT _exists_:client_name": [3, 4],
        "connection_id:con-sms": [2],
        "strategy:email": [1, 5],
        "strategy_type:passwordless": [1, 2, 5],
        f"hostname:{HOST}": [1, 2, 3, 4, 5],
        "hostname:other.example": [],
        "NOT type:s": [2, 3, 4, 5],
        "type:s OR type:f": [1, 3],
        "type:s* AND NOT client_name:Web*": [1, 4],
        "Native*": [1, 5],  # bare: client_name
        "192.0.2.2": [2],  # bare: ip
        "Wrong*": [3],  # bare: description
        "sapi": [4],  # bare: type
        "email": [1, 5],  # bare: connection
        f"log_id:{LoggedEvent.id_of(4)}": [4],
        "log_id:4": [],  # not a whole log id
        "log_id:*0003": [3],
        "user_agent:curl*": [4],
        "user_id:email|ann": [1],
        "ip:198.51.*": [5],
    }
    for q, want in cases.items():
        assert await found(world, q) == want, q
        assert expected(world, ROWS, q) == want, q
    assert await found(world, "type:s*", newest_first=True) == [4, 2, 1]
    assert await found(world, None) == [1, 2, 3, 4, 5]


async def test_another_tenants_events_are_never_found(world: World) -> None:
    await store(world, ROWS, other=True)
    for q in (None, "type:s*", "client_name:*App", f"hostname:{HOST}", "NOT type:s"):
        assert await found(world, q) == [], q


# --- the property: SQL == matches ---------------------------------------------------------

VALUES = {
    "type": st.sampled_from(["s", "f", "seacft", "sapi", "cls", "S"]),
    "client_id": st.sampled_from([None, NATIVE, WEB, "gone-client"]),
    "connection": st.sampled_from([None, "email", "sms", "members-only", "gone"]),
    "user_name": st.sampled_from([None, "ann@example.com", "Ann@Example.com", "x", "+1555"]),
    "user_id": st.sampled_from([None, "email|ann", "sms|bob"]),
    "ip": st.sampled_from([None, "192.0.2.1", "198.51.100.7"]),
    "description": st.sampled_from(["", "Successful login", "Wrong code"]),
    "user_agent": st.sampled_from([None, "curl/8.0", "Mozilla/5.0"]),
}


@st.composite
def event_rows(draw: st.DrawFn) -> list[dict[str, Any]]:
    count = draw(st.integers(0, 8))
    rows = []
    for n in range(1, count + 1):
        fields: dict[str, Any] = {name: draw(values) for name, values in VALUES.items()}
        fields["created_at"] = T0 + timedelta(hours=draw(st.integers(-72, 72)))
        rows.append(event(n, **fields))
    return rows


LEAF_QUERIES = st.one_of(
    st.builds("type:{}".format, st.sampled_from(["s", "s*", "*acft", "S", "f", "sap*"])),
    st.builds("client_name:{}".format, st.sampled_from(['"Native App"', "*App", "Web*", "x"])),
    st.builds("client_id:{}".format, st.sampled_from([NATIVE, WEB, "native*", "gone-client"])),
    st.builds("connection:{}".format, st.sampled_from(["email", "sms", "*mail", "gone"])),
    st.builds("connection_id:{}".format, st.sampled_from(["con-email", "con-*", "con-sms"])),
    st.builds("strategy:{}".format, st.sampled_from(["email", "sms", "e*"])),
    st.sampled_from(["strategy_type:passwordless", f"hostname:{HOST}", "hostname:*.example",
                     "hostname:nope", "user_name:ann*", "user_name:Ann*", 'user_name:"x"',
                     "user_id:email|ann", "ip:192.0.2.1", "ip:198.51.*", "user_agent:curl*",
                     'description:"Successful login"', "description:Wrong*", "Ann*", "x", "s",
                     "log_id:*001", "log_id:00000000000000000002", "date:[2026-01-01 TO *]",
                     "date:{* TO 2026-01-02T06:00}", "date:2025-12-31",
                     "_exists_:client_name", "_exists_:connection_id", "_exists_:user_agent",
                     "_exists_:strategy_type", "_exists_:ip"]),
)  # fmt: skip
QUERIES = st.recursive(
    LEAF_QUERIES,
    lambda inner: st.one_of(
        st.builds("({} AND {})".format, inner, inner),
        st.builds("{} OR {}".format, inner, inner),
        st.builds("NOT {}".format, inner),
        st.builds("({} -{})".format, inner, inner),
    ),
    max_leaves=5,
)


@settings(
    max_examples=60,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(rows=event_rows(), queries=st.lists(QUERIES, min_size=1, max_size=6), newest=st.booleans())
async def test_sql_returns_exactly_what_matches_accepts(
    world: World, rows: list[dict[str, Any]], queries: list[str], newest: bool
) -> None:
    await store(world, rows)
    for q in queries:
        want = expected(world, rows, q)
        assert await found(world, q, newest_first=newest) == (want[::-1] if newest else want), q
