"""One contract for every store: the same repository behaviours on the in-memory unit of
work (``nopass.store.memory``) and on the SQL one on SQLite and PostgreSQL, so the fakes the
flow unit tests run on decide exactly as the database does.

Covered: a code's attempts (3, expiry, phantoms, consumed once), ``check``, ``void``,
``void_pending`` and ``latest``; users, blocked ones too; failure windows; refresh-token
rotation and family revocation; single-use authorization codes, login tickets and ``jti``s;
sessions and login transactions; tenant isolation; commit, rollback and savepoint visibility.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from nopass.config_file import parse_config
from nopass.core.keyring import Keyring
from nopass.core.log_query import parse_log_query
from nopass.core.lucene import Or
from nopass.core.models import (
    AuditEvent,
    AuthorizationCode,
    Challenge,
    LoginTicket,
    LoginTransaction,
    RefreshGrant,
    Session,
    User,
)
from nopass.core.ports import UnitOfWork, UserSort
from nopass.store.apply import apply_config
from nopass.store.engine import create_engine, reader
from nopass.store.memory import MemoryStore
from nopass.store.migrate import migrate_engine
from nopass.store.unit_of_work import SqlUnitOfWork
from tests.support.services import throwaway_database
from tests.support.tokens import login_config

T0 = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
WINDOW = timedelta(minutes=15)
KEYRING = Keyring([b"k" * 32])
RIGHT, WRONG = "a" * 64, "b" * 64  # code MACs


@dataclass(frozen=True)
class Identity:
    tenant: str
    connection: str


@dataclass(frozen=True)
class Backend:
    """A store under contract: units of work that write, ones that only read (on SQLite
    they do not wait for the write lock), and two tenants' email connections."""

    work: Callable[[], UnitOfWork]
    read: Callable[[], UnitOfWork]
    acme: Identity
    globex: Identity


@contextlib.asynccontextmanager
async def sql_backend(url: str) -> AsyncIterator[Backend]:
    engine = create_engine(url)
    try:
        await migrate_engine(engine)
        await apply_config(engine, parse_config(login_config("127.0.0.1:1")), now=T0)
        other = {
            "tenant": {"name": "globex", "domains": ["127.0.0.1:2"]},
            "connections": [{"name": "email", "strategy": "email"}],
        }
        await apply_config(engine, parse_config(other), now=T0)
        async with engine.connect() as conn:
            rows = await conn.execute(
                text(
                    "SELECT t.name, c.tenant_id, c.id FROM connections c"
                    " JOIN tenants t ON t.id = c.tenant_id WHERE c.name = 'email'"
                )
            )
            ids = {row.name: Identity(row.tenant_id, row.id) for row in rows}
        yield Backend(
            work=lambda: SqlUnitOfWork(engine, KEYRING),
            read=lambda: SqlUnitOfWork(reader(engine), KEYRING),
            acme=ids["acme"],
            globex=ids["globex"],
        )
    finally:
        await engine.dispose()


@pytest.fixture(params=["memory", "sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Backend]:
    if request.param == "memory":
        memory = MemoryStore()
        yield Backend(
            work=memory,
            read=memory,
            acme=Identity("tenant-acme", "con-acme"),
            globex=Identity("tenant-globex", "con-globex"),
        )
        return
    async with (
        throwaway_database(request.param, tmp_path / "nopass.db") as url,
        sql_backend(url) as backend,
    ):
        yield backend


def challenge(
    who: Identity, id_: str, *, at: datetime = T0, identifier: str = "a@example.com", **kw: object
) -> Challenge:
    values: dict[str, object] = {
        "id": id_,
        "tenant_id": who.tenant,
        "connection_id": who.connection,
        "client_id": "client",
        "identifier": identifier,
        "code_hmac": RIGHT,
        "key_id": KEYRING.current_id,
        "send": "code",
        "created_at": at,
        "expires_at": at + timedelta(minutes=3),
        **kw,
    }
    return Challenge(**values)  # type: ignore[arg-type]


async def add(store: Backend, *challenges: Challenge) -> None:
    async with store.work() as work:
        for item in challenges:
            await work.challenges.add(item)
        await work.commit()


def grant(id_: str, family: str = "family-1") -> RefreshGrant:
    return RefreshGrant(
        id=id_,
        family_id=family,
        client_id="client",
        user_id="email|1",
        scope="openid offline_access",
        audience=None,
        created_at=T0,
        expires_at=None,
        rotated_at=None,
        revoked_at=None,
    )


# ------------------------------------------------------------------------- one-time codes


async def test_a_right_guess_consumes_the_code_once(store: Backend) -> None:
    await add(store, challenge(store.acme, "c1"))
    async with store.work() as work:
        assert await work.challenges.attempt(store.acme.tenant, "c1", RIGHT, T0) is True
        assert await work.challenges.attempt(store.acme.tenant, "c1", RIGHT, T0) is None
        await work.commit()
    async with store.read() as work:
        stored = await work.challenges.get(store.acme.tenant, "c1")
    assert stored is not None and stored.attempts == 1 and stored.consumed_at == T0


async def test_three_wrong_guesses_exhaust_the_code(store: Backend) -> None:
    await add(store, challenge(store.acme, "c1"))
    async with store.work() as work:
        outcomes = [
            await work.challenges.attempt(store.acme.tenant, "c1", WRONG, T0) for _ in "123"
        ]
        outcomes.append(await work.challenges.attempt(store.acme.tenant, "c1", RIGHT, T0))
        await work.commit()
        stored = await work.challenges.get(store.acme.tenant, "c1")
    assert outcomes == [False, False, False, None]
    assert stored is not None and stored.attempts == 3 and stored.consumed_at is None


async def test_an_expired_code_takes_no_guess(store: Backend) -> None:
    await add(store, challenge(store.acme, "c1"))
    expiry = T0 + timedelta(minutes=3)
    async with store.work() as work:
        assert await work.challenges.attempt(store.acme.tenant, "c1", RIGHT, expiry) is None
        assert await work.challenges.check(store.acme.tenant, "c1", RIGHT, expiry) is None
        assert await work.challenges.attempt(
            store.acme.tenant, "c1", RIGHT, expiry - timedelta(seconds=1)
        )
        stored = await work.challenges.get(store.acme.tenant, "c1")
    assert stored is not None and stored.attempts == 1


async def test_a_phantom_never_matches_but_counts(store: Backend) -> None:
    await add(store, challenge(store.acme, "c1", phantom=True))
    async with store.work() as work:
        assert await work.challenges.check(store.acme.tenant, "c1", RIGHT, T0) is False
        assert await work.challenges.attempt(store.acme.tenant, "c1", RIGHT, T0) is False
        stored = await work.challenges.get(store.acme.tenant, "c1")
    assert stored is not None and stored.phantom and stored.attempts == 2


async def test_check_counts_a_wrong_guess_and_consumes_nothing(store: Backend) -> None:
    await add(store, challenge(store.acme, "c1"))
    async with store.work() as work:
        assert await work.challenges.check(store.acme.tenant, "c1", WRONG, T0) is False
        assert await work.challenges.check(store.acme.tenant, "c1", RIGHT, T0) is True
        assert await work.challenges.check(store.acme.tenant, "c1", RIGHT, T0) is True
        stored = await work.challenges.get(store.acme.tenant, "c1")
        assert stored is not None and stored.attempts == 1 and stored.consumed_at is None
        assert await work.challenges.attempt(store.acme.tenant, "c1", RIGHT, T0) is True


async def test_a_new_start_voids_the_pending_codes_and_latest_prefers_an_open_one(
    store: Backend,
) -> None:
    later = T0 + timedelta(seconds=10)
    await add(store, challenge(store.acme, "c1"), challenge(store.acme, "c2", at=later))
    tenant, connection = store.acme.tenant, store.acme.connection
    async with store.work() as work:
        assert await work.challenges.attempt(tenant, "c2", RIGHT, later) is True  # consumed
        assert await work.challenges.void_pending(tenant, connection, "a@example.com", later) == 1
        assert await work.challenges.void_pending(tenant, connection, "a@example.com", later) == 0
        latest = await work.challenges.latest(tenant, connection, "a@example.com")
        assert latest is not None and latest.id == "c2"  # the newest, none being open
        await work.challenges.add(challenge(store.acme, "c3", at=T0 - timedelta(seconds=5)))
        latest = await work.challenges.latest(tenant, connection, "a@example.com")
        assert latest is not None and latest.id == "c3"  # open sorts before newer
        await work.challenges.void(tenant, "c3", later)
        assert await work.challenges.attempt(tenant, "c3", RIGHT, later) is None
        voided = await work.challenges.get(tenant, "c1")
        assert voided is not None and voided.voided_at == later
        assert await work.challenges.latest(tenant, connection, "b@example.com") is None


async def test_concurrent_right_guesses_consume_the_code_once(store: Backend) -> None:
    """Each guess in a unit of work of its own, all at once: the row lock (PostgreSQL), the
    write lock (SQLite) or the store's lock (memory) lets exactly one consume the code."""
    await add(store, challenge(store.acme, "c1"))

    async def guess() -> bool | None:
        async with store.work() as work:
            outcome = await work.challenges.attempt(store.acme.tenant, "c1", RIGHT, T0)
            await work.commit()
        return outcome

    outcomes = await asyncio.gather(*(guess() for _ in range(4)))
    assert sorted(outcomes, key=str) == [None, None, None, True]


# ------------------------------------------------------------------------------- users


async def test_a_login_creates_the_user_then_counts_it(store: Backend) -> None:
    tenant, connection = store.acme.tenant, store.acme.connection
    async with store.work() as work:
        assert not await work.users.exists(tenant, connection, "a@example.com")
        counted = await work.users.record_login(
            tenant,
            connection,
            "a@example.com",
            new_user_id="email|1",
            profile={"email": "a@example.com"},
            ip="192.0.2.1",
            now=T0,
        )
        counted_again = await work.users.record_login(
            tenant,
            connection,
            "a@example.com",
            new_user_id="email|2",
            profile={"email": "other"},
            ip="192.0.2.2",
            now=T0 + timedelta(minutes=1),
        )
        assert counted is not None and counted_again is not None
        (first, created), (again, created_again) = counted, counted_again
        await work.commit()
    assert (created, created_again) == (True, False)
    assert (first.user_id, first.logins_count, first.last_ip) == ("email|1", 1, "192.0.2.1")
    assert (again.user_id, again.logins_count, again.last_ip) == ("email|1", 2, "192.0.2.2")
    assert again.profile == {"email": "a@example.com"} and again.created_at == T0
    assert again.last_login == again.updated_at == T0 + timedelta(minutes=1)
    async with store.read() as work:
        assert await work.users.exists(tenant, connection, "a@example.com")
        assert await work.users.get(tenant, "email|1") == again
        assert await work.users.get(tenant, "email|2") is None


# ---------------------------------------------------------------------- audit log


async def test_the_audit_log_reads_back_by_log_id_page_user_and_checkpoint(
    store: Backend,
) -> None:
    acme, globex = store.acme.tenant, store.globex.tenant
    async with store.work() as work:
        for n in range(5):
            user = "email|ann" if n % 2 == 0 else "email|bob"
            event = AuditEvent(acme, "s", user_id=user, ip="192.0.2.1", details={"n": n})
            await work.audit.add(event, T0 + timedelta(seconds=n))
        await work.audit.add(AuditEvent(globex, "s", user_id="email|ann"), T0)
        await work.commit()
    async with store.read() as work:
        newest, total = await work.audit.page(
            acme, user_id=None, newest_first=True, offset=0, limit=3
        )
        assert total == 5 and [e.event.details["n"] for e in newest] == [4, 3, 2]
        ids = [e.log_id for e in newest]
        assert ids == sorted(ids, reverse=True) and all(len(i) == 20 for i in ids)
        assert newest[0].date == T0 + timedelta(seconds=4)
        anns, ann_total = await work.audit.page(
            acme, user_id="email|ann", newest_first=False, offset=1, limit=5
        )
        assert ann_total == 3 and [e.event.details["n"] for e in anns] == [2, 4]
        assert await work.audit.get(acme, ids[0]) == newest[0]
        assert await work.audit.get(globex, ids[0]) is None  # another tenant's id
        assert await work.audit.get(acme, "not-a-log-id") is None
        first_two = await work.audit.after(acme, None, 2)
        assert [e.event.details["n"] for e in first_two] == [0, 1]
        rest = await work.audit.after(acme, first_two[-1].log_id, 10)
        assert [e.event.details["n"] for e in rest] == [2, 3, 4]
        assert await work.audit.after(acme, rest[-1].log_id, 10) == []
        [theirs] = await work.audit.after(globex, None, 10)
        assert theirs.event.tenant_id == globex


async def test_a_blocked_user_is_found_but_neither_counted_nor_recreated(store: Backend) -> None:
    tenant, connection = store.acme.tenant, store.acme.connection
    async with store.work() as work:
        assert await work.users.find(tenant, connection, "a@example.com") is None
        assert await work.users.set_blocked(tenant, "email|1", True, now=T0) is None
        counted = await work.users.record_login(
            tenant, connection, "a@example.com", new_user_id="email|1", profile={}, ip=None, now=T0
        )
        assert counted is not None
        later = T0 + timedelta(minutes=1)
        blocked = await work.users.set_blocked(tenant, "email|1", True, now=later)
        await work.commit()
    assert blocked is not None and blocked.blocked and blocked.updated_at == later
    assert blocked.logins_count == 1 and blocked.last_login == T0
    async with store.work() as work:
        again = T0 + timedelta(minutes=2)
        assert (
            await work.users.record_login(
                tenant,
                connection,
                "a@example.com",
                new_user_id="email|2",
                profile={},
                ip="192.0.2.2",
                now=again,
            )
            is None
        )
        assert (
            await work.users.count_login(tenant, connection, "a@example.com", ip=None, now=again)
            is None
        )
        assert await work.users.find(tenant, connection, "a@example.com") == blocked
        # Another tenant cannot block or unblock it.
        assert (
            await work.users.set_blocked(store.globex.tenant, "email|1", False, now=again) is None
        )
        await work.commit()
    async with store.read() as work:
        assert await work.users.get(tenant, "email|1") == blocked  # nothing was written
        assert await work.users.get(tenant, "email|2") is None
        assert (
            await work.users.find(store.globex.tenant, store.globex.connection, "a@example.com")
            is None
        )
    async with store.work() as work:
        unblocked = await work.users.set_blocked(tenant, "email|1", False, now=again)
        recounted = await work.users.count_login(
            tenant, connection, "a@example.com", ip=None, now=again
        )
        await work.commit()
    assert unblocked is not None and not unblocked.blocked
    assert recounted is not None and recounted.logins_count == 2


async def test_the_audit_log_pages_a_prepared_search(store: Backend) -> None:
    acme, globex = store.acme.tenant, store.globex.tenant
    async with store.work() as work:
        for n, type_ in enumerate(["s", "f", "seacft", "sapi"]):
            event = AuditEvent(acme, type_, user_id="email|ann", details={"n": n})
            await work.audit.add(event, T0 + timedelta(days=n))
        await work.audit.add(AuditEvent(globex, "s", user_id="email|ann"), T0)
        await work.commit()
    query = parse_log_query("type:s* AND NOT date:[* TO 1970-01-01]")
    async with store.read() as work:
        found, total = await work.audit.page(
            acme, user_id=None, newest_first=True, offset=0, limit=10, query=query
        )
        assert total == 3 and [e.event.type for e in found] == ["sapi", "seacft", "s"]
        ann, ann_total = await work.audit.page(
            acme, user_id="email|ann", newest_first=False, offset=1, limit=1,
            query=parse_log_query("NOT type:f"),
        )  # fmt: skip
        assert ann_total == 3 and [e.event.type for e in ann] == ["seacft"]
        none, none_total = await work.audit.page(
            acme, user_id=None, newest_first=True, offset=0, limit=10, query=Or(())
        )
        assert (none, none_total) == ([], 0)


# ---------------------------------------------------------------------- failure windows


async def test_failures_count_in_a_window_that_starts_over_when_stale(store: Backend) -> None:
    tenant, connection = store.acme.tenant, store.acme.connection
    async with store.work() as work:
        assert await work.failures.current(tenant, connection, "a", WINDOW, T0) == (0, None)
        counts = [
            await work.failures.record_failure(
                tenant, connection, "a", WINDOW, T0 + timedelta(minutes=n)
            )
            for n in range(3)
        ]
        assert counts == [1, 2, 3]
        assert await work.failures.current(
            tenant, connection, "a", WINDOW, T0 + WINDOW - timedelta(seconds=1)
        ) == (3, T0)
        assert await work.failures.current(tenant, connection, "a", WINDOW, T0 + WINDOW) == (
            0,
            None,
        )
        stale = T0 + WINDOW
        assert await work.failures.record_failure(tenant, connection, "a", WINDOW, stale) == 1
        assert await work.failures.current(tenant, connection, "a", WINDOW, stale) == (1, stale)
        await work.commit()
    async with store.work() as work:
        await work.failures.reset(tenant, connection, "a")
        await work.commit()
    async with store.read() as work:
        assert await work.failures.current(tenant, connection, "a", WINDOW, T0 + WINDOW) == (
            0,
            None,
        )


# ----------------------------------------------------------------------- refresh tokens


async def test_a_refresh_token_rotates_once_and_its_family_is_revoked(store: Backend) -> None:
    tenant = store.acme.tenant
    later = T0 + timedelta(minutes=1)
    async with store.work() as work:
        await work.refresh_tokens.add(tenant, grant("g1"), "hash-1")
        await work.refresh_tokens.add(tenant, grant("g2"), "hash-2")
        await work.refresh_tokens.add(tenant, grant("g3", family="family-2"), "hash-3")
        await work.commit()
    async with store.work() as work:
        assert await work.refresh_tokens.mark_rotated(tenant, "g1", later) is True
        assert await work.refresh_tokens.mark_rotated(tenant, "g1", later) is False
        await work.commit()
    async with store.work() as work:
        found = await work.refresh_tokens.find(tenant, "hash-1")
        assert found is not None and found.rotated_at == later and found.revoked_at is None
        assert await work.refresh_tokens.revoke_family(tenant, "family-1", later) == 2
        assert await work.refresh_tokens.revoke_family(tenant, "family-1", later) == 0
        assert await work.refresh_tokens.mark_rotated(tenant, "g2", later) is False
        await work.commit()
    async with store.read() as work:
        revoked = await work.refresh_tokens.find(tenant, "hash-2")
        untouched = await work.refresh_tokens.find(tenant, "hash-3")
        assert await work.refresh_tokens.find(tenant, "hash-9") is None
    assert revoked is not None and revoked.revoked_at == later and revoked.rotated_at is None
    assert untouched == grant("g3", family="family-2")


async def test_concurrent_rotations_of_one_token_rotate_it_once(store: Backend) -> None:
    tenant = store.acme.tenant
    async with store.work() as work:
        await work.refresh_tokens.add(tenant, grant("g1"), "hash-1")
        await work.commit()

    async def rotate() -> bool:
        async with store.work() as work:
            rotated = await work.refresh_tokens.mark_rotated(tenant, "g1", T0)
            await work.commit()
        return rotated

    assert sorted(await asyncio.gather(*(rotate() for _ in range(3)))) == [False, False, True]


# ------------------------------------------------------- codes, tickets, jtis, sessions


def auth_code(id_: str) -> AuthorizationCode:
    return AuthorizationCode(
        id=id_,
        client_id="client",
        user_id="email|1",
        redirect_uri="https://app/cb",
        scope="openid",
        audience=None,
        nonce="n",
        code_challenge=None,
        code_challenge_method=None,
        auth_time=T0,
        created_at=T0,
        expires_at=T0 + timedelta(seconds=60),
    )


async def test_an_authorization_code_is_redeemed_once(store: Backend) -> None:
    tenant = store.acme.tenant
    async with store.work() as work:
        await work.authorization_codes.add(tenant, auth_code("a1"), "code-hash")
        first, won = await work.authorization_codes.redeem(tenant, "code-hash", T0)
        await work.authorization_codes.remember_refresh_family(tenant, "a1", "family-1")
        again, won_again = await work.authorization_codes.redeem(tenant, "code-hash", T0)
        assert await work.authorization_codes.redeem(tenant, "other", T0) == (None, False)
        await work.commit()
    assert won and first == replace(auth_code("a1"), used_at=T0)
    assert not won_again and again == replace(first, refresh_family_id="family-1")


async def test_a_login_ticket_is_consumed_once_by_its_client_before_it_expires(
    store: Backend,
) -> None:
    tenant = store.acme.tenant
    ticket = LoginTicket(
        id="t1",
        co_id="co",
        co_verifier_hash="v",
        client_id="client",
        user_id="email|1",
        realm="email",
        expires_at=T0 + timedelta(minutes=5),
    )
    async with store.work() as work:
        await work.tickets.add(tenant, ticket, "ticket-hash", T0)
        assert await work.tickets.consume(tenant, "ticket-hash", "other", T0) is None
        assert (
            await work.tickets.consume(tenant, "ticket-hash", "client", ticket.expires_at) is None
        )
        assert await work.tickets.consume(tenant, "ticket-hash", "client", T0) == ticket
        assert await work.tickets.consume(tenant, "ticket-hash", "client", T0) is None


async def test_a_client_assertion_jti_is_claimed_once(store: Backend) -> None:
    tenant, until = store.acme.tenant, T0 + timedelta(minutes=1)
    async with store.work() as work:
        assert await work.assertions.claim_jti(tenant, "client", "jti-1", until, T0) is True
        assert await work.assertions.claim_jti(tenant, "client", "jti-1", until, T0) is False
        assert await work.assertions.claim_jti(tenant, "other", "jti-1", until, T0) is True
        await work.commit()


async def test_sessions_and_login_transactions_are_found_while_alive(store: Backend) -> None:
    tenant = store.acme.tenant
    session = Session(id="s1", user_id="email|1", created_at=T0, expires_at=T0 + timedelta(hours=1))
    tx = LoginTransaction(
        id="x1",
        client_id="client",
        params={"state": "s"},
        created_at=T0,
        expires_at=T0 + timedelta(minutes=10),
        connection="email",
        identifier="ignored",
    )
    async with store.work() as work:
        await work.sessions.add(tenant, session, "session-hash")
        await work.transactions.add(tenant, tx, "tx-hash")
        assert await work.sessions.find(tenant, "session-hash", T0) == session
        assert await work.sessions.find(tenant, "session-hash", session.expires_at) is None
        await work.sessions.revoke(tenant, "session-hash", T0)
        assert await work.sessions.find(tenant, "session-hash", T0) is None
        stored = await work.transactions.find(tenant, "tx-hash", T0)
        assert stored == replace(tx, identifier=None)  # only the INSERT's columns are kept
        await work.transactions.update(
            tenant, "x1", {"identifier": "a@example.com", "send": "code"}
        )
        updated = await work.transactions.find(tenant, "tx-hash", T0)
        assert updated is not None and (updated.identifier, updated.send) == (
            "a@example.com",
            "code",
        )
        with pytest.raises(ValueError, match="not updatable"):
            await work.transactions.update(tenant, "x1", {"client_id": "evil"})
        await work.transactions.update(tenant, "x1", {"completed_at": T0})
        assert await work.transactions.find(tenant, "tx-hash", T0) is None


# --------------------------------------------------------------------- tenant isolation


async def test_a_repository_never_reads_or_changes_another_tenants_rows(store: Backend) -> None:
    acme, globex = store.acme, store.globex
    async with store.work() as work:
        await work.challenges.add(challenge(acme, "c1"))
        await work.users.record_login(
            acme.tenant,
            acme.connection,
            "a@example.com",
            new_user_id="email|1",
            profile={},
            ip=None,
            now=T0,
        )
        await work.failures.record_failure(
            acme.tenant, acme.connection, "a@example.com", WINDOW, T0
        )
        await work.refresh_tokens.add(acme.tenant, grant("g1"), "hash-1")
        await work.authorization_codes.add(acme.tenant, auth_code("a1"), "code-hash")
        session = Session(
            id="s1", user_id="email|1", created_at=T0, expires_at=T0 + timedelta(hours=1)
        )
        await work.sessions.add(acme.tenant, session, "session-hash")
        await work.commit()
    # Another tenant asking about the same ids and hashes finds nothing and changes nothing
    # (its own connection and, where the SQL schema allows one, the first tenant's).
    for connection in (globex.connection, acme.connection):
        async with store.work() as work:
            t = globex.tenant
            assert await work.challenges.get(t, "c1") is None
            assert await work.challenges.latest(t, connection, "a@example.com") is None
            assert await work.challenges.attempt(t, "c1", RIGHT, T0) is None
            assert await work.challenges.check(t, "c1", RIGHT, T0) is None
            assert await work.challenges.void_pending(t, connection, "a@example.com", T0) == 0
            await work.challenges.void(t, "c1", T0)
            assert not await work.users.exists(t, connection, "a@example.com")
            assert await work.users.get(t, "email|1") is None
            assert await work.failures.current(t, connection, "a@example.com", WINDOW, T0) == (
                0,
                None,
            )
            await work.failures.reset(t, connection, "a@example.com")
            assert await work.refresh_tokens.find(t, "hash-1") is None
            assert await work.refresh_tokens.mark_rotated(t, "g1", T0) is False
            assert await work.refresh_tokens.revoke_family(t, "family-1", T0) == 0
            assert await work.authorization_codes.redeem(t, "code-hash", T0) == (None, False)
            assert await work.sessions.find(t, "session-hash", T0) is None
            await work.sessions.revoke(t, "session-hash", T0)
            await work.commit()
    async with store.read() as work:
        stored = await work.challenges.get(acme.tenant, "c1")
        assert stored is not None and stored.attempts == 0 and stored.voided_at is None
        assert await work.failures.current(
            acme.tenant, acme.connection, "a@example.com", WINDOW, T0
        ) == (1, T0)
        found = await work.refresh_tokens.find(acme.tenant, "hash-1")
        assert found is not None and found.rotated_at is None and found.revoked_at is None
        assert await work.sessions.find(acme.tenant, "session-hash", T0) == session
    async with store.work() as work:
        assert (await work.authorization_codes.redeem(acme.tenant, "code-hash", T0))[1] is True


# ------------------------------------------------------------- transactions and savepoints


async def test_writes_are_seen_by_others_only_once_committed(store: Backend) -> None:
    tenant = store.acme.tenant
    async with store.work() as work:
        await work.challenges.add(challenge(store.acme, "c1"))
        assert await work.challenges.get(tenant, "c1") is not None  # its own writes
        async with store.read() as other:
            assert await other.challenges.get(tenant, "c1") is None
        await work.commit()
        async with store.read() as other:
            assert await other.challenges.get(tenant, "c1") is not None


async def test_a_unit_of_work_left_without_commit_changes_nothing(store: Backend) -> None:
    tenant = store.acme.tenant
    await add(store, challenge(store.acme, "c1"))
    async with store.work() as work:
        assert await work.challenges.attempt(tenant, "c1", WRONG, T0) is False
        await work.challenges.add(challenge(store.acme, "c2"))
    with pytest.raises(LookupError):
        async with store.work() as work:
            await work.challenges.void(tenant, "c1", T0)
            raise LookupError
    async with store.read() as work:
        stored = await work.challenges.get(tenant, "c1")
        assert await work.challenges.get(tenant, "c2") is None
    assert stored is not None and stored.attempts == 0 and stored.voided_at is None


async def test_a_savepoint_keeps_or_undoes_its_writes(store: Backend) -> None:
    tenant = store.acme.tenant
    async with store.work() as work:
        await work.challenges.add(challenge(store.acme, "before"))
        for name, keep in (("kept", True), ("undone", False)):
            async with work.savepoint(keep=keep):
                await work.challenges.add(challenge(store.acme, name))
        with pytest.raises(LookupError):
            async with work.savepoint(keep=True):
                await work.challenges.add(challenge(store.acme, "failed"))
                raise LookupError
        await work.challenges.add(challenge(store.acme, "after"))
        await work.commit()
    async with store.read() as work:
        names = ("before", "kept", "undone", "failed", "after")
        found = {n for n in names if await work.challenges.get(tenant, n) is not None}
    assert found == {"before", "kept", "after"}


# ------------------------------------------------------------- users of the Management API


def admin_user(who: Identity, n: int, *, at: datetime = T0, name: str | None = None) -> User:
    identifier = f"user{n}@example.com"
    profile: dict[str, object] = {"email": identifier, "email_verified": False}
    if name is not None:
        profile["name"] = name
    return User(
        tenant_id=who.tenant,
        user_id=f"email|{n:024x}",
        connection_id=who.connection,
        identifier=identifier,
        profile=profile,
        created_at=at,
        updated_at=at,
        app_metadata={"plan": "gold"},
    )


async def test_added_users_are_unique_by_id_and_identity(store: Backend) -> None:
    ada = admin_user(store.acme, 1)
    async with store.work() as work:
        assert await work.users.add(ada) is True
        assert await work.users.add(replace(ada, identifier="other@example.com")) is False
        assert await work.users.add(replace(ada, user_id="email|other")) is False
        # the other tenant may hold the same ids
        assert await work.users.add(admin_user(store.globex, 1)) is True
        await work.commit()
    async with store.read() as read:
        assert await read.users.get(store.acme.tenant, ada.user_id) == ada
        assert await read.users.count(store.acme.tenant) == 1
        assert await read.users.count(store.globex.tenant) == 1


async def test_replace_changes_the_user_unless_its_identity_is_taken(store: Backend) -> None:
    ada, grace = admin_user(store.acme, 1), admin_user(store.acme, 2)
    async with store.work() as work:
        await work.users.add(ada)
        await work.users.add(grace)
        later = T0 + timedelta(hours=1)
        changed = replace(
            ada,
            identifier="new@example.com",
            profile={"email": "new@example.com"},
            updated_at=later,
            user_metadata={"a": 1},
            blocked=True,
        )
        assert await work.users.replace(changed) is True
        clash = replace(grace, identifier="new@example.com")
        assert await work.users.replace(clash) is False
        gone = admin_user(store.acme, 9)
        assert await work.users.replace(gone) is False
        assert await work.users.replace(replace(ada, tenant_id=store.globex.tenant)) is False
        await work.commit()
    async with store.read() as read:
        assert await read.users.get(store.acme.tenant, ada.user_id) == changed
        assert await read.users.get(store.acme.tenant, grace.user_id) == grace


async def test_delete_returns_the_user_once_and_only_in_its_tenant(store: Backend) -> None:
    ada = admin_user(store.acme, 1)
    async with store.work() as work:
        await work.users.add(ada)
        assert await work.users.delete(store.globex.tenant, ada.user_id) is None
        assert await work.users.delete(store.acme.tenant, ada.user_id) == ada
        assert await work.users.delete(store.acme.tenant, ada.user_id) is None
        await work.commit()
    async with store.read() as read:
        assert await read.users.get(store.acme.tenant, ada.user_id) is None


async def test_pages_of_users_in_order(store: Backend) -> None:
    names = ["m", None, "c", "x", "c"]
    users = [
        admin_user(store.acme, n, at=T0 + timedelta(seconds=n % 3), name=name)
        for n, name in enumerate(names)
    ]
    async with store.work() as work:
        for user in users:
            await work.users.add(user)
        await work.users.add(admin_user(store.globex, 7))
        await work.commit()

    async def ids(**sort: Any) -> list[str]:
        async with store.read() as read:
            found = await read.users.page(
                store.acme.tenant, offset=0, limit=10, sort=UserSort(**sort)
            )
        return [u.user_id for u in found]

    by_created = sorted(users, key=lambda u: (u.created_at, u.user_id))
    assert await ids() == [u.user_id for u in by_created]
    # absent values last in both directions; ties by user_id, in the sort's direction
    assert await ids(field="name") == [users[i].user_id for i in (2, 4, 0, 3, 1)]
    assert await ids(field="name", descending=True) == [users[i].user_id for i in (3, 0, 4, 2, 1)]
    async with store.read() as read:
        page = await read.users.page(store.acme.tenant, offset=2, limit=2, sort=UserSort())
        assert [u.user_id for u in page] == [u.user_id for u in by_created[2:4]]
        assert await read.users.count(store.acme.tenant) == 5
        found = await read.users.by_identifier(store.acme.tenant, "user2@example.com")
        assert [u.user_id for u in found] == [users[2].user_id]
        assert await read.users.by_identifier(store.globex.tenant, "user2@example.com") == []


async def test_a_users_sessions_and_refresh_tokens_are_deleted_together(store: Backend) -> None:
    session = Session(id="s1", user_id="email|1", created_at=T0, expires_at=T0 + timedelta(1))
    async with store.work() as work:
        await work.sessions.add(store.acme.tenant, session, "hash-s1")
        await work.sessions.add(
            store.acme.tenant, replace(session, id="s2", user_id="email|2"), "hash-s2"
        )
        await work.refresh_tokens.add(store.acme.tenant, grant("r1"), "hash-r1")
        await work.refresh_tokens.add(store.acme.tenant, grant("r2"), "hash-r2")
        await work.commit()
    async with store.work() as work:
        assert await work.sessions.delete_for_user(store.globex.tenant, "email|1") == 0
        assert await work.sessions.delete_for_user(store.acme.tenant, "email|1") == 1
        assert await work.refresh_tokens.delete_for_user(store.acme.tenant, "email|1") == 2
        await work.commit()
    async with store.read() as read:
        assert await read.sessions.find(store.acme.tenant, "hash-s1", T0) is None
        assert await read.sessions.find(store.acme.tenant, "hash-s2", T0) is not None
        assert await read.refresh_tokens.find(store.acme.tenant, "hash-r1") is None


async def test_a_users_open_sessions_and_usable_refresh_tokens_by_checkpoint(
    store: Backend,
) -> None:
    tenant = store.acme.tenant
    later = T0 + timedelta(days=1)
    async with store.work() as work:
        for n in range(3):
            session = Session(id=f"s{n}", user_id="email|1", created_at=T0, expires_at=later)
            await work.sessions.add(tenant, session, f"hash-s{n}")
            await work.refresh_tokens.add(tenant, grant(f"r{n}", family=f"f{n}"), f"hash-r{n}")
        other = Session(id="s9", user_id="email|2", created_at=T0, expires_at=later)
        await work.sessions.add(tenant, other, "hash-s9")
        await work.sessions.revoke(tenant, "hash-s1", T0)
        await work.refresh_tokens.revoke_family(tenant, "f1", T0)
        await work.commit()
    async with store.read() as read:
        sessions = await read.sessions.list_for_user(tenant, "email|1", after=None, limit=5, now=T0)
        assert [s.id for s in sessions] == ["s0", "s2"]
        after = await read.sessions.list_for_user(tenant, "email|1", after="s0", limit=5, now=T0)
        assert [s.id for s in after] == ["s2"]
        expired = await read.sessions.list_for_user(
            tenant, "email|1", after=None, limit=5, now=later
        )
        assert expired == []
        tokens = await read.refresh_tokens.list_for_user(
            tenant, "email|1", after=None, limit=1, now=T0
        )
        assert [t.id for t in tokens] == ["r0"]
        rest = await read.refresh_tokens.list_for_user(
            tenant, "email|1", after="r0", limit=5, now=T0
        )
        assert [t.id for t in rest] == ["r2"]
        assert (
            await read.sessions.list_for_user(
                store.globex.tenant, "email|1", after=None, limit=5, now=T0
            )
            == []
        )


async def test_a_session_and_a_refresh_token_by_id_while_usable_then_deleted(
    store: Backend,
) -> None:
    tenant, other = store.acme.tenant, store.globex.tenant
    later = T0 + timedelta(days=1)
    async with store.work() as work:
        for n in range(2):
            session = Session(id=f"s{n}", user_id="email|1", created_at=T0, expires_at=later)
            await work.sessions.add(tenant, session, f"hash-s{n}")
            await work.refresh_tokens.add(tenant, grant(f"r{n}", family=f"f{n}"), f"hash-r{n}")
        await work.sessions.revoke(tenant, "hash-s1", T0)
        await work.refresh_tokens.revoke_family(tenant, "f1", T0)
        await work.commit()
    async with store.read() as read:
        found = await read.sessions.get(tenant, "s0", T0)
        assert found is not None and found.user_id == "email|1"
        assert await read.sessions.get(tenant, "s0", later) is None  # expired
        assert await read.sessions.get(tenant, "s1", T0) is None  # revoked
        assert await read.sessions.get(other, "s0", T0) is None
        token = await read.refresh_tokens.get(tenant, "r0", T0)
        assert token is not None and token.client_id == "client"
        assert await read.refresh_tokens.get(tenant, "r1", T0) is None  # revoked
        assert await read.refresh_tokens.get(other, "r0", T0) is None
    async with store.work() as work:
        assert not await work.sessions.delete(other, "s0")
        assert not await work.refresh_tokens.delete(other, "r0")
        assert await work.sessions.delete(tenant, "s0")
        assert await work.refresh_tokens.delete(tenant, "r0")
        assert not await work.sessions.delete(tenant, "s0")
        await work.commit()
    async with store.read() as read:
        assert await read.sessions.get(tenant, "s0", T0) is None
        assert await read.refresh_tokens.get(tenant, "r0", T0) is None
        assert await read.sessions.find(tenant, "hash-s1", T0) is None
