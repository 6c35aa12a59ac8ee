"""Per-tenant signing keys in SQL: created on first need, sealed at rest, cached in-process.

Every process loads a tenant's keys once and keeps them until the configuration revision
moves (``nopass keys rotate`` bumps it), so signing never touches the database.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from nopass.core.clock import Clock
from nopass.core.keyring import Keyring
from nopass.core.models import SigningKey
from nopass.store.config import ConfigCache, bump_revision
from nopass.store.engine import reader
from nopass.store.tables import SigningKeyRow, table
from nopass.tokens.keys import generate_key, load_key

_T = table(SigningKeyRow)


def _context(kid: str) -> str:
    return f"signing_key:{kid}"


@dataclass(frozen=True, slots=True)
class _TenantKeys:
    revision: int | None
    current: SigningKey
    public: Mapping[str, RSAPublicKey]
    jwks: list[dict[str, Any]]
    loaded_at: float


class SqlKeyStore:
    def __init__(
        self, engine: AsyncEngine, keyring: Keyring, config: ConfigCache, clock: Clock
    ) -> None:
        self._engine = engine
        self._keyring = keyring
        self._config = config
        self._clock = clock
        self._cache: dict[str, _TenantKeys] = {}
        self._lock = asyncio.Lock()

    async def signing_key(self, tenant_id: str) -> SigningKey:
        return (await self._keys(tenant_id)).current

    async def public_keys(
        self, tenant_id: str, *, kid: str | None = None
    ) -> Mapping[str, RSAPublicKey]:
        """The tenant's verification keys. An unknown ``kid`` makes this process re-read
        the keys (at most once a second): another process may have just rotated them
        (OIDC Core §10.1.1)."""
        keys = await self._keys(tenant_id)
        if kid is None or kid in keys.public or time.monotonic() - keys.loaded_at < 1.0:
            return keys.public
        async with self._lock:
            fresh = await self._load(tenant_id, keys.revision)
            self._cache[tenant_id] = fresh
        return fresh.public

    async def jwks(self, tenant_id: str) -> list[dict[str, Any]]:
        return (await self._keys(tenant_id)).jwks

    async def _keys(self, tenant_id: str) -> _TenantKeys:
        revision = await self._config.current_revision()
        cached = self._cache.get(tenant_id)
        if cached is not None and cached.revision == revision:
            return cached
        async with self._lock:
            cached = self._cache.get(tenant_id)
            if cached is None or cached.revision != revision:
                cached = await self._load(tenant_id, revision)
                self._cache[tenant_id] = cached
            return cached

    async def _load(self, tenant_id: str, revision: int | None) -> _TenantKeys:
        async with reader(self._engine).connect() as conn:
            rows = await _rows(conn, tenant_id)
        if not any(r.is_current for r in rows):
            await create_key(self._engine, self._keyring, tenant_id, self._clock.now())
            async with reader(self._engine).connect() as conn:
                rows = await _rows(conn, tenant_id)
        current: SigningKey | None = None
        public: dict[str, RSAPublicKey] = {}
        jwks = []
        for row in rows:
            key = load_key(
                self._keyring.open(row.private_key, context=_context(row.kid)), row.public_jwk
            )
            public[key.kid] = key.private.public_key()
            jwks.append(dict(row.public_jwk))
            if row.is_current:
                current = key
        if current is None:  # pragma: no cover - create_key guarantees one
            raise RuntimeError("no current signing key")
        return _TenantKeys(
            revision=revision,
            current=current,
            public=public,
            jwks=jwks,
            loaded_at=time.monotonic(),
        )


async def _rows(conn: AsyncConnection, tenant_id: str) -> list[Any]:
    result = await conn.execute(
        select(_T).where(_T.c.tenant_id == tenant_id).order_by(_T.c.created_at.desc())
    )
    return list(result.all())


async def create_key(
    engine: AsyncEngine, keyring: Keyring, tenant_id: str, now: datetime, *, rotate: bool = False
) -> str:
    """Add a key. Without ``rotate`` only when the tenant has no current key (first need; a
    concurrent creator may win, which is fine); with ``rotate`` it becomes the current one."""
    key, pem = await asyncio.to_thread(generate_key)
    try:
        async with engine.begin() as conn:
            if rotate:
                await conn.execute(
                    update(_T).where(_T.c.tenant_id == tenant_id).values(is_current=False)
                )
            await conn.execute(
                insert(_T).values(
                    kid=key.kid,
                    tenant_id=tenant_id,
                    alg="RS256",
                    private_key=keyring.seal(pem, context=_context(key.kid)),
                    public_jwk=dict(key.jwk),
                    is_current=True,
                    created_at=now,
                )
            )
            if rotate:
                await bump_revision(conn)
    except IntegrityError:
        if rotate:
            raise
    return key.kid
