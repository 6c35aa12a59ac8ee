"""``nopass serve --ssl-certfile --ssl-keyfile``: a live server, with one worker and with two,
answers over HTTPS only, with a certificate a throwaway CA signed (``tests/support/tls.py``),
and auth0-python, unmodified, signs in against it on its default ``https`` protocol once
``REQUESTS_CA_BUNDLE`` names the CA (``docs/specs/management-api.md`` §1.1: the SDKs
hard-code ``https://{domain}``)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from auth0.authentication import GetToken, Passwordless
from auth0.authentication.token_verifier import AsymmetricSignatureVerifier, TokenVerifier

from tests.support.config import NATIVE_ID
from tests.support.harness import prepare_database
from tests.support.live import LiveServer, live_server, nopass_env
from tests.support.services import free_port
from tests.support.smtp import SmtpSink
from tests.support.tls import KEY_PASSWORD, TlsFiles
from tests.support.tokens import API, email_code, login_config, mails_to

pytestmark = pytest.mark.slow

T = TypeVar("T")


def https_config(port: int, smtp_port: int | None = None) -> dict[str, Any]:
    """The tenant on ``https://127.0.0.1:PORT`` and ``https://localhost:PORT``."""
    config = login_config(f"https://127.0.0.1:{port}", smtp_port=smtp_port)
    config["tenant"]["domains"].append(f"https://localhost:{port}")
    return config


@pytest.mark.parametrize(("workers", "encrypted"), [(1, False), (2, True)])
async def test_serves_https_only_with_its_certificate(
    sqlite_url: str, tls_files: TlsFiles, tmp_path: Path, workers: int, encrypted: bool
) -> None:
    """With two workers the key is the encrypted one, its password in the environment."""
    port = free_port()
    await prepare_database(sqlite_url, https_config(port))
    env = nopass_env(sqlite_url)
    key = tls_files.key
    if encrypted:
        env["NOPASS_SSL_KEYFILE_PASSWORD"] = KEY_PASSWORD
        key = tls_files.encrypted_key
    serving = live_server(env, tmp_path, port=port, workers=workers, tls=tls_files, tls_key=key)
    with serving as server:
        assert server.url == f"https://127.0.0.1:{port}"
        assert f"Uvicorn running on https://127.0.0.1:{port}" in server.logs()
        async with httpx.AsyncClient(verify=tls_files.trusting()) as https:
            for host in ("127.0.0.1", "localhost"):  # both names of the certificate
                got = await https.get(f"https://{host}:{port}/.well-known/openid-configuration")
                assert got.status_code == 200, got.text
                document = got.json()
                assert document["issuer"] == f"https://{host}:{port}/"
                assert document["token_endpoint"] == f"https://{host}:{port}/oauth/token"
            for _ in range(8):  # every worker answers over TLS
                again = await https.get(f"https://127.0.0.1:{port}/.well-known/jwks.json")
                assert again.status_code == 200
        async with httpx.AsyncClient() as untrusting:  # the system's CAs do not know ours
            with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
                await untrusting.get(f"https://127.0.0.1:{port}/health/live")
        async with httpx.AsyncClient() as plain:  # no plain HTTP on the TLS port
            with pytest.raises(httpx.TransportError):
                await plain.get(f"http://127.0.0.1:{port}/health/live", timeout=5)
        assert server.process.poll() is None  # nor did it hurt the server
        async with httpx.AsyncClient(verify=tls_files.trusting()) as https:
            assert (await https.get(f"{server.url}/health/live")).status_code == 200


async def call(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """auth0-python is synchronous (requests): keep it off the event loop."""
    return await asyncio.to_thread(fn, *args, **kwargs)


@pytest.fixture
async def server(
    database_url: str, smtp_sink: SmtpSink, tls_files: TlsFiles, tmp_path: Path
) -> AsyncIterator[LiveServer]:
    port = free_port()
    await prepare_database(database_url, https_config(port, smtp_sink.port))
    env = nopass_env(database_url)
    with live_server(env, tmp_path, port=port, workers=2, tls=tls_files) as live:
        yield live


async def test_auth0_python_signs_in_over_https_with_the_ca_bundle(
    server: LiveServer, smtp_sink: SmtpSink, ca_bundle: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(ca_bundle))
    domain = server.domain  # 127.0.0.1:PORT; the SDK builds https://{domain}/...
    seen = mails_to(smtp_sink, "ada@example.com")
    started = await call(Passwordless(domain, NATIVE_ID).email, "ada@example.com", send="code")
    assert started["email"] == "ada@example.com"
    code = await email_code(smtp_sink, "ada@example.com", seen)
    tokens = await call(
        GetToken(domain, NATIVE_ID).passwordless_login,
        username="ada@example.com",
        otp=code,
        realm="email",
        scope="openid email",
        audience=API,
    )
    assert tokens["token_type"] == "Bearer"
    verifier = TokenVerifier(
        signature_verifier=AsymmetricSignatureVerifier(f"https://{domain}/.well-known/jwks.json"),
        issuer=f"https://{domain}/",
        audience=NATIVE_ID,
    )
    identity = await call(verifier.verify, tokens["id_token"])  # JWKS fetched over https too
    assert identity["email"] == "ada@example.com"
    assert identity["iss"] == f"https://{domain}/"
