"""Write a validated ``ConfigFile`` into the database: create or update by name, idempotently.

Everything happens in one transaction, and ``config_state.revision`` moves only when something
actually changed, so applying the same file twice writes nothing the second time.
"""

from __future__ import annotations

import secrets
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from nopass.config_file import TENANT_SETTINGS, ApplyConflict, ConfigFile, TenantSpec
from nopass.core import ids
from nopass.core.keyring import client_secret_matches, hash_client_secret
from nopass.store.config import bump_revision
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


def _tenant_settings(spec: TenantSpec, stored: dict[str, Any]) -> dict[str, Any]:
    """The tenant's Auth0 settings once ``spec`` is applied: those it names (``null``: none)
    replace the stored ones; a file that leaves a setting out (or all of ``other_settings``)
    keeps what the Management API set. (A document read back names every one.)"""
    given = spec.model_fields_set
    kept = {
        key: value
        for key, value in stored.items()
        if (key not in given if key in TENANT_SETTINGS else "other_settings" not in given)
    }
    return {**kept, **spec.stored_settings()}


def _host_of(origin: str) -> str:
    parts = urlsplit(origin)
    return parts.netloc.lower()


class _Applier:
    def __init__(self, conn: AsyncConnection, now: datetime) -> None:
        self.conn = conn
        self.now = now
        self.changed = False

    async def run(self, cfg: ConfigFile, prune: bool) -> dict[str, Any]:
        tenant_id = await self._tenant(cfg)
        await self._domains(tenant_id, cfg.tenant.domains)
        await self._resource_servers(tenant_id, cfg, prune)
        clients = await self._clients(tenant_id, cfg, prune)
        connections = await self._connections(tenant_id, cfg, clients, prune)
        grants = await self._client_grants(tenant_id, cfg, clients, prune)
        await self._email_provider(tenant_id, cfg)
        if self.changed:
            await bump_revision(self.conn)
        return {
            "tenant": cfg.tenant.name,
            "clients": [clients[c.name][1] for c in cfg.clients],
            "connections": connections,
            "client_grants": grants,
        }

    async def _write(self, stmt: Any) -> None:
        self.changed = True
        await self.conn.execute(stmt)

    async def _tenant(self, cfg: ConfigFile) -> str:
        t = table(TenantRow)
        spec = cfg.tenant
        values = {
            "friendly_name": spec.friendly_name,
            "default_audience": spec.default_audience,
            "rate_limits": spec.rate_limits.model_dump(),
            "test_identities": [i.model_dump() for i in spec.test_identities],
            "settings": spec.stored_settings(),
        }
        row = (await self.conn.execute(select(t).where(t.c.name == spec.name))).first()
        if row is not None:
            values["settings"] = _tenant_settings(spec, dict(row.settings or {}))
        if row is None:
            tenant_id = secrets.token_hex(16)
            await self._write(
                insert(t).values(
                    id=tenant_id, name=spec.name, created_at=self.now, updated_at=self.now, **values
                )
            )
            return tenant_id
        if any(getattr(row, k) != v for k, v in values.items()):
            await self._write(
                update(t).where(t.c.id == row.id).values(updated_at=self.now, **values)
            )
        return str(row.id)

    async def _domains(self, tenant_id: str, origins: list[str]) -> None:
        t = table(TenantDomainRow)
        wanted = {_host_of(o): o for o in origins}
        others = (
            (
                await self.conn.execute(
                    select(t.c.host).where(t.c.host.in_(wanted), t.c.tenant_id != tenant_id)
                )
            )
            .scalars()
            .all()
        )
        if others:
            raise ApplyConflict(f"tenant.domains: {others[0]!r} belongs to another tenant")
        current = {
            r.host: r.origin
            for r in (await self.conn.execute(select(t).where(t.c.tenant_id == tenant_id))).all()
        }
        for host in current.keys() - wanted.keys():
            await self._write(delete(t).where(t.c.tenant_id == tenant_id, t.c.host == host))
        for host, origin in wanted.items():
            if host not in current:
                await self._write(insert(t).values(tenant_id=tenant_id, host=host, origin=origin))
            elif current[host] != origin:
                await self._write(
                    update(t)
                    .where(t.c.tenant_id == tenant_id, t.c.host == host)
                    .values(origin=origin)
                )

    async def _resource_servers(self, tenant_id: str, cfg: ConfigFile, prune: bool) -> None:
        t = table(ResourceServerRow)
        current = {
            r.identifier: r
            for r in (await self.conn.execute(select(t).where(t.c.tenant_id == tenant_id))).all()
        }
        for spec in cfg.resource_servers:
            values = spec.stored()
            row = current.pop(spec.identifier, None)
            if row is None:
                await self._write(insert(t).values(tenant_id=tenant_id, **values))
            elif any(getattr(row, k) != v for k, v in values.items()):
                await self._write(update(t).where(t.c.id == row.id).values(**values))
        if prune:
            for row in current.values():
                await self._write(delete(t).where(t.c.id == row.id))

    async def _clients(
        self, tenant_id: str, cfg: ConfigFile, prune: bool
    ) -> dict[str, tuple[str, dict[str, str]]]:
        """Returns name -> (client_id, summary entry)."""
        t = table(ClientRow)
        current = {
            r.name: r
            for r in (await self.conn.execute(select(t).where(t.c.tenant_id == tenant_id))).all()
        }
        renamed = {  # a client named by its client_id keeps it under a new name
            spec.name: row
            for spec in cfg.clients
            for row in current.values()
            if spec.client_id == row.client_id and spec.name != row.name
        }
        for moved in renamed.values():
            del current[moved.name]
        result: dict[str, tuple[str, dict[str, str]]] = {}
        for i, spec in enumerate(cfg.clients):
            settings = spec.stored_settings()
            row = renamed[spec.name] if spec.name in renamed else current.pop(spec.name, None)
            entry: dict[str, str] = {"name": spec.name}
            confidential = spec.auth_method in ("client_secret_post", "client_secret_basic")
            if row is None:
                client_id = spec.client_id or ids.client_id()
                secret = spec.client_secret
                if confidential and secret is None:
                    secret = ids.client_secret()
                    entry["client_secret"] = secret
                await self._write(
                    insert(t).values(
                        tenant_id=tenant_id,
                        client_id=client_id,
                        name=spec.name,
                        secret_hash=hash_client_secret(secret) if secret else None,
                        settings=settings,
                    )
                )
            else:
                client_id = str(row.client_id)
                if spec.client_id is not None and spec.client_id != client_id:
                    raise ApplyConflict(
                        f"clients[{i}].client_id: client {spec.name!r} already has client_id "
                        f"{client_id!r}; a client_id cannot change"
                    )
                values: dict[str, Any] = {} if row.name == spec.name else {"name": spec.name}
                if row.settings != settings:
                    values["settings"] = settings
                if spec.client_secret is not None and not (
                    row.secret_hash and client_secret_matches(spec.client_secret, row.secret_hash)
                ):
                    values["secret_hash"] = hash_client_secret(spec.client_secret)
                elif confidential and row.secret_hash is None:
                    secret = ids.client_secret()
                    entry["client_secret"] = secret
                    values["secret_hash"] = hash_client_secret(secret)
                elif not confidential and row.secret_hash is not None:
                    values["secret_hash"] = None
                if values:
                    await self._write(update(t).where(t.c.id == row.id).values(**values))
            entry["client_id"] = client_id
            result[spec.name] = (client_id, entry)
        if prune:
            for row in current.values():
                await self._write(delete(t).where(t.c.id == row.id))
        client_ids = [cid for cid, _ in result.values()]
        taken = (
            await self.conn.execute(
                select(t.c.client_id, t.c.tenant_id).where(
                    t.c.client_id.in_(client_ids), t.c.tenant_id != tenant_id
                )
            )
        ).first()
        if taken is not None:
            raise ApplyConflict(f"clients: client_id {taken.client_id!r} is used by another tenant")
        return result

    async def _connections(
        self,
        tenant_id: str,
        cfg: ConfigFile,
        clients: dict[str, tuple[str, dict[str, str]]],
        prune: bool,
    ) -> list[dict[str, str]]:
        t = table(ConnectionRow)
        cc = table(ConnectionClientRow)
        by_ref = {name: cid for name, (cid, _) in clients.items()}
        by_ref.update({cid: cid for cid, _ in clients.values()})
        current = {
            r.name: r
            for r in (await self.conn.execute(select(t).where(t.c.tenant_id == tenant_id))).all()
        }
        summary = []
        for spec in cfg.connections:
            options = spec.normalized_options()
            settings = spec.stored_settings()
            row = current.pop(spec.name, None)
            if row is None:
                conn_id = spec.id or ids.connection_id()
                await self._write(
                    insert(t).values(
                        id=conn_id,
                        tenant_id=tenant_id,
                        name=spec.name,
                        strategy=spec.strategy,
                        options=options,
                        settings=settings,
                    )
                )
            else:
                conn_id = str(row.id)
                if spec.id is not None and spec.id != conn_id:
                    raise ApplyConflict(
                        f"connections: connection {spec.name!r} already has id {conn_id!r}; "
                        "an id cannot change"
                    )
                if (
                    row.strategy != spec.strategy
                    or row.options != options
                    or (row.settings or {}) != settings
                ):
                    await self._write(
                        update(t)
                        .where(t.c.id == conn_id)
                        .values(strategy=spec.strategy, options=options, settings=settings)
                    )
            wanted = {by_ref[ref] for ref in spec.enabled_clients}
            have = set(
                (
                    await self.conn.execute(
                        select(cc.c.client_id).where(
                            cc.c.tenant_id == tenant_id, cc.c.connection_id == conn_id
                        )
                    )
                ).scalars()
            )
            for client_id in have - wanted:
                await self._write(
                    delete(cc).where(cc.c.connection_id == conn_id, cc.c.client_id == client_id)
                )
            for client_id in sorted(wanted - have):
                await self._write(
                    insert(cc).values(
                        tenant_id=tenant_id, connection_id=conn_id, client_id=client_id
                    )
                )
            summary.append({"name": spec.name, "strategy": spec.strategy})
        if prune:
            for row in current.values():
                await self._write(delete(t).where(t.c.id == row.id))
        return summary

    async def _client_grants(
        self,
        tenant_id: str,
        cfg: ConfigFile,
        clients: dict[str, tuple[str, dict[str, str]]],
        prune: bool,
    ) -> list[dict[str, Any]]:
        """Like resource servers: each (client, audience) of the file is created or its scope
        updated; with ``prune``, the tenant's other grants go. A grant of a pruned client or
        API goes with it (a grant is meaningless without both)."""
        t = table(ClientGrantRow)
        by_ref = {name: cid for name, (cid, _) in clients.items()}
        by_ref.update({cid: cid for cid, _ in clients.values()})
        current = {
            (r.client_id, r.audience): r
            for r in (await self.conn.execute(select(t).where(t.c.tenant_id == tenant_id))).all()
        }
        summary: list[dict[str, Any]] = []
        for spec in cfg.client_grants:
            client_id = by_ref[spec.client_id]
            row = current.pop((client_id, spec.audience), None)
            if row is None:
                grant_id = spec.id or ids.grant_id()
                await self._write(
                    insert(t).values(
                        id=grant_id,
                        tenant_id=tenant_id,
                        client_id=client_id,
                        audience=spec.audience,
                        scope=spec.scope,
                        settings=spec.stored_settings(),
                        created_at=self.now,
                    )
                )
            else:
                grant_id = str(row.id)
                if spec.id is not None and spec.id != grant_id:
                    raise ApplyConflict(
                        f"client_grants: the grant of {client_id!r} for {spec.audience!r} "
                        f"already has id {grant_id!r}; an id cannot change"
                    )
                settings = spec.stored_settings()
                if list(row.scope) != spec.scope or dict(row.settings or {}) != settings:
                    await self._write(
                        update(t)
                        .where(t.c.id == grant_id)
                        .values(scope=spec.scope, settings=settings)
                    )
            summary.append(
                {
                    "id": grant_id,
                    "client_id": client_id,
                    "audience": spec.audience,
                    "scope": spec.scope,
                    **spec.stored_settings(),
                }
            )
        if prune:
            for row in current.values():
                await self._write(delete(t).where(t.c.id == row.id))
        return summary

    async def _email_provider(self, tenant_id: str, cfg: ConfigFile) -> None:
        t = table(EmailProviderRow)
        row = (await self.conn.execute(select(t).where(t.c.tenant_id == tenant_id))).first()
        spec = cfg.email_provider
        if spec is None:
            return
        values = {
            "name": spec.name,
            "enabled": spec.enabled,
            "default_from_address": spec.default_from_address,
            "credentials": spec.credentials.model_dump() if spec.credentials else {},
            "settings": spec.settings.model_dump(),
        }
        if row is None:
            await self._write(insert(t).values(tenant_id=tenant_id, **values))
        elif any(getattr(row, k) != v for k, v in values.items()):
            await self._write(update(t).where(t.c.tenant_id == tenant_id).values(**values))


async def apply_config(
    engine: AsyncEngine, cfg: ConfigFile, *, now: datetime, prune: bool = False
) -> dict[str, Any]:
    async with engine.begin() as conn:
        return await apply_document(conn, cfg, now=now, prune=prune)


async def apply_document(
    conn: AsyncConnection, cfg: ConfigFile, *, now: datetime, prune: bool = False
) -> dict[str, Any]:
    """``apply_config`` in the caller's transaction (the Management API's, with its audit)."""
    return await _Applier(conn, now).run(cfg, prune)
