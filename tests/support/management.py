"""Management API calls in tests: tokens the tenant signs as the client-credentials grant
does (RS256 with the tenant's key, ``aud`` the origin's ``/api/v2/``, ``gty``
``client-credentials``, ``sub`` ``<client_id>@clients``), and a tenant to call."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from typing import Any

import httpx

from nopass.core.clock import SystemClock
from nopass.core.keyring import Keyring
from nopass.core.management import MANAGEMENT_SCOPES, management_audience
from nopass.core.models import SigningKey
from nopass.store.config import ConfigCache
from nopass.store.keys import SqlKeyStore
from nopass.tokens.jwt import ACCESS_TOKEN_TYPE, sign
from tests.support.config import tenant_config
from tests.support.harness import TEST_SECRET, Harness, running_app

ORIGIN = "http://127.0.0.1:8123"
MACHINE = "machine-client-id"
ALL = tuple(MANAGEMENT_SCOPES)


def management_config(origin: str = ORIGIN, limits: dict[str, int] | None = None) -> dict[str, Any]:
    config = tenant_config(origin)
    if limits:
        config["tenant"]["rate_limits"] = limits
    return config


async def tenant_key(harness: Harness, origin: str = ORIGIN) -> SigningKey:
    cache = ConfigCache(harness.engine)
    resolved = await cache.resolve(origin.split("://", 1)[1])
    assert resolved is not None
    keys = SqlKeyStore(harness.engine, Keyring([TEST_SECRET.encode()]), cache, SystemClock())
    return await keys.signing_key(resolved.config.tenant.id)


def token(
    key: SigningKey,
    scopes: Iterable[str] = ALL,
    *,
    origin: str = ORIGIN,
    client_id: str = MACHINE,
    **claims: Any,
) -> str:
    now = int(time.time())
    body: dict[str, Any] = {
        "iss": origin + "/",
        "sub": f"{client_id}@clients",
        "aud": management_audience(origin),
        "iat": now,
        "exp": now + 3600,
        "scope": " ".join(scopes),
        "gty": "client-credentials",
        "azp": client_id,
    }
    body.update(claims)
    return sign({k: v for k, v in body.items() if v is not None}, key, typ=ACCESS_TOKEN_TYPE)


class Api:
    """``/api/v2`` over a harness with one token (replaceable per call)."""

    def __init__(self, harness: Harness, key: SigningKey) -> None:
        self.harness = harness
        self.key = key
        self.bearer = token(key)

    def headers(self, scopes: Iterable[str] | None = None) -> dict[str, str]:
        bearer = self.bearer if scopes is None else token(self.key, scopes)
        return {"Authorization": f"Bearer {bearer}"}

    async def call(
        self, method: str, path: str, *, scopes: Iterable[str] | None = None, **kwargs: Any
    ) -> httpx.Response:
        headers = {**self.headers(scopes), **kwargs.pop("headers", {})}
        return await self.harness.client.request(
            method, "/api/v2" + path, headers=headers, **kwargs
        )


@asynccontextmanager
async def management_app(
    database_url: str, *, limits: dict[str, int] | None = None, **settings: Any
) -> AsyncIterator[Api]:
    config = management_config(limits=limits)
    async with running_app(database_url, config, **settings) as harness:
        yield Api(harness, await tenant_key(harness))


async def ok(api: Api, method: str, path: str, status: int = 200, **kwargs: Any) -> Any:
    """The call's JSON answer (None when empty), after checking its status."""
    response = await api.call(method, path, **kwargs)
    assert response.status_code == status, response.text
    return response.json() if response.content else None


async def refused(
    api: Api,
    method: str,
    path: str,
    body: Any,
    status: int,
    code: str,
    *,
    unchanged: Sequence[str],
) -> str:
    """The refusal's message, after checking its status and ``errorCode``, and that it
    changed nothing: the rows of each ``unchanged`` query and the audit log are as before."""
    before = [await api.harness.rows(query) for query in unchanged]
    audits = await api.harness.count("audit_events")
    response = await api.call(method, path, json=body)
    assert response.status_code == status, response.text
    answer = response.json()
    assert answer["statusCode"] == status and answer["errorCode"] == code, answer
    assert [await api.harness.rows(query) for query in unchanged] == before
    assert await api.harness.count("audit_events") == audits
    message: str = answer["message"]
    return message
