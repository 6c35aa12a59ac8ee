"""Signing keys in memory: a tenant's key is made on first need (or given), kept until
``rotate``, and the older ones stay published, as ``store/keys.py`` keeps them in SQL."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey

from nopass.core.models import SigningKey
from nopass.tokens.keys import generate_key


class MemoryKeyStore:
    """``keys``: a current key per tenant to start with (making an RSA key takes a while, so
    tests share one)."""

    def __init__(self, keys: Mapping[str, SigningKey] | None = None) -> None:
        self._keys: dict[str, list[SigningKey]] = {t: [k] for t, k in (keys or {}).items()}
        self._lock = asyncio.Lock()

    async def signing_key(self, tenant_id: str) -> SigningKey:
        return (await self._tenant_keys(tenant_id))[0]

    async def public_keys(
        self, tenant_id: str, *, kid: str | None = None
    ) -> Mapping[str, RSAPublicKey]:
        return {k.kid: k.private.public_key() for k in await self._tenant_keys(tenant_id)}

    async def jwks(self, tenant_id: str) -> list[dict[str, Any]]:
        return [dict(k.jwk) for k in await self._tenant_keys(tenant_id)]

    async def rotate(self, tenant_id: str, key: SigningKey | None = None) -> str:
        """Make ``key`` (else a new one) the current key; the others stay published."""
        new = key if key is not None else (await asyncio.to_thread(generate_key))[0]
        async with self._lock:
            self._keys[tenant_id] = [new, *self._keys.get(tenant_id, [])]
        return new.kid

    async def _tenant_keys(self, tenant_id: str) -> list[SigningKey]:
        async with self._lock:
            if tenant_id not in self._keys:
                key, _ = await asyncio.to_thread(generate_key)
                self._keys[tenant_id] = [key]
            return self._keys[tenant_id]
