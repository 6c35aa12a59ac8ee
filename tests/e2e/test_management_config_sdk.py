"""auth0-python 6.x ``ManagementClient(domain, client_id, client_secret)``, unmodified, against
a live ``nopass serve`` over TLS: clients, resource servers, client grants and tenant
settings (docs/specs/management-api.md §2.3, §5.1, §5.3, §5.4); a client the SDK creates,
granted by the SDK, then gets its own client-credentials token."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from auth0.management import ManagementClient
from auth0.management.errors import ConflictError, ForbiddenError, NotFoundError
from auth0.management.types import ResourceServerScope

from nopass.core.management import MANAGEMENT_SCOPES
from tests.support.config import MACHINE_ID, MACHINE_SECRET, machine_config
from tests.support.harness import prepare_database
from tests.support.live import LiveServer, live_server, nopass_env
from tests.support.services import free_port
from tests.support.tls import TlsFiles

pytestmark = pytest.mark.slow
ORDERS = "https://orders.acme.example/"


@pytest.fixture
async def server(
    database_url: str, tls_files: TlsFiles, tmp_path: Path
) -> AsyncIterator[LiveServer]:
    port = free_port()
    config = machine_config(f"https://127.0.0.1:{port}")
    config["client_grants"][1]["scope"] = list(MANAGEMENT_SCOPES)
    await prepare_database(database_url, config)
    with live_server(nopass_env(database_url), tmp_path, port=port, tls=tls_files) as live:
        yield live


@pytest.fixture
def client(
    server: LiveServer, ca_bundle: Path, monkeypatch: pytest.MonkeyPatch
) -> ManagementClient:
    monkeypatch.setenv("SSL_CERT_FILE", str(ca_bundle))
    return ManagementClient(
        domain=server.domain, client_id=MACHINE_ID, client_secret=MACHINE_SECRET
    )


def run(call: Any, /, *args: Any, **kwargs: Any) -> Any:
    return asyncio.to_thread(call, *args, **kwargs)


def listed(pager: Any) -> list[Any]:
    return list(pager)


async def test_configuration_through_the_sdk(
    server: LiveServer, client: ManagementClient, ca_bundle: Path
) -> None:
    management = f"https://{server.domain}/api/v2/"
    apis = await run(listed, await run(client.resource_servers.list))
    assert apis[0].name == "Auth0 Management API" and apis[0].identifier == management
    assert apis[0].is_system is True

    api = await run(
        client.resource_servers.create,
        identifier=ORDERS,
        name="Orders",
        scopes=[ResourceServerScope(value="read:orders", description="Read orders")],
        token_lifetime=3600,
    )
    assert api.id is not None and len(api.id) == 24
    api = await run(client.resource_servers.update, api.id, name="Orders API")
    assert api.name == "Orders API"
    assert (await run(client.resource_servers.get, api.id)).identifier == ORDERS

    worker = await run(
        client.clients.create,
        name="Orders Worker",
        app_type="non_interactive",
        description="Ships orders",
        client_metadata={"team": "shipping"},
    )
    assert worker.client_id is not None and worker.client_secret is not None
    with pytest.raises(ConflictError):
        await run(client.clients.create, name="Orders Worker")
    updated = await run(client.clients.update, worker.client_id, description="Ships them fast")
    assert updated.description == "Ships them fast" and updated.client_metadata == {
        "team": "shipping"
    }
    names = [c.name for c in await run(listed, await run(client.clients.list, per_page=2))]
    assert "Orders Worker" in names and "Machine App" in names

    grant = await run(
        client.client_grants.create,
        client_id=worker.client_id,
        audience=ORDERS,
        scope=["read:orders"],
    )
    assert grant.id is not None and grant.id.startswith("cgr_")
    grants = await run(listed, await run(client.client_grants.list, audience=ORDERS))
    assert [g.id for g in grants] == [grant.id]
    everything = await run(listed, await run(client.client_grants.list, take=1))
    assert grant.id in [g.id for g in everything] and len(everything) == 3

    async with httpx.AsyncClient(verify=ssl.create_default_context(cafile=str(ca_bundle))) as http:
        answer = await http.post(
            f"https://{server.domain}/oauth/token",
            data={
                "grant_type": "client_credentials",
                "client_id": worker.client_id,
                "client_secret": worker.client_secret,
                "audience": ORDERS,
            },
        )
    assert answer.status_code == 200, answer.text
    assert answer.json()["scope"] == "read:orders" and answer.json()["expires_in"] == 3600

    rotated = await run(client.clients.rotate_secret, worker.client_id)
    assert rotated.client_secret not in (None, worker.client_secret)

    settings = await run(
        client.tenants.settings.update,
        friendly_name="Acme",
        support_email="help@acme.example",
        default_audience=ORDERS,
    )
    assert settings.friendly_name == "Acme" and settings.default_audience == ORDERS
    got = await run(client.tenants.settings.get)
    assert got.support_email == "help@acme.example"

    await run(client.client_grants.delete, grant.id)
    await run(client.resource_servers.delete, api.id)
    await run(client.clients.delete, worker.client_id)
    with pytest.raises(NotFoundError) as missing:
        await run(client.clients.get, worker.client_id)
    assert missing.value.body["errorCode"] == "inexistent_client"
    with pytest.raises(ForbiddenError):
        await run(client.resource_servers.delete, apis[0].id)
