"""``GET /client/{client_id}.js`` for Lock (docs/specs/auth0-wire.md §5.8)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.support.harness import Harness, running_app
from tests.support.spa import EMAIL_SPA_ID, SPA_ID, config


@pytest.fixture
async def app(database_url: str) -> AsyncIterator[Harness]:
    async with running_app(database_url, config()) as harness:
        yield harness


async def test_lock_client_script(app: Harness) -> None:
    response = await app.client.get(f"/client/{SPA_ID}.js?t1700000000000")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/javascript")
    assert response.text == (
        'Auth0.setClient({"id":"spa-app-client-id","tenant":"acme","subscription":"free",'
        '"strategies":[{"name":"email","connections":[{"name":"email"}]},'
        '{"name":"sms","connections":[{"name":"sms"}]}]});\n'
    )
    email_only = await app.client.get(f"/client/{EMAIL_SPA_ID}.js")
    assert '"strategies":[{"name":"email","connections":[{"name":"email"}]}]' in email_only.text
    none = await app.client.get("/client/other-app-client-id.js")
    assert '"strategies":[]' in none.text
    missing = await app.client.get("/client/no-such-client.js")
    assert missing.status_code == 404
    assert missing.headers["content-type"].startswith("application/javascript")
    assert "Auth0.setClient" not in missing.text
