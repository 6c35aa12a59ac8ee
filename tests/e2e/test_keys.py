"""Signing keys over a live ``nopass serve``: they survive restarts, rotate without breaking
issued tokens, and ``/userinfo`` accepts nothing but our own RS256 access tokens
(docs/specs/security.md §6 "Tokens" and "Durability"; RFC 8725 §3.1-3.2; ASVS 5.0 9.1.1-9.1.3,
9.2.2).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
from collections.abc import AsyncIterator, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.config import NATIVE_ID
from tests.support.harness import prepare_database
from tests.support.live import LiveServer, live_server, nopass_cli, nopass_env
from tests.support.services import free_port
from tests.support.smtp import SmtpSink
from tests.support.tokens import (
    API,
    PRIVATE_JWK_MEMBERS,
    KeyPair,
    claims_of,
    email_login,
    generate_keypair,
    header_of,
    hs256_token,
    jwk_of,
    jwks_of,
    kid_of,
    login_config,
    otp_body,
    public_pem,
    rs256_token,
    start_email,
    tamper,
    unsigned_token,
    verify_with,
)

pytestmark = pytest.mark.slow

INVALID_TOKEN = 'Bearer error="invalid_token"'
BETA_NATIVE_ID = "beta-" + NATIVE_ID


def issuer(server: LiveServer) -> str:
    return f"https://{server.domain}/"


async def userinfo(http: httpx.AsyncClient, token: str, scheme: str = "Bearer") -> httpx.Response:
    return await http.get("/userinfo", headers={"Authorization": f"{scheme} {token}"})


def assert_jwks_shape(keys: list[dict[str, Any]]) -> None:
    for key in keys:
        assert {"kty": "RSA", "use": "sig", "alg": "RS256"}.items() <= key.items()
        assert key["kid"] and key["n"] and key["e"] == "AQAB"
        assert not set(PRIVATE_JWK_MEMBERS) & key.keys(), "private key material published"
    assert len({k["kid"] for k in keys}) == len(keys)


async def test_keys_tokens_and_pending_codes_survive_a_restart(
    database_url: str, smtp_sink: SmtpSink, tmp_path: Path
) -> None:
    port = free_port()
    await prepare_database(
        database_url, login_config(f"127.0.0.1:{port}", smtp_port=smtp_sink.port)
    )
    env = nopass_env(database_url)
    email = "keep@example.com"
    with live_server(env, tmp_path, port=port) as first:
        async with httpx.AsyncClient(base_url=first.url) as http:
            tokens = await email_login(http, smtp_sink, email)
            keys_before = await jwks_of(http)
            pending = await start_email(http, smtp_sink, email)  # issued, not yet used
            sub = (await userinfo(http, tokens["access_token"])).json()["sub"]
        exit_status = first.stop()  # SIGTERM
    assert "Application shutdown complete" in first.logs()
    assert_jwks_shape(keys_before)
    [key] = keys_before
    assert kid_of(tokens["access_token"]) == kid_of(tokens["id_token"]) == key["kid"]

    with live_server(env, tmp_path, port=port) as second:
        async with httpx.AsyncClient(base_url=second.url) as http:
            assert await jwks_of(http) == keys_before  # same key, not a fresh one

            info = await userinfo(http, tokens["access_token"])
            assert info.status_code == 200, info.text
            assert info.json()["sub"] == sub

            response = await http.post("/oauth/token", json=otp_body(email, pending))
            assert response.status_code == 200, response.text
            after = response.json()
            assert kid_of(after["access_token"]) == key["kid"]
            identity = verify_with(
                after["id_token"], keys_before, audience=NATIVE_ID, issuer=issuer(second)
            )
            assert identity["sub"] == sub

            refreshed = await http.post(
                "/oauth/token",
                json={
                    "grant_type": "refresh_token",
                    "client_id": NATIVE_ID,
                    "refresh_token": tokens["refresh_token"],
                },
            )
            assert refreshed.status_code == 200, refreshed.text
            assert (
                verify_with(
                    refreshed.json()["id_token"],
                    keys_before,
                    audience=NATIVE_ID,
                    issuer=issuer(second),
                )["sub"]
                == sub
            )

    # docs/specs/interface.md: `serve` "exits cleanly on SIGTERM" (checked last, so that a wrong
    # exit status cannot hide what the restart must keep).
    assert exit_status == 0, f"exit status {exit_status} after a graceful SIGTERM shutdown"


async def jwks_seen_by_workers(server: LiveServer, probes: int) -> list[set[str]]:
    """The kids the JWKS lists, asked over ``probes`` fresh connections at once (so that
    every worker process is likely to answer some)."""

    async def probe() -> set[str]:
        async with httpx.AsyncClient(base_url=server.url) as http:
            return {k["kid"] for k in await jwks_of(http)}

    return list(await asyncio.gather(*(probe() for _ in range(probes))))


async def test_rotation_publishes_the_new_key_and_keeps_old_tokens_valid(
    database_url: str, smtp_sink: SmtpSink, tmp_path: Path
) -> None:
    port = free_port()
    await prepare_database(
        database_url, login_config(f"127.0.0.1:{port}", smtp_port=smtp_sink.port)
    )
    env = nopass_env(database_url)
    with live_server(env, tmp_path, port=port, workers=2) as server:
        async with httpx.AsyncClient(base_url=server.url) as http:
            before = await email_login(http, smtp_sink, "rotate@example.com")
            [old] = await jwks_of(http)
        old_kid = old["kid"]
        assert kid_of(before["access_token"]) == old_kid

        result = await asyncio.to_thread(
            nopass_cli, "keys", "rotate", "--tenant", "acme", env=env, cwd=tmp_path
        )
        rotated = time.monotonic()
        assert result.returncode == 0, result.stderr
        answer = json.loads(result.stdout)
        new_kid = answer["kid"]
        assert answer == {"tenant": "acme", "kid": new_kid}
        assert new_kid != old_kid

        # Every worker publishes both keys within ~2 s (config revision recheck is 1 s).
        while True:
            seen = await jwks_seen_by_workers(server, 8)
            if all(kids == {old_kid, new_kid} for kids in seen):
                break
            assert all(kids <= {old_kid, new_kid} for kids in seen), seen
            assert time.monotonic() - rotated < 2.5, f"rotation not visible: {seen}"
            await asyncio.sleep(0.1)
        print(
            f"[{database_url.split(':', 1)[0]}] rotation visible to all probes after "
            f"{time.monotonic() - rotated:.2f}s"
        )

        for n in range(3):  # fresh connections: either worker may sign
            async with httpx.AsyncClient(base_url=server.url) as http:
                after = await email_login(http, smtp_sink, f"rotate{n}@example.com")
                keys = await jwks_of(http)
            assert_jwks_shape(keys)
            assert kid_of(after["access_token"]) == new_kid
            assert kid_of(after["id_token"]) == new_kid
            verify_with(after["id_token"], keys, audience=NATIVE_ID, issuer=issuer(server))
            verify_with(after["access_token"], keys, audience=API, issuer=issuer(server))

        async with httpx.AsyncClient(base_url=server.url) as http:
            info = await userinfo(http, before["access_token"])  # signed by the old key
            assert info.status_code == 200, info.text
            assert info.json()["sub"] == claims_of(before["access_token"])["sub"]
            # ... whose ID token also still verifies against the published set.
            verify_with(before["id_token"], keys, audience=NATIVE_ID, issuer=issuer(server))

            refreshed = await http.post(
                "/oauth/token",
                json={
                    "grant_type": "refresh_token",
                    "client_id": NATIVE_ID,
                    "refresh_token": before["refresh_token"],
                },
            )
            assert refreshed.status_code == 200, refreshed.text
            assert kid_of(refreshed.json()["access_token"]) == new_kid


@contextlib.contextmanager
def attacker_site(keys: KeyPair, kid: str) -> Iterator[tuple[str, list[str]]]:
    """A web server holding the attacker's JWKS and key; records every fetch."""
    fetched: list[str] = []
    jwks = json.dumps({"keys": [jwk_of(keys, kid)]}).encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            fetched.append(self.path)
            body = jwks if self.path.endswith(".json") else keys.public_pem.encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    site = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=site.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{site.server_address[1]}", fetched
    finally:
        site.shutdown()
        site.server_close()
        thread.join(timeout=5)


@pytest.fixture
async def two_tenants(
    database_url: str, smtp_sink: SmtpSink, tmp_path: Path
) -> AsyncIterator[LiveServer]:
    """``acme`` on ``127.0.0.1:PORT`` and ``beta`` on ``localhost:PORT``: one server, one
    database, two issuers with their own keys."""
    port = free_port()
    await prepare_database(
        database_url, login_config(f"127.0.0.1:{port}", smtp_port=smtp_sink.port)
    )
    beta = login_config(f"localhost:{port}", name="beta", smtp_port=smtp_sink.port)
    for client in beta["clients"]:
        client["client_id"] = "beta-" + client["client_id"]  # client ids are global
    await prepare_database(database_url, beta)
    with live_server(nopass_env(database_url), tmp_path, port=port) as live:
        yield live


async def test_userinfo_refuses_every_token_that_is_not_ours(
    two_tenants: LiveServer, smtp_sink: SmtpSink
) -> None:
    server = two_tenants
    attacker = generate_keypair()
    beta_host = {"Host": f"localhost:{server.port}"}
    async with (
        httpx.AsyncClient(base_url=server.url) as acme,
        httpx.AsyncClient(base_url=server.url, headers=beta_host) as beta,
    ):
        valid = await email_login(acme, smtp_sink, "victim@example.com", scope="openid email")
        api_only = await email_login(acme, smtp_sink, "api@example.com", scope="email")
        foreign = await email_login(
            beta, smtp_sink, "beta@example.com", scope="openid email", client_id=BETA_NATIVE_ID
        )
        [our_key] = await jwks_of(acme)
        [beta_key] = await jwks_of(beta)
        assert beta_key["kid"] != our_key["kid"]
        assert claims_of(foreign["access_token"])["iss"] == f"https://localhost:{server.port}/"

        token = valid["access_token"]
        header, claims, kid = header_of(token), claims_of(token), our_key["kid"]
        assert header == {"alg": "RS256", "typ": "at+jwt", "kid": kid}
        assert claims_of(api_only["access_token"])["aud"] == API

        # Controls: the genuine tokens work where they belong (scheme is case-insensitive).
        assert (await userinfo(acme, token)).status_code == 200
        assert (await userinfo(acme, token, scheme="bearer")).status_code == 200
        assert (await userinfo(beta, foreign["access_token"])).status_code == 200

        with attacker_site(attacker, "attacker-kid") as (site, fetched):
            forged = {
                "alg none": unsigned_token(header, claims),
                "alg none, bare header": unsigned_token({}, claims),
                "signature stripped": token.rsplit(".", 1)[0] + ".",
                "HS256 keyed with our public key (SPKI PEM)": hs256_token(
                    header, claims, public_pem(our_key)
                ),
                "HS256 keyed with our public key (PKCS#1 PEM)": hs256_token(
                    header, claims, public_pem(our_key, pkcs1=True)
                ),
                "HS256 keyed with our JWK": hs256_token(
                    header, claims, json.dumps(our_key).encode()
                ),
                "RS256 by a foreign key under our kid": rs256_token(header, claims, attacker),
                "RS256 under an unknown kid": rs256_token(
                    {**header, "kid": "attacker-kid"}, claims, attacker
                ),
                "RS256 without a kid": rs256_token({"typ": "at+jwt"}, claims, attacker),
                "jku to the attacker's JWKS": rs256_token(
                    {**header, "kid": "attacker-kid", "jku": f"{site}/jwks.json"}, claims, attacker
                ),
                "jku with our kid": rs256_token(
                    {**header, "jku": f"{site}/jwks.json"}, claims, attacker
                ),
                "x5u to the attacker's key": rs256_token(
                    {**header, "kid": "attacker-kid", "x5u": f"{site}/key.pem"}, claims, attacker
                ),
                "embedded jwk": rs256_token(
                    {**header, "kid": "attacker-kid", "jwk": jwk_of(attacker, "attacker-kid")},
                    claims,
                    attacker,
                ),
                "embedded jwk under our kid": rs256_token(
                    {**header, "jwk": jwk_of(attacker, kid)}, claims, attacker
                ),
                "claims changed after signing": tamper(token, sub="email|" + "0" * 24),
                "scope widened after signing": tamper(token, scope="openid email phone profile"),
                "an ID token": valid["id_token"],
                "an access token only for the API": api_only["access_token"],
                "another tenant's token": foreign["access_token"],
                "not a JWT": "not-a-jwt",
            }
            answers = {
                case: await userinfo(acme, forged_token) for case, forged_token in forged.items()
            }
            answers["our token at the other tenant"] = await userinfo(beta, token)
            assert fetched == [], "a key-location header was followed"

        for case, response in answers.items():
            assert response.status_code == 401, (case, response.text)
            assert response.headers["www-authenticate"] == INVALID_TOKEN, case
            assert response.text == "Unauthorized", case

        # Requests without a usable bearer token get a bare challenge, no error code.
        missing = {
            "no header": await acme.get("/userinfo"),
            "Basic credentials": await acme.get("/userinfo", auth=("user", "pass")),
            "bearer without a token": await acme.get(
                "/userinfo", headers={"Authorization": "Bearer"}
            ),
            "POST without a token": await acme.post("/userinfo"),
        }
        for case, response in missing.items():
            assert response.status_code == 401, case
            assert response.headers["www-authenticate"] == "Bearer", case

        # None of that locked anything: the genuine token still works.
        info = await userinfo(acme, token)
        assert info.status_code == 200
        assert info.json()["email"] == "victim@example.com"
