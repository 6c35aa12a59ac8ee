"""A tenant's stored configuration as a ``nopass apply`` document, and writing one back.

The Management API's configuration endpoints (clients, connections, resource servers, client
grants, tenant settings) change configuration the way ``nopass apply`` does, so that the two
stay one model: read the whole tenant as the document ``nopass apply`` reads
(``read_document``), change it, then validate and write it back exactly as
``nopass apply --prune`` would (``SqlConfigRepo.replace``). Client secrets are stored as hashes
and are never in a document: a client whose document carries no ``client_secret`` keeps the
one it has.

Reading a document for a change takes the tenant's row lock first (``FOR UPDATE`` on
PostgreSQL; a SQLite write transaction already holds the database's write lock), so two
concurrent changes of one tenant apply one after the other instead of losing one.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from nopass.config_file import TENANT_SETTINGS, ConfigFileError, parse_config
from nopass.store.apply import apply_document
from nopass.store.tables import (
    ClientGrantRow,
    ClientRow,
    ConnectionClientRow,
    ConnectionRow,
    EmailProviderRow,
    ResourceServerRow,
    TenantDomainRow,
    TenantRow,
    table,
)


async def read_document(conn: AsyncConnection, tenant_id: str, *, lock: bool) -> dict[str, Any]:
    """The tenant's configuration as a ``nopass apply`` document (``lock``: for a change)."""
    tenants = table(TenantRow)
    query = select(tenants).where(tenants.c.id == tenant_id)
    if lock and conn.dialect.name == "postgresql":
        query = query.with_for_update()
    tenant = (await conn.execute(query)).one()
    return {
        "tenant": await _tenant(conn, tenant),
        "resource_servers": await _resource_servers(conn, tenant_id),
        "clients": await _clients(conn, tenant_id),
        "connections": await _connections(conn, tenant_id),
        "email_provider": await _email_provider(conn, tenant_id),
        "client_grants": await _client_grants(conn, tenant_id),
    }


async def _rows(conn: AsyncConnection, row_type: type[Any], tenant_id: str) -> list[Any]:
    t = table(row_type)
    return list((await conn.execute(select(t).where(t.c.tenant_id == tenant_id))).all())


async def _tenant(conn: AsyncConnection, row: Any) -> dict[str, Any]:
    domains = sorted(await _rows(conn, TenantDomainRow, row.id), key=lambda d: d.id)
    settings = dict(row.settings or {})
    named = {key: settings.pop(key, None) for key in TENANT_SETTINGS}
    return {
        "name": row.name,
        "domains": [d.origin for d in domains],
        "friendly_name": row.friendly_name,
        "default_audience": row.default_audience,
        "rate_limits": dict(row.rate_limits or {}),
        "test_identities": list(row.test_identities or []),
        **named,
        "other_settings": settings,
    }


async def _resource_servers(conn: AsyncConnection, tenant_id: str) -> list[dict[str, Any]]:
    rows = sorted(await _rows(conn, ResourceServerRow, tenant_id), key=lambda r: r.id)
    return [
        {
            "identifier": r.identifier,
            "name": r.name,
            "token_lifetime": r.token_lifetime,
            "allow_offline_access": r.allow_offline_access,
            "scopes": list(r.scopes or []),
            **(r.settings or {}),
        }
        for r in rows
    ]


async def _clients(conn: AsyncConnection, tenant_id: str) -> list[dict[str, Any]]:
    rows = sorted(await _rows(conn, ClientRow, tenant_id), key=lambda r: r.id)
    documents = []
    for r in rows:
        settings = dict(r.settings or {})
        keys = settings.pop("public_keys", None) or []  # the PEMs of private_key_jwt
        document: dict[str, Any] = {"name": r.name, "client_id": r.client_id, **settings}
        if keys:
            credentials = [{"credential_type": "public_key", "pem": pem} for pem in keys]
            document["client_authentication_methods"] = {
                "private_key_jwt": {"credentials": credentials}
            }
        documents.append(document)
    return documents


async def _connections(conn: AsyncConnection, tenant_id: str) -> list[dict[str, Any]]:
    enabled: dict[str, list[str]] = {}
    for link in await _rows(conn, ConnectionClientRow, tenant_id):
        enabled.setdefault(link.connection_id, []).append(link.client_id)
    rows = sorted(await _rows(conn, ConnectionRow, tenant_id), key=lambda r: r.name)
    return [
        {
            "id": r.id,
            "name": r.name,
            "strategy": r.strategy,
            "enabled_clients": sorted(enabled.get(r.id, [])),
            "options": dict(r.options or {}),
            **dict(r.settings or {}),
        }
        for r in rows
    ]


async def _email_provider(conn: AsyncConnection, tenant_id: str) -> dict[str, Any] | None:
    rows = await _rows(conn, EmailProviderRow, tenant_id)
    if not rows:
        return None
    r = rows[0]
    return {
        "name": r.name,
        "enabled": r.enabled,
        "default_from_address": r.default_from_address,
        "credentials": dict(r.credentials) if r.credentials else None,
        "settings": dict(r.settings or {}),
    }


async def _client_grants(conn: AsyncConnection, tenant_id: str) -> list[dict[str, Any]]:
    rows = sorted(
        await _rows(conn, ClientGrantRow, tenant_id), key=lambda r: (r.client_id, r.audience)
    )
    return [
        {
            "id": r.id,
            "client_id": r.client_id,
            "audience": r.audience,
            "scope": list(r.scope),
            **(r.settings or {}),
        }
        for r in rows
    ]


class SqlConfigRepo:
    """``core.ports.ConfigRepo`` in a unit of work's transaction."""

    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn

    async def document(self, tenant_id: str) -> dict[str, Any]:
        return await read_document(self._conn, tenant_id, lock=True)

    async def replace(
        self, tenant_id: str, document: Mapping[str, Any], now: datetime
    ) -> dict[str, Any]:
        config = parse_config(dict(document))
        tenants = table(TenantRow)
        name = await self._conn.scalar(select(tenants.c.name).where(tenants.c.id == tenant_id))
        if config.tenant.name != name:
            raise ConfigFileError("tenant.name: a tenant's name cannot change")
        return await apply_document(self._conn, config, now=now, prune=True)
