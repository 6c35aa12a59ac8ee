"""Users and per-identity failure windows in SQL, on SQLite and PostgreSQL: a login creates the
user or counts it in one statement; a reset deletes a window that exists, even one counted
after the transaction looked and found none."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text

from nopass.core.keyring import Keyring
from nopass.store.engine import create_engine
from nopass.store.unit_of_work import SqlUnitOfWork
from tests.support.harness import prepare_database
from tests.support.tokens import login_config

T0 = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
WINDOW = timedelta(minutes=15)


@pytest.fixture
async def uow(database_url: str) -> AsyncIterator[Callable[[], SqlUnitOfWork]]:
    await prepare_database(database_url, login_config("127.0.0.1:1"))
    engine = create_engine(database_url)
    try:
        yield lambda: SqlUnitOfWork(engine, Keyring([b"k" * 32]))
    finally:
        await engine.dispose()


async def ids(work: SqlUnitOfWork) -> tuple[str, str]:
    row = (await work.connection.execute(text("SELECT id, tenant_id FROM connections"))).first()
    assert row is not None
    return row.tenant_id, row.id


async def test_a_login_creates_the_user_then_counts_its_logins(
    uow: Callable[[], SqlUnitOfWork],
) -> None:
    async with uow() as work:
        tenant, connection = await ids(work)
        logins = [
            await work.users.record_login(
                tenant,
                connection,
                "a@example.com",
                new_user_id=f"email|{n}",
                profile={"x": n},
                ip=f"192.0.2.{n}",
                now=T0 + timedelta(minutes=n - 1),
            )
            for n in (1, 2)
        ]
        assert None not in logins
        [(first, created), (again, created_again)] = [login for login in logins if login]
        await work.commit()
    assert (created, created_again) == (True, False)
    assert (first.user_id, first.logins_count, first.last_ip) == ("email|1", 1, "192.0.2.1")
    assert (again.user_id, again.logins_count, again.last_ip) == ("email|1", 2, "192.0.2.2")
    assert again.profile == {"x": 1} and again.created_at == T0
    assert again.last_login == T0 + timedelta(minutes=1)


async def test_count_login_counts_an_existing_user_and_never_creates_one(
    uow: Callable[[], SqlUnitOfWork],
) -> None:
    ip, later = "192.0.2.9", T0 + timedelta(minutes=5)
    async with uow() as work:
        tenant, connection = await ids(work)
        users = work.users
        assert await users.count_login(tenant, connection, "new@example.com", ip=ip, now=T0) is None
        await users.record_login(
            tenant,
            connection,
            "old@example.com",
            new_user_id="email|1",
            profile={},
            ip=None,
            now=T0,
        )
        counted = await users.count_login(tenant, connection, "old@example.com", ip=ip, now=later)
        elsewhere = await users.count_login(
            "other", connection, "old@example.com", ip=ip, now=later
        )
        await work.commit()
    assert counted is not None and elsewhere is None
    assert (counted.user_id, counted.logins_count, counted.last_ip) == ("email|1", 2, ip)
    assert counted.last_login == later
    async with uow() as work:
        assert not await work.users.exists(tenant, connection, "new@example.com")


async def test_a_reset_deletes_a_window_counted_after_a_look_that_found_none(
    uow: Callable[[], SqlUnitOfWork],
) -> None:
    async with uow() as work:
        tenant, connection = await ids(work)
        assert await work.failures.current(tenant, connection, "b", WINDOW, T0) == (0, None)
        await work.failures.record_failure(tenant, connection, "b", WINDOW, T0)
        await work.failures.reset(tenant, connection, "b")
        await work.commit()
    async with uow() as work:
        assert await work.failures.current(tenant, connection, "b", WINDOW, T0) == (0, None)
        await work.failures.record_failure(tenant, connection, "b", WINDOW, T0)
        await work.commit()
    async with uow() as work:
        assert await work.failures.current(tenant, connection, "b", WINDOW, T0) == (1, T0)
        await work.failures.reset(tenant, connection, "b")
        await work.commit()
    async with uow() as work:
        assert await work.failures.current(tenant, connection, "b", WINDOW, T0) == (0, None)


async def test_a_savepoint_keeps_or_undoes_its_work(uow: Callable[[], SqlUnitOfWork]) -> None:
    """The start flow's savepoint: kept, undone (a phantom start), undone by an error; the
    transaction around it goes on each time."""
    names = ("kept", "undone", "failed", "after")
    async with uow() as work:
        tenant, connection = await ids(work)

        async def login(name: str) -> None:
            await work.users.record_login(
                tenant, connection, name, new_user_id=f"email|{name}", profile={}, ip=None, now=T0
            )

        for name, keep in (("kept", True), ("undone", False)):
            async with work.savepoint(keep=keep):
                await login(name)
        with pytest.raises(LookupError):
            async with work.savepoint(keep=True):
                await login("failed")
                raise LookupError
        await login("after")
        await work.commit()
    async with uow() as work:
        found = {n for n in names if await work.users.get(tenant, f"email|{n}") is not None}
    assert found == {"kept", "after"}
