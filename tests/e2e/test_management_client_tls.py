"""auth0-python 6.x ``ManagementClient(domain, client_id, client_secret)``, unmodified, against
a live ``nopass serve`` over TLS: it gets its own Management API token by the
client-credentials grant at ``https://{domain}/oauth/token`` and calls ``/api/v2`` on the same
hard-coded https (docs/specs/management-api.md §1.1, §2.1). Its HTTP is httpx, which trusts
the CA named by ``SSL_CERT_FILE`` (auth0-python's Authentication API uses requests:
``REQUESTS_CA_BUNDLE``)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from auth0.management import ManagementClient
from auth0.management.errors import ForbiddenError, NotFoundError

from tests.support.config import MACHINE_ID, MACHINE_SECRET, machine_config
from tests.support.harness import prepare_database
from tests.support.live import LiveServer, live_server, nopass_env
from tests.support.services import free_port
from tests.support.tls import TlsFiles

pytestmark = pytest.mark.slow
SCOPES = ["read:users", "create:users", "update:users", "delete:users", "read:logs"]


@pytest.fixture
async def server(
    database_url: str, tls_files: TlsFiles, tmp_path: Path
) -> AsyncIterator[LiveServer]:
    port = free_port()
    config = machine_config(f"https://127.0.0.1:{port}")
    config["client_grants"][1]["scope"] = SCOPES
    await prepare_database(database_url, config)
    with live_server(nopass_env(database_url), tmp_path, port=port, tls=tls_files) as live:
        yield live


def run(call: Any, /, *args: Any, **kwargs: Any) -> Any:
    return asyncio.to_thread(call, *args, **kwargs)


async def test_the_management_client_gets_its_token_and_manages_users_over_https(
    server: LiveServer, ca_bundle: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SSL_CERT_FILE", str(ca_bundle))
    client = ManagementClient(
        domain=server.domain, client_id=MACHINE_ID, client_secret=MACHINE_SECRET
    )
    created = await run(
        client.users.create, connection="email", email="ada@acme.example", given_name="Ada"
    )
    assert created.user_id is not None and created.user_id.startswith("email|")
    got = await run(client.users.get, created.user_id)
    assert got.email == "ada@acme.example" and got.given_name == "Ada"
    await run(client.users.update, created.user_id, app_metadata={"plan": "gold"})
    listed = await run(client.users.list, q='app_metadata.plan:"gold"')
    assert [u.user_id for u in listed] == [created.user_id]
    logs = await run(client.logs.list)
    assert any(e.type == "sapi" for e in logs)
    await run(client.users.delete, created.user_id)
    with pytest.raises(NotFoundError):
        await run(client.users.get, created.user_id)


async def test_a_scope_outside_the_grant_is_forbidden(
    server: LiveServer, ca_bundle: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SSL_CERT_FILE", str(ca_bundle))
    client = ManagementClient(
        domain=server.domain, client_id=MACHINE_ID, client_secret=MACHINE_SECRET
    )
    with pytest.raises(ForbiddenError) as refused:
        await run(client.users.sessions.delete, "email|nobody")  # delete:sessions: not granted
    assert refused.value.status_code == 403
