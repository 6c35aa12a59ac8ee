"""The in-memory store's own guards and its key store (its repositories' semantics are held
to the SQL ones by tests/integration/test_repository_contract.py)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from nopass.core.models import SigningKey
from nopass.core.ports import KeyStore, UnitOfWorkFactory
from nopass.store.memory import DuplicateKey, MemoryKeyStore, MemoryStore
from nopass.tokens.keys import generate_key

T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def two_keys() -> tuple[SigningKey, SigningKey]:
    return generate_key()[0], generate_key()[0]


def test_the_memory_store_implements_the_ports() -> None:
    """Checked by mypy: the factory's units of work provide every repository of the ports."""
    factory: UnitOfWorkFactory = MemoryStore()
    keys: KeyStore = MemoryKeyStore()
    assert callable(factory) and keys is not None


async def test_a_second_writer_in_the_same_task_fails_instead_of_waiting_forever() -> None:
    store = MemoryStore()
    async with store() as outer:
        await outer.failures.reset("t", "c", "a")  # holds the write lock
        with pytest.raises(RuntimeError, match="deadlock"):
            async with store() as inner:
                await inner.failures.reset("t", "c", "a")
        await outer.commit()
    async with store() as again:  # the lock was given back
        await again.failures.reset("t", "c", "a")


async def test_a_writer_waits_for_the_one_before_it_so_no_update_is_lost() -> None:
    store = MemoryStore()
    window = timedelta(minutes=15)

    async def count_one() -> None:
        async with store() as work:
            await work.failures.record_failure("t", "c", "a", window, T0)
            await work.commit()

    async with store() as first:
        await first.failures.record_failure("t", "c", "a", window, T0)
        second = asyncio.create_task(count_one())
        await asyncio.sleep(0)  # the second writer runs up to the write lock and waits
        assert not second.done()
        await first.commit()
    await second
    async with store() as work:
        assert await work.failures.current("t", "c", "a", window, T0) == (2, T0)


async def test_a_unit_of_work_is_used_only_while_open() -> None:
    work = MemoryStore()()
    with pytest.raises(RuntimeError, match="not open"):
        await work.users.get("t", "u")
    async with work:
        assert await work.users.get("t", "u") is None
    with pytest.raises(RuntimeError, match="not open"):
        await work.commit()


async def test_a_duplicate_row_is_refused_and_the_transaction_can_be_dropped() -> None:
    store = MemoryStore()
    async with store() as work:
        await work.users.record_login(
            "t", "c", "a", new_user_id="email|1", profile={}, ip=None, now=T0
        )
        with pytest.raises(DuplicateKey):  # another identity with a taken user_id
            await work.users.record_login(
                "t", "c", "b", new_user_id="email|1", profile={}, ip=None, now=T0
            )
    assert store.tables.users == {}


async def test_keys_are_made_on_first_need_and_rotated_ones_stay_published(
    two_keys: tuple[SigningKey, SigningKey],
) -> None:
    first, second = two_keys
    keys = MemoryKeyStore({"t": first})
    assert await keys.signing_key("t") is first
    assert await keys.rotate("t", second) == second.kid
    assert await keys.signing_key("t") is second
    assert [jwk["kid"] for jwk in await keys.jwks("t")] == [second.kid, first.kid]
    assert set(await keys.public_keys("t")) == {first.kid, second.kid}
    made = await keys.signing_key("other")  # a tenant without a key gets one
    assert made.kid not in (first.kid, second.kid) and await keys.signing_key("other") is made
