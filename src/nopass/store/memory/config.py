"""The in-memory ``ConfigRepo``: a tenant's configuration kept as its canonical document
(``ConfigFile.document``), which is what the SQL store reads back once it applied one."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from nopass.config_file import ConfigFileError, parse_config
from nopass.core import ids
from nopass.core.keyring import hash_client_secret
from nopass.store.memory.repos import Work


class MemoryConfigRepo:
    def __init__(self, work: Work) -> None:
        self._work = work

    async def document(self, tenant_id: str) -> dict[str, Any]:
        tables = await self._work.writing()  # the write lock: as the SQL row lock
        return copy.deepcopy(tables.configs[tenant_id])

    async def replace(
        self, tenant_id: str, document: Mapping[str, Any], now: datetime
    ) -> dict[str, Any]:
        config = parse_config(copy.deepcopy(dict(document)))
        tables = await self._work.writing()
        before = tables.configs.get(tenant_id)
        if before is not None and before["tenant"]["name"] != config.tenant.name:
            raise ConfigFileError("tenant.name: a tenant's name cannot change")
        known = {c["name"]: c["client_id"] for c in (before or {}).get("clients", [])}
        summary: list[dict[str, str]] = []
        clients = []
        for spec in config.clients:
            client_id = spec.client_id or known.get(spec.name) or ids.client_id()
            entry = {"name": spec.name, "client_id": client_id}
            secret = spec.client_secret
            confidential = spec.auth_method in ("client_secret_post", "client_secret_basic")
            if secret is None and confidential and (tenant_id, client_id) not in tables.secrets:
                secret = entry["client_secret"] = ids.client_secret()
            if secret is not None:
                tables.secrets[(tenant_id, client_id)] = hash_client_secret(secret)
            elif not confidential:
                tables.secrets.pop((tenant_id, client_id), None)
            clients.append(spec.model_copy(update={"client_id": client_id}))
            summary.append(entry)
        stored = config.model_copy(update={"clients": clients}).document()
        tables.configs[tenant_id] = stored
        return {"tenant": config.tenant.name, "clients": summary}
