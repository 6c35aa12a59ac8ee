"""auth0-python, unmodified, against a live ``nopass serve``: Auth0's SDK is the oracle.

The tenant answers on the bare host ``127.0.0.1:PORT`` (so its issuer is
``https://127.0.0.1:PORT/``, the audience auth0-python puts in client assertions), while the
SDK talks plain HTTP to it with ``protocol="http"``.
"""

from __future__ import annotations

import asyncio
import base64
import json
import re
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from auth0.authentication import Passwordless
from auth0.authentication.exceptions import Auth0Error
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.support.config import JWT_ID, NATIVE_ID, WEB_ID, WEB_SECRET, tenant_config
from tests.support.harness import prepare_database
from tests.support.live import LiveServer, live_server, nopass_env
from tests.support.services import free_port
from tests.support.sms_gateway import Gateway
from tests.support.smtp import SmtpSink
from tests.support.tokens import KeyPair, generate_keypair

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def keys() -> KeyPair:
    return generate_keypair()


@pytest.fixture
async def server(
    database_url: str, smtp_sink: SmtpSink, gateway: Gateway, keys: KeyPair, tmp_path: Path
) -> AsyncIterator[LiveServer]:
    port = free_port()
    config = tenant_config(
        f"127.0.0.1:{port}",
        smtp_port=smtp_sink.port,
        sms={"provider": "sms_gateway", "gateway_url": gateway.url, "from": "+15550001111"},
        public_key_pem=keys.public_pem,
    )
    await prepare_database(database_url, config)
    with live_server(nopass_env(database_url), tmp_path, port=port) as live:
        yield live


def passwordless(server: LiveServer, client_id: str, **kwargs: Any) -> Passwordless:
    return Passwordless(server.domain, client_id, protocol="http", **kwargs)


async def test_email_code_and_link(server: LiveServer, smtp_sink: SmtpSink) -> None:
    client = passwordless(server, NATIVE_ID)
    answer = await asyncio.to_thread(client.email, "Grace@Example.com", "code")
    assert answer["email"] == "grace@example.com"
    assert answer["email_verified"] is False
    [mail] = await smtp_sink.wait_for(1)
    assert mail.recipients == ["grace@example.com"]
    assert re.search(r"\b\d{6}\b", mail.text())

    answer = await asyncio.to_thread(client.email, "grace@example.com", "link", {"state": "abc"})
    [_, mail] = await smtp_sink.wait_for(2)
    link = re.search(r"https://\S+/passwordless/verify_redirect\?\S+", mail.text())
    assert link is not None
    assert link.group(0).startswith(f"https://{server.domain}/passwordless/verify_redirect?")
    assert "state=abc" in link.group(0)
    assert re.search(r"verification_code=\d{6}&connection=email&client_id=", link.group(0))


async def test_sms_code_through_the_gateway(server: LiveServer, gateway: Gateway) -> None:
    client = passwordless(server, NATIVE_ID)
    answer = await asyncio.to_thread(client.sms, "+15557654321")
    assert answer["phone_number"] == "+15557654321"
    assert answer["phone_verified"] is False
    [request] = gateway.requests
    payload = request.json()
    assert payload["recipient"] == "+15557654321"
    assert payload["sender"] == "+15550001111"
    assert re.search(r"\b\d{6}\b", payload["body"])
    assert "Native App" in payload["body"]


async def test_confidential_client_with_its_secret(server: LiveServer, smtp_sink: SmtpSink) -> None:
    good = passwordless(server, WEB_ID, client_secret=WEB_SECRET)
    await asyncio.to_thread(good.email, "web@example.com", "code")
    await smtp_sink.wait_for(1)
    bad = passwordless(server, WEB_ID, client_secret="not-the-secret-at-all")
    with pytest.raises(Auth0Error) as caught:
        await asyncio.to_thread(bad.email, "web@example.com", "code")
    assert caught.value.status_code == 401
    assert caught.value.error_code == "access_denied"
    assert caught.value.message == "Unauthorized"


async def test_confidential_client_with_private_key_jwt(
    server: LiveServer, smtp_sink: SmtpSink, keys: KeyPair
) -> None:
    client = passwordless(server, JWT_ID, client_assertion_signing_key=keys.private_pem)
    await asyncio.to_thread(client.email, "jwt@example.com", "code")
    await asyncio.to_thread(client.email, "jwt@example.com", "code")  # a fresh jti each time
    await smtp_sink.wait_for(2)


def assertion(server: LiveServer, private_pem: str, **overrides: Any) -> str:
    now = datetime.now(UTC)
    claims: dict[str, Any] = {
        "iss": JWT_ID,
        "sub": JWT_ID,
        "aud": f"https://{server.domain}/",
        "iat": now,
        "exp": now + timedelta(seconds=120),
        "jti": str(uuid.uuid4()),
    }
    claims.update(overrides)
    return jwt.encode({k: v for k, v in claims.items() if v is not None}, private_pem, "RS256")


def unsigned(server: LiveServer) -> str:
    def part(value: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")

    now = int(datetime.now(UTC).timestamp())
    claims = {
        "iss": JWT_ID,
        "sub": JWT_ID,
        "aud": f"https://{server.domain}/",
        "iat": now,
        "exp": now + 60,
        "jti": str(uuid.uuid4()),
    }
    return f"{part({'alg': 'none', 'typ': 'JWT'})}.{part(claims)}."


async def test_private_key_jwt_refusals(server: LiveServer, keys: KeyPair) -> None:
    other_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    other_pem = other_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()

    async def start(token: str, assertion_type: str | None = None) -> httpx.Response:
        async with httpx.AsyncClient(base_url=server.url) as http:
            return await http.post(
                "/passwordless/start",
                json={
                    "client_id": JWT_ID,
                    "connection": "email",
                    "email": "jwt@example.com",
                    "client_assertion": token,
                    "client_assertion_type": assertion_type
                    or "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                },
            )

    replayed = assertion(server, keys.private_pem)
    assert (await start(replayed)).status_code == 200
    refused = {
        "replayed jti": await start(replayed),
        "wrong key": await start(assertion(server, other_pem)),
        "wrong audience": await start(assertion(server, keys.private_pem, aud="https://x/")),
        "expired": await start(
            assertion(server, keys.private_pem, exp=datetime.now(UTC) - timedelta(minutes=5))
        ),
        "no jti": await start(assertion(server, keys.private_pem, jti=None)),
        "wrong sub": await start(assertion(server, keys.private_pem, sub="someone-else")),
        "too long-lived": await start(
            assertion(server, keys.private_pem, exp=datetime.now(UTC) + timedelta(hours=2))
        ),
        "wrong type": await start(assertion(server, keys.private_pem), "urn:other"),
        "alg none": await start(unsigned(server)),
    }
    for case, response in refused.items():
        assert response.status_code == 401, case
        assert response.json() == {"error": "access_denied", "error_description": "Unauthorized"}


async def test_sdk_sees_auth0_errors(server: LiveServer) -> None:
    client = passwordless(server, NATIVE_ID)
    with pytest.raises(Auth0Error) as caught:
        await asyncio.to_thread(client.email, "not an email", "code")
    assert (caught.value.status_code, caught.value.error_code) == (400, "bad.email")
    with pytest.raises(Auth0Error) as caught:
        await asyncio.to_thread(client.sms, "555-1234")
    assert (caught.value.status_code, caught.value.error_code) == (400, "bad.phone_number")
    unknown = passwordless(server, "no-such-client")
    with pytest.raises(Auth0Error) as caught:
        await asyncio.to_thread(unknown.email, "a@example.com", "code")
    assert caught.value.error_code == "bad.client_id"


def _files_of(database_url: str) -> Iterator[Path]:
    if database_url.startswith("sqlite:///"):
        base = Path(database_url.removeprefix("sqlite:///"))
        for suffix in ("", "-wal", "-shm"):
            path = base.with_name(base.name + suffix)
            if path.exists():
                yield path


async def test_code_never_stored_or_logged(
    server: LiveServer, smtp_sink: SmtpSink, gateway: Gateway, database_url: str
) -> None:
    client = passwordless(server, NATIVE_ID)
    await asyncio.to_thread(client.email, "secret@example.com", "link")
    await asyncio.to_thread(client.sms, "+15550009999")
    [mail] = await smtp_sink.wait_for(1)
    email_code = re.search(r"verification_code=(\d{6})", mail.text())
    sms_code = re.search(r"\b(\d{6})\b", gateway.requests[0].json()["body"])
    assert email_code is not None and sms_code is not None
    server.stop()  # flush everything to disk
    logs = server.logs()
    assert "/passwordless/start" in logs
    for code in (email_code.group(1), sms_code.group(1)):
        assert code not in logs
        for path in _files_of(database_url):
            assert code.encode() not in path.read_bytes(), path
