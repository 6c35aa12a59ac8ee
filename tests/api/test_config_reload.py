"""A running server sees `nopass apply` changes without a restart (config cache revision)."""

from __future__ import annotations

import asyncio
import time

from tests.support.config import CALLBACK, NATIVE_ID, tenant_config
from tests.support.harness import prepare_database, running_app

ORIGIN = "http://127.0.0.1:8123"


async def test_apply_reaches_a_running_server_within_seconds(database_url: str) -> None:
    new_callback = "https://app.acme.example/other-callback"
    body = {
        "client_id": NATIVE_ID,
        "connection": "email",
        "email": "a@example.com",
        "authParams": {"redirect_uri": new_callback},
    }
    config = tenant_config(ORIGIN)
    async with running_app(database_url, config) as app:
        assert (await app.start(body)).status_code == 400
        config["clients"][0]["callbacks"] = [CALLBACK, new_callback]
        config["tenant"]["domains"].append("http://login.acme.example")
        await prepare_database(database_url, config)
        deadline = time.monotonic() + 5
        while (response := await app.start(body)).status_code != 200:
            assert time.monotonic() < deadline, response.text
            await asyncio.sleep(0.1)
        other_host = await app.start(body, headers={"host": "login.acme.example"})
        assert other_host.status_code == 200
