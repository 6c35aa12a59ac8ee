"""The tenant's configuration as a ``nopass apply`` document (store/config_document.py): what
apply wrote reads back as the file's canonical document (``ConfigFile.document``), writing
that document back changes nothing, the in-memory store keeps the same document, a client
renamed by its client_id keeps its id and secret, and a bad document writes nothing."""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from nopass.config_file import ConfigFileError, parse_config
from nopass.core.keyring import Keyring, client_secret_matches
from nopass.store.config_document import read_document
from nopass.store.engine import create_engine
from nopass.store.memory import MemoryStore
from nopass.store.tables import ClientRow, ConfigStateRow, table
from nopass.store.unit_of_work import SqlUnitOfWork
from tests.support.config import tenant_config
from tests.support.harness import TEST_SECRET, prepare_database

ORIGIN = "https://login.acme.example"
NOW = datetime(2026, 12, 3, tzinfo=UTC)
MACHINE_SECRET = "machine-secret-0123456789abcdef"


def config() -> dict[str, Any]:
    file = tenant_config(ORIGIN)
    file["resource_servers"] = [
        {
            "identifier": "https://api.acme.example/",
            "name": "Acme API",
            "scopes": [{"value": "read:x"}],
        }
    ]
    file["clients"].append(
        {
            "name": "machine",
            "client_id": "machine-client-id",
            "app_type": "non_interactive",
            "client_secret": MACHINE_SECRET,
            "grant_types": ["client_credentials"],
        }
    )
    file["client_grants"] = [
        {"client_id": "machine", "audience": "https://api.acme.example/", "scope": ["read:x"]}
    ]
    return file


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    await prepare_database(database_url, config())
    engine = create_engine(database_url)
    try:
        yield engine
    finally:
        await engine.dispose()


async def tenant_id(engine: AsyncEngine) -> str:
    async with engine.connect() as conn:
        return str((await conn.execute(select(table(ClientRow).c.tenant_id))).scalars().first())


async def revision(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        return int(await conn.scalar(select(ConfigStateRow.revision)) or 0)


def canonical(document: dict[str, Any], stored: dict[str, Any]) -> dict[str, Any]:
    """``document``'s canonical form, with the ids the store generated filled in."""
    filled = copy.deepcopy(document)
    by_name = {c["name"]: c["client_id"] for c in stored["clients"]}
    for client in filled["clients"]:
        client["client_id"] = by_name[client["name"]]
    for i, connection in enumerate(filled["connections"]):
        connection["id"] = next(
            c["id"] for c in stored["connections"] if c["name"] == connection["name"]
        )
        filled["connections"][i] = connection
    for grant in filled["client_grants"]:
        grant["id"] = stored["client_grants"][0]["id"]
    return parse_config(filled).document()


async def test_applied_file_reads_back_as_its_canonical_document(engine: AsyncEngine) -> None:
    async with engine.connect() as conn:
        stored = await read_document(conn, await tenant_id(engine), lock=False)
    assert stored == canonical(config(), stored)
    assert all("client_secret" not in c for c in stored["clients"])
    assert stored["clients"][-1]["grant_types"] == ["client_credentials"]
    assert stored["client_grants"][0]["id"].startswith("cgr_")


async def test_writing_the_document_back_changes_nothing(engine: AsyncEngine) -> None:
    tenant, before = await tenant_id(engine), await revision(engine)
    async with SqlUnitOfWork(engine, Keyring([TEST_SECRET.encode()])) as uow:
        document = await uow.config.document(tenant)
        summary = await uow.config.replace(tenant, document, NOW)
        await uow.commit()
    assert await revision(engine) == before
    assert all("client_secret" not in c for c in summary["clients"])  # the stored one is kept
    async with engine.connect() as conn:
        assert await read_document(conn, tenant, lock=False) == document


async def test_a_client_renamed_by_client_id_keeps_its_id_and_secret(engine: AsyncEngine) -> None:
    tenant = await tenant_id(engine)
    async with SqlUnitOfWork(engine, Keyring([TEST_SECRET.encode()])) as uow:
        document = await uow.config.document(tenant)
        document["clients"][-1]["name"] = "machine renamed"
        await uow.config.replace(tenant, document, NOW)
        await uow.commit()
    async with engine.connect() as conn:
        rows = (await conn.execute(select(table(ClientRow)))).all()
    row = next(r for r in rows if r.client_id == "machine-client-id")
    assert row.name == "machine renamed" and client_secret_matches(MACHINE_SECRET, row.secret_hash)
    assert len(rows) == len(config()["clients"])


async def test_a_bad_document_writes_nothing(engine: AsyncEngine) -> None:
    tenant, before = await tenant_id(engine), await revision(engine)
    async with SqlUnitOfWork(engine, Keyring([TEST_SECRET.encode()])) as uow:
        document = await uow.config.document(tenant)
        original = copy.deepcopy(document)
        document["clients"][0]["callbacks"] = ["not a url"]
        document["connections"] = []
        with pytest.raises(ConfigFileError, match=r"clients\[0\]\.callbacks"):
            await uow.config.replace(tenant, document, NOW)
    assert await revision(engine) == before
    async with engine.connect() as conn:
        assert await read_document(conn, tenant, lock=False) == original


async def test_the_memory_store_keeps_the_same_document(engine: AsyncEngine) -> None:
    tenant = await tenant_id(engine)
    async with engine.connect() as conn:
        stored = await read_document(conn, tenant, lock=False)
    memory = MemoryStore()
    async with memory() as uow:
        summary = await uow.config.replace(tenant, stored, NOW)
        await uow.commit()
    async with memory() as uow:
        assert await uow.config.document(tenant) == stored
    # The document carries no secret: a confidential client new to the store gets one.
    generated = summary["clients"][-1].pop("client_secret")
    assert summary["clients"][-1] == {"name": "machine", "client_id": "machine-client-id"}
    assert client_secret_matches(generated, memory.tables.secrets[(tenant, "machine-client-id")])
