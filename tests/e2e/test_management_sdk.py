"""auth0-python 6.x (Fern), unmodified, against a live ``nopass serve``: the Management API's
users endpoints. ``Auth0(base_url=...)`` takes the base URL, so plain HTTP works; the
classic ``Auth0(domain, token)`` wrapper hard-codes https and waits for TLS in ``serve``.

The tenant answers on the bare host ``127.0.0.1:PORT``, so its issuer is
``https://127.0.0.1:PORT/`` and the Management API's audience ``https://127.0.0.1:PORT/api/v2/``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from auth0.management import Auth0
from auth0.management.core.api_error import ApiError
from auth0.management.errors import ConflictError, ForbiddenError, NotFoundError
from sqlalchemy import text

from nopass.core.clock import SystemClock
from nopass.core.keyring import Keyring
from nopass.core.models import SigningKey
from nopass.store.config import ConfigCache
from nopass.store.engine import create_engine
from nopass.store.keys import SqlKeyStore
from tests.support.config import tenant_config
from tests.support.harness import TEST_SECRET, prepare_database
from tests.support.live import LiveServer, live_server, nopass_env
from tests.support.management import ALL, token
from tests.support.services import free_port

pytestmark = pytest.mark.slow


@pytest.fixture
async def server(database_url: str, tmp_path: Path) -> AsyncIterator[Live]:
    port = free_port()
    await prepare_database(database_url, tenant_config(f"127.0.0.1:{port}"))
    engine = create_engine(database_url)
    try:
        cache = ConfigCache(engine)
        resolved = await cache.resolve(f"127.0.0.1:{port}")
        assert resolved is not None
        keys = SqlKeyStore(engine, Keyring([TEST_SECRET.encode()]), cache, SystemClock())
        key = await keys.signing_key(resolved.config.tenant.id)
    finally:
        await engine.dispose()
    with live_server(nopass_env(database_url), tmp_path, port=port) as live:
        yield Live(live, key, resolved.origin, database_url)


@dataclass(frozen=True)
class Live:
    server: LiveServer
    key: SigningKey
    origin: str
    database_url: str

    def sdk(self, scopes: tuple[str, ...] = ALL) -> Auth0:
        bearer = token(self.key, scopes, origin=self.origin)
        return Auth0(base_url=f"{self.server.url}/api/v2", token=bearer, max_retries=0)


@pytest.fixture
def sdk(server: Live) -> Iterator[Auth0]:
    yield server.sdk()


def run(call: Any, /, **kwargs: Any) -> Any:
    return asyncio.to_thread(call, **kwargs)


async def test_users_through_the_sdk(sdk: Auth0) -> None:
    created = await run(
        sdk.users.create,
        connection="email",
        email="Ada@Acme.example",
        given_name="Ada",
        user_metadata={"color": "red"},
    )
    assert created.user_id is not None and created.user_id.startswith("email|")
    assert created.email == "ada@acme.example"
    assert created.identities is not None and created.identities[0].provider == "email"

    fetched = await run(sdk.users.get, id=created.user_id)
    assert fetched.given_name == "Ada" and fetched.user_metadata == {"color": "red"}

    updated = await run(
        sdk.users.update, id=created.user_id, app_metadata={"plan": "gold"}, nickname="countess"
    )
    assert updated.app_metadata == {"plan": "gold"} and updated.nickname == "countess"

    found = await run(sdk.users.list_users_by_email, email="ada@acme.example")
    assert [u.user_id for u in found] == [created.user_id]

    await run(sdk.users.create, connection="sms", phone_number="+15005550006")
    pager = await run(sdk.users.list, per_page=1)  # the pager walks pages until one is empty
    listed = await asyncio.to_thread(lambda: [u.user_id for u in pager])
    assert len(listed) == 2 and listed[0] == created.user_id

    with pytest.raises(ConflictError):
        await run(sdk.users.create, connection="email", email="ada@acme.example")

    await run(sdk.users.delete, id=created.user_id)
    with pytest.raises(NotFoundError) as caught:
        await run(sdk.users.get, id=created.user_id)
    assert caught.value.body["errorCode"] == "inexistent_user"


async def test_headers_and_refusals_over_http(server: Live) -> None:
    bearer = token(server.key, origin=server.origin)
    async with httpx.AsyncClient(base_url=server.server.url) as client:
        response = await client.get(
            "/api/v2/users?include_totals=true", headers={"Authorization": f"Bearer {bearer}"}
        )
        assert response.status_code == 200
        assert response.json()["total"] == 0
        for name in ("x-ratelimit-limit", "x-ratelimit-remaining", "x-ratelimit-reset"):
            assert name in response.headers
        response = await client.get("/api/v2/users/email%7Cnobody")
        assert response.status_code == 401
        assert response.json()["errorCode"] == "invalid_token"


async def test_insufficient_scope_through_the_sdk(server: Live) -> None:
    reader = server.sdk(("read:users",))
    assert list(await run(reader.users.list)) == []
    with pytest.raises(ForbiddenError) as caught:
        await run(reader.users.create, connection="email", email="ada@acme.example")
    assert caught.value.body["message"] == "Insufficient scope, expected any of: create:users"


async def seed_session_and_token(database_url: str, user_id: str) -> None:
    """A session and a refresh token of the user, as a sign-in leaves them."""
    engine = create_engine(database_url)
    now = datetime.now(UTC)
    try:
        async with engine.begin() as conn:
            tenant = (await conn.execute(text("SELECT id FROM tenants"))).scalar_one()
            values = {"t": tenant, "u": user_id, "now": now, "later": now + timedelta(days=1)}
            await conn.execute(
                text(
                    "INSERT INTO sessions (id, tenant_id, token_hash, user_id, created_at,"
                    " expires_at) VALUES ('s1', :t, 'hs1', :u, :now, :later)"
                ),
                values,
            )
            await conn.execute(
                text(
                    "INSERT INTO refresh_tokens (id, tenant_id, token_hash, family_id, client_id,"
                    " user_id, scope, created_at) VALUES ('r1', :t, 'hr1', 'r1', 'c', :u,"
                    " 'openid', :now)"
                ),
                values,
            )
    finally:
        await engine.dispose()


async def test_sessions_and_refresh_tokens_through_the_sdk(server: Live, sdk: Auth0) -> None:
    user = await run(sdk.users.create, connection="email", email="ada@acme.example")
    assert user.user_id is not None
    await seed_session_and_token(server.database_url, user.user_id)
    session = await run(sdk.sessions.get, id="s1")
    assert session.user_id == user.user_id and session.expires_at is not None
    grant = await run(sdk.refresh_tokens.get, id="r1")
    assert grant.user_id == user.user_id and grant.client_id == "c"
    await run(sdk.users.revoke_access, id=user.user_id, preserve_refresh_tokens=True)
    with pytest.raises(NotFoundError) as caught:
        await run(sdk.sessions.get, id="s1")
    assert caught.value.body["errorCode"] == "inexistent_session"
    await run(sdk.refresh_tokens.delete, id="r1")
    with pytest.raises(NotFoundError):
        await run(sdk.refresh_tokens.get, id="r1")
    with pytest.raises(ApiError) as deleted:  # the Fern client lists no 404 for a delete
        await run(sdk.sessions.delete, id="s1")
    assert deleted.value.status_code == 404
