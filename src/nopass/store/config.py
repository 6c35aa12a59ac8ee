"""Tenant configuration reads, cached in-process.

Every request needs its tenant, client and connection; reading them from the database each time
would cost more than the rest of the request. The whole configuration is small, so it is loaded
once and kept. ``nopass apply`` bumps ``config_state.revision`` in the same transaction as its
changes; each process checks the revision at most every ``recheck_seconds`` (1 s by default) and
reloads when it moved, so configuration changes reach running servers within a second.
"""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from nopass.core.models import (
    AuthMethod,
    Client,
    ClientGrant,
    Connection,
    EmailProvider,
    Resolved,
    ResourceServer,
    Tenant,
    TenantConfig,
    TestIdentity,
)
from nopass.store.engine import reader
from nopass.store.options import (
    connection_options,
    id_token_policy,
    rate_limits,
    refresh_token_policy,
)
from nopass.store.tables import (
    ClientGrantRow,
    ClientRow,
    ConfigStateRow,
    ConnectionClientRow,
    ConnectionRow,
    EmailProviderRow,
    ResourceServerRow,
    TenantDomainRow,
    TenantRow,
    table,
)


def host_key(host: str) -> str:
    """Normalise a Host header value: lower case, default ports dropped."""
    host = host.strip().lower()
    for default in (":443", ":80"):
        if host.endswith(default):
            return host[: -len(default)]
    return host


class ConfigCache:
    def __init__(self, engine: AsyncEngine, *, recheck_seconds: float = 1.0) -> None:
        self._engine = engine
        self._recheck = recheck_seconds
        self._revision: int | None = None
        self._checked_at = float("-inf")
        self._hosts: dict[str, tuple[str, str]] = {}
        self._tenants: dict[str, TenantConfig] = {}
        self._lock = asyncio.Lock()

    async def resolve(self, host: str) -> Resolved | None:
        await self._refresh_if_due()
        hit = self._hosts.get(host_key(host))
        if hit is None:
            return None
        tenant_id, origin = hit
        return Resolved(self._tenants[tenant_id], origin)

    async def by_name(self, name: str) -> TenantConfig | None:
        await self._refresh_if_due()
        return next((c for c in self._tenants.values() if c.tenant.name == name), None)

    async def by_id(self, tenant_id: str) -> TenantConfig | None:
        await self._refresh_if_due()
        return self._tenants.get(tenant_id)

    async def email_provider(self, tenant_id: str) -> EmailProvider | None:
        await self._refresh_if_due()
        config = self._tenants.get(tenant_id)
        return config.email_provider if config else None

    async def current_revision(self) -> int | None:
        """The configuration revision this process has loaded (checked at most every
        ``recheck_seconds``)."""
        await self._refresh_if_due()
        return self._revision

    def invalidate(self) -> None:
        self._checked_at = float("-inf")
        self._revision = None

    async def _refresh_if_due(self) -> None:
        if time.monotonic() - self._checked_at < self._recheck:
            return
        async with self._lock:
            if time.monotonic() - self._checked_at < self._recheck:
                return
            async with reader(self._engine).connect() as conn:
                revision = await conn.scalar(select(ConfigStateRow.revision)) or 0
                if revision != self._revision:
                    self._hosts, self._tenants = await _load_all(conn)
                    self._revision = revision
            self._checked_at = time.monotonic()


async def _load_all(
    conn: AsyncConnection,
) -> tuple[dict[str, tuple[str, str]], dict[str, TenantConfig]]:
    tenants = (await conn.execute(select(table(TenantRow)))).all()
    domains = (await conn.execute(select(table(TenantDomainRow)))).all()
    clients = (await conn.execute(select(table(ClientRow)))).all()
    connections = (await conn.execute(select(table(ConnectionRow)))).all()
    enabled = (await conn.execute(select(table(ConnectionClientRow)))).all()
    providers = (await conn.execute(select(table(EmailProviderRow)))).all()
    apis = (await conn.execute(select(table(ResourceServerRow)))).all()
    grants = (await conn.execute(select(table(ClientGrantRow)).order_by("id"))).all()

    enabled_by_conn: dict[str, set[str]] = defaultdict(set)
    for row in enabled:
        enabled_by_conn[row.connection_id].add(row.client_id)
    clients_by_tenant: dict[str, dict[str, Client]] = defaultdict(dict)
    for row in clients:
        clients_by_tenant[row.tenant_id][row.client_id] = client_from_row(
            row.tenant_id, row.client_id, row.name, row.secret_hash, row.settings
        )
    conns_by_tenant: dict[str, dict[str, Connection]] = defaultdict(dict)
    for row in connections:
        conns_by_tenant[row.tenant_id][row.name] = Connection(
            tenant_id=row.tenant_id,
            id=row.id,
            name=row.name,
            strategy=row.strategy,
            options=connection_options(row.strategy, row.options),
            enabled_clients=frozenset(enabled_by_conn[row.id]),
        )
    provider_by_tenant = {
        row.tenant_id: EmailProvider(
            name=row.name,
            enabled=row.enabled,
            default_from_address=row.default_from_address,
            credentials=row.credentials,
            settings=row.settings,
        )
        for row in providers
    }
    apis_by_tenant: dict[str, dict[str, ResourceServer]] = defaultdict(dict)
    for row in apis:
        apis_by_tenant[row.tenant_id][row.identifier] = ResourceServer(
            identifier=row.identifier,
            name=row.name,
            token_lifetime=row.token_lifetime,
            allow_offline_access=row.allow_offline_access,
            scopes=tuple(scope["value"] for scope in row.scopes),
        )
    grants_by_tenant: dict[str, list[ClientGrant]] = defaultdict(list)
    for row in grants:
        grants_by_tenant[row.tenant_id].append(
            ClientGrant(
                id=row.id, client_id=row.client_id, audience=row.audience, scope=tuple(row.scope)
            )
        )
    configs = {
        row.id: TenantConfig(
            tenant=Tenant(
                id=row.id,
                name=row.name,
                friendly_name=row.friendly_name,
                default_audience=row.default_audience,
                rate_limits=rate_limits(row.rate_limits),
                test_identities=test_identities(row.test_identities, conns_by_tenant[row.id]),
                picture_url=(row.settings or {}).get("picture_url"),
                support_email=(row.settings or {}).get("support_email"),
                support_url=(row.settings or {}).get("support_url"),
            ),
            clients=clients_by_tenant[row.id],
            connections=conns_by_tenant[row.id],
            email_provider=provider_by_tenant.get(row.id),
            resource_servers=apis_by_tenant[row.id],
            client_grants=tuple(grants_by_tenant[row.id]),
        )
        for row in tenants
    }
    hosts = {row.host: (row.tenant_id, row.origin) for row in domains}
    return hosts, configs


def test_identities(
    entries: Iterable[Any], connections: Mapping[str, Connection]
) -> tuple[TestIdentity, ...]:
    """The tenant's ``test_identities`` (docs/specs/interface.md), identifiers normalised the way a
    typed one is (a lower-case email address; E.164 as is). Entries that name no connection or
    carry no usable expiry are left out: they can never be used."""
    found: list[TestIdentity] = []
    for entry in entries or ():
        if not isinstance(entry, Mapping):
            continue
        connection = connections.get(str(entry.get("connection")))
        identifier = str(entry.get("identifier", ""))
        try:
            expires_at = datetime.fromisoformat(str(entry.get("expires_at")).replace("Z", "+00:00"))
        except ValueError:
            continue
        if connection is None or expires_at.tzinfo is None:
            continue
        if connection.is_passwordless:
            identifier = connection.channel.normalize(identifier) or identifier.lower()
        found.append(
            TestIdentity(
                connection=connection.name,
                identifier=identifier,
                code=str(entry.get("code", "")),
                expires_at=expires_at,
            )
        )
    return tuple(found)


def client_from_row(
    tenant_id: str, client_id: str, name: str, secret_hash: str | None, s: dict[str, object]
) -> Client:
    def strings(key: str) -> tuple[str, ...]:
        value = s.get(key) or []
        return tuple(str(v) for v in value) if isinstance(value, list) else ()

    return Client(
        tenant_id=tenant_id,
        client_id=client_id,
        name=name,
        app_type=str(s.get("app_type", "native")),
        auth_method=AuthMethod(str(s.get("token_endpoint_auth_method", "none"))),
        secret_hash=secret_hash,
        grant_types=strings("grant_types"),
        callbacks=strings("callbacks"),
        allowed_logout_urls=strings("allowed_logout_urls"),
        allowed_origins=strings("allowed_origins"),
        web_origins=strings("web_origins"),
        cross_origin_auth=bool(s.get("cross_origin_auth", False)),
        ip_header_trusted=bool(s.get("is_token_endpoint_ip_header_trusted", False)),
        public_keys=strings("public_keys"),
        jwt_configuration=id_token_policy(s.get("jwt_configuration")),
        refresh_token=refresh_token_policy(s.get("refresh_token")),
    )


async def bump_revision(conn: AsyncConnection) -> None:
    """Tell every process that configuration (or keys) changed."""
    t = table(ConfigStateRow)
    result = await conn.execute(update(t).where(t.c.id == 1).values(revision=t.c.revision + 1))
    if result.rowcount == 0:
        await conn.execute(insert(t).values(id=1, revision=1))
