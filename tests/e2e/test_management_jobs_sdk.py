"""Migrating from Auth0 with unmodified auth0-python 6.x against a live ``nopass serve`` over
TLS (docs/specs/management-api.md §7): users exported from Auth0 (``email|5f1c…``) are
imported with the prefix removed (``jobs.users_imports.create``), the job is followed
(``jobs.get``, ``jobs.errors.get``), and an imported user then signs in through the real
OTP flow (``Passwordless`` → SMTP → ``GetToken.passwordless_login``) with the ``sub`` Auth0
gave them. An export (``jobs.users_exports.create``) is downloaded once from its
``location``."""

from __future__ import annotations

import asyncio
import gzip
import json
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from auth0.authentication import GetToken, Passwordless
from auth0.management import ManagementClient
from sqlalchemy import text

from nopass.store.engine import create_engine
from tests.support.config import MACHINE_ID, MACHINE_SECRET, NATIVE_ID, machine_config
from tests.support.harness import prepare_database
from tests.support.live import LiveServer, live_server, nopass_env
from tests.support.services import free_port
from tests.support.smtp import SmtpSink
from tests.support.tls import TlsFiles
from tests.support.tokens import claims_of, email_code

pytestmark = pytest.mark.slow
SCOPES = ["read:users", "create:users"]
# Users as Auth0's own export job writes them (NDJSON, the normalized profile).
AUTH0_EXPORT = [
    {
        "user_id": "email|5f1c8e2a9b3d4c0012345678",
        "email": "ada@acme.example",
        "email_verified": True,
        "given_name": "Ada",
        "created_at": "2023-01-25T19:00:26.539Z",
        "identities": [{"connection": "email", "provider": "email", "isSocial": False}],
        "app_metadata": {"plan": "gold"},
    },
    {
        "user_id": "email|5f1c8e2a9b3d4c0087654321",
        "email": "bob@acme.example",
        "email_verified": False,
        "created_at": "2023-01-26T10:00:00.000Z",
    },
]
IMPORTABLE = ("email", "email_verified", "given_name", "app_metadata", "user_metadata")


def import_file(exported: list[dict[str, Any]]) -> bytes:
    """Auth0's advice: remove the strategy prefix, which the import prepends again; keep the
    properties the import schema allows."""
    users = []
    for user in exported:
        row = {k: v for k, v in user.items() if k in IMPORTABLE}
        row["user_id"] = user["user_id"].removeprefix("email|")
        users.append(row)
    return json.dumps(users).encode()


@pytest.fixture
async def live(
    database_url: str, tls_files: TlsFiles, smtp_sink: SmtpSink, tmp_path: Path
) -> AsyncIterator[Live]:
    port = free_port()
    config = machine_config(f"https://127.0.0.1:{port}", smtp_port=smtp_sink.port)
    config["client_grants"][1]["scope"] = SCOPES
    await prepare_database(database_url, config)
    engine = create_engine(database_url)
    try:  # GET /api/v2/connections would say it too
        async with engine.connect() as conn:
            email = await conn.scalar(text("SELECT id FROM connections WHERE name = 'email'"))
    finally:
        await engine.dispose()
    with live_server(nopass_env(database_url), tmp_path, port=port, tls=tls_files) as live:
        yield Live(live, str(email))


@dataclass(frozen=True)
class Live:
    server: LiveServer
    email_connection: str


def run(call: Any, /, *args: Any, **kwargs: Any) -> Any:
    return asyncio.to_thread(call, *args, **kwargs)


async def finished(client: ManagementClient, job_id: str) -> Any:
    for _ in range(200):
        job = await run(client.jobs.get, job_id)
        if job.status in ("completed", "failed"):
            return job
        await asyncio.sleep(0.1)
    raise AssertionError(f"job {job_id} did not finish")


async def test_users_exported_from_auth0_keep_their_sub(
    live: Live,
    ca_bundle: Path,
    smtp_sink: SmtpSink,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SSL_CERT_FILE", str(ca_bundle))  # httpx: the Management API
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(ca_bundle))  # requests: authentication
    server = live.server
    client = ManagementClient(
        domain=server.domain, client_id=MACHINE_ID, client_secret=MACHINE_SECRET
    )
    accepted = await run(
        client.jobs.users_imports.create,
        users=("users.json", import_file(AUTH0_EXPORT), "application/json"),
        connection_id=live.email_connection,
        upsert=False,
        send_completion_email=False,
    )
    assert accepted.status == "pending" and accepted.id.startswith("job_")
    job = await finished(client, accepted.id)
    assert job.status == "completed"
    assert job.summary is not None and job.summary.inserted == 2 and job.summary.failed == 0
    assert not await run(client.jobs.errors.get, accepted.id)  # []
    ada = await run(client.users.get, "email|5f1c8e2a9b3d4c0012345678")
    assert ada.email == "ada@acme.example" and ada.app_metadata == {"plan": "gold"}

    # the real OTP flow: the code arrives by SMTP, the ID token's sub is Auth0's
    start = Passwordless(server.domain, NATIVE_ID)
    await run(start.email, "ada@acme.example", send="code")
    code = await email_code(smtp_sink, "ada@acme.example", 0)
    tokens = await run(
        GetToken(server.domain, NATIVE_ID).passwordless_login,
        username="ada@acme.example",
        otp=code,
        realm="email",
        scope="openid email",
        audience=None,
    )
    identity = claims_of(tokens["id_token"])
    assert identity["sub"] == AUTH0_EXPORT[0]["user_id"]
    assert identity["email"] == "ada@acme.example"

    # an export of the connection, downloaded once from its location
    export = await run(
        client.jobs.users_exports.create,
        connection_id=live.email_connection,
        format="json",
        fields=[{"name": "user_id"}, {"name": "email"}],
    )
    done = await finished(client, export.id)
    assert done.status == "completed" and done.location is not None
    trusting = ssl.create_default_context(cafile=str(ca_bundle))
    async with httpx.AsyncClient(verify=trusting) as http:
        first = await http.get(done.location)
        again = await http.get(done.location)
    assert first.status_code == 200 and again.status_code == 410
    lines = [json.loads(line) for line in gzip.decompress(first.content).decode().splitlines()]
    assert sorted(str(u["user_id"]) for u in lines) == [str(u["user_id"]) for u in AUTH0_EXPORT]
