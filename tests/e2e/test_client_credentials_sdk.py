"""auth0-python's ``GetToken.client_credentials``, unmodified, against a live ``nopass serve``:
a Management API token and an API token, with a secret and with private_key_jwt, verified
against the tenant's JWKS; and the SDK's ``Auth0Error`` for a refusal.

The tenant answers on the bare host ``127.0.0.1:PORT``, so its issuer is
``https://127.0.0.1:PORT/`` and its Management API audience ``https://127.0.0.1:PORT/api/v2/``
(what the SDKs build from a domain), while the SDK talks plain HTTP with ``protocol="http"``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from auth0.authentication import GetToken
from auth0.authentication.exceptions import Auth0Error

from tests.support.config import (
    API_ID,
    JWT_ID,
    MACHINE_ID,
    MACHINE_SECRET,
    WEB_ID,
    WEB_SECRET,
    machine_config,
)
from tests.support.harness import prepare_database
from tests.support.live import LiveServer, live_server, nopass_env
from tests.support.services import free_port
from tests.support.tokens import KeyPair, generate_keypair, jwks_of, verify_with

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def keys() -> KeyPair:
    return generate_keypair()


@pytest.fixture
async def server(database_url: str, keys: KeyPair, tmp_path: Path) -> AsyncIterator[LiveServer]:
    port = free_port()
    config = machine_config(f"127.0.0.1:{port}", public_key_pem=keys.public_pem)
    [jwt_app] = [c for c in config["clients"] if c["client_id"] == JWT_ID]
    jwt_app["grant_types"] = ["client_credentials"]
    config["client_grants"].append(
        {"client_id": JWT_ID, "audience": management(port), "scope": ["read:clients"]}
    )
    await prepare_database(database_url, config)
    with live_server(nopass_env(database_url), tmp_path, port=port) as live:
        yield live


def management(port: int) -> str:
    return f"https://127.0.0.1:{port}/api/v2/"


async def verified(server: LiveServer, answer: dict[str, Any], audience: str) -> dict[str, Any]:
    assert set(answer) == {"access_token", "expires_in", "scope", "token_type"}
    async with httpx.AsyncClient(base_url=server.url) as http:
        jwks = await jwks_of(http)
    issuer = f"https://{server.domain}/"
    claims = verify_with(answer["access_token"], jwks, audience=audience, issuer=issuer)
    assert claims["gty"] == "client-credentials" and claims["scope"] == answer["scope"]
    return claims


async def test_a_management_api_token_with_a_secret(server: LiveServer) -> None:
    sdk = GetToken(server.domain, MACHINE_ID, client_secret=MACHINE_SECRET, protocol="http")
    audience = management(server.port)
    answer = await asyncio.to_thread(sdk.client_credentials, audience)
    assert (answer["expires_in"], answer["token_type"]) == (86400, "Bearer")
    claims = await verified(server, answer, audience)
    assert claims["sub"] == MACHINE_ID + "@clients" and claims["aud"] == audience
    assert claims["scope"] == "read:users read:logs"


async def test_an_api_token(server: LiveServer) -> None:
    sdk = GetToken(server.domain, MACHINE_ID, client_secret=MACHINE_SECRET, protocol="http")
    answer = await asyncio.to_thread(sdk.client_credentials, API_ID)
    assert answer["expires_in"] == 7200
    claims = await verified(server, answer, API_ID)
    assert claims["scope"] == "read:things write:things"


async def test_private_key_jwt(server: LiveServer, keys: KeyPair) -> None:
    sdk = GetToken(
        server.domain, JWT_ID, client_assertion_signing_key=keys.private_pem, protocol="http"
    )
    audience = management(server.port)
    claims = await verified(
        server, await asyncio.to_thread(sdk.client_credentials, audience), audience
    )
    assert claims["azp"] == JWT_ID and claims["scope"] == "read:clients"


async def test_the_sdk_raises_auth0s_errors(server: LiveServer) -> None:
    wrong = GetToken(server.domain, MACHINE_ID, client_secret="wrong-secret-0123", protocol="http")
    with pytest.raises(Auth0Error) as refused:
        await asyncio.to_thread(wrong.client_credentials, API_ID)
    assert (refused.value.status_code, refused.value.error_code) == (401, "access_denied")
    web = GetToken(server.domain, WEB_ID, client_secret=WEB_SECRET, protocol="http")
    with pytest.raises(Auth0Error) as refused:
        await asyncio.to_thread(web.client_credentials, API_ID)
    assert (refused.value.status_code, refused.value.error_code) == (403, "unauthorized_client")
