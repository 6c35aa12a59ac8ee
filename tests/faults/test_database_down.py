"""The database goes away under a live ``nopass serve`` and comes back (issue 5, item 5;
docs/specs/security.md §6 "Fail closed").

While it is away, start, verify and token (and everything else that needs it: the tenant
configuration cache, the signing keys, userinfo) answer ``503 temporarily_unavailable``
within a bound, never a 200, never a 500, and no message goes out; ``/health/ready`` fails
while ``/health/live`` stays up. Once it is back the same process serves logins again.

A SQLite database another process holds the write lock on is not away: under WAL, work that
only reads (userinfo, reloading the configuration and keys) still answers from the last
committed state, and only what writes fails closed.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.faults.outage import Outage, database_outage
from tests.support.config import NATIVE_ID
from tests.support.harness import prepare_database
from tests.support.live import LiveServer, live_server, nopass_env
from tests.support.services import free_port
from tests.support.smtp import SmtpSink
from tests.support.tokens import email_login, login_config, otp_body, start_email

pytestmark = pytest.mark.slow

EMAIL = "outage@example.com"
# Short bounds so that the test is quick; the defaults are 5 s, 10 s and 10 s.
FAST_FAILURE = {
    "NOPASS_DATABASE_CONNECT_TIMEOUT_SECONDS": "1",
    "NOPASS_DATABASE_COMMAND_TIMEOUT_SECONDS": "2",
    "NOPASS_SQLITE_BUSY_TIMEOUT_MS": "300",
}
# How long one answer may take while the database is away: a refused connection or a held
# lock fail at once (busy_timeout per transaction); a blackhole costs a ping that times out
# (command timeout) and a reconnect that does too (connect timeout), and a little more.
BOUND_SECONDS = {"locked": 3.0, "refused": 3.0, "blackhole": 8.0}
CONFIG_RECHECK_SECONDS = 1.0  # store.config.ConfigCache


@pytest.fixture
def outage(database_url: str) -> Iterator[Outage]:
    with database_outage(database_url) as outage:
        yield outage


Call = Callable[[httpx.AsyncClient], Awaitable[httpx.Response]]


def calls(code: str, tokens: dict[str, Any]) -> dict[str, Call]:
    """What a client does during the outage; the code and tokens are real and valid."""
    bearer = {"Authorization": f"Bearer {tokens['access_token']}"}
    return {
        "start": lambda h: h.post(
            "/passwordless/start",
            json={"client_id": NATIVE_ID, "connection": "email", "email": EMAIL, "send": "code"},
        ),
        "token (otp)": lambda h: h.post("/oauth/token", json=otp_body(EMAIL, code)),
        "verify": lambda h: h.post(
            "/passwordless/verify",
            json={
                "client_id": NATIVE_ID,
                "connection": "email",
                "email": EMAIL,
                "verification_code": code,
            },
        ),
        "token (refresh)": lambda h: h.post(
            "/oauth/token",
            json={
                "grant_type": "refresh_token",
                "client_id": NATIVE_ID,
                "refresh_token": tokens["refresh_token"],
            },
        ),
        "userinfo": lambda h: h.get("/userinfo", headers=bearer),
    }


def cached_reads() -> dict[str, Call]:
    """Served from the configuration and key caches while those are fresh; once the cache
    must look at the database again, they fail closed too."""
    return {
        "jwks": lambda h: h.get("/.well-known/jwks.json"),
        "discovery": lambda h: h.get("/.well-known/openid-configuration"),
    }


READS = {"userinfo", "jwks", "discovery"}


def reads_only(mode: str, name: str) -> bool:
    """A write-locked SQLite database still serves reads (WAL)."""
    return mode == "locked" and name in READS


async def assert_answer(
    http: httpx.AsyncClient, name: str, call: Call, bound: float, served: bool
) -> None:
    if not served:
        await assert_unavailable(http, name, call, bound)
        return
    began = time.monotonic()
    response = await call(http)
    assert response.status_code == 200, f"{name}: {response.status_code} {response.text}"
    assert time.monotonic() - began < bound, name


async def assert_unavailable(http: httpx.AsyncClient, name: str, call: Call, bound: float) -> None:
    began = time.monotonic()
    response = await call(http)
    elapsed = time.monotonic() - began
    assert response.status_code == 503, f"{name}: {response.status_code} {response.text}"
    body = response.json()
    assert body["error"] == "temporarily_unavailable", name
    assert isinstance(body["error_description"], str), name
    assert response.headers["content-type"].startswith("application/json"), name
    assert elapsed < bound, f"{name} took {elapsed:.1f}s (bound {bound}s)"


async def assert_health(http: httpx.AsyncClient, *, ready: bool, bound: float) -> None:
    began = time.monotonic()
    readiness = await http.get("/health/ready")
    assert time.monotonic() - began < bound
    assert (await http.get("/health/live")).status_code == 200
    if ready:
        assert readiness.status_code == 200, readiness.text
    else:
        assert readiness.status_code == 503, readiness.text
        assert readiness.json()["status"] == "unavailable"


async def wait_ready(http: httpx.AsyncClient, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while (await http.get("/health/ready")).status_code != 200:
        assert time.monotonic() < deadline, "not ready again after the database came back"
        await asyncio.sleep(0.1)


def access_log(server: LiveServer) -> list[dict[str, Any]]:
    lines = []
    for line in server.logs().splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict):
            lines.append(entry)
    return lines


async def test_database_outage_fails_closed_and_recovers_without_restart(
    database_url: str, outage: Outage, smtp_sink: SmtpSink, tmp_path: Path
) -> None:
    port = free_port()
    await prepare_database(
        database_url, login_config(f"127.0.0.1:{port}", smtp_port=smtp_sink.port)
    )
    env = nopass_env(outage.url, **FAST_FAILURE)
    with live_server(env, tmp_path, port=port) as server:
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
            tokens = await email_login(http, smtp_sink, EMAIL)
            pending = await start_email(http, smtp_sink, EMAIL)  # valid, not yet used
            await assert_health(http, ready=True, bound=1.0)
            mails = len(smtp_sink.received)

            for mode in outage.modes:
                bound = BOUND_SECONDS[mode]
                outage.down(mode)
                try:
                    # Right away: the caches may still be fresh, the unit of work fails.
                    for name, call in calls(pending, tokens).items():
                        await assert_answer(http, name, call, bound, reads_only(mode, name))
                    await assert_health(http, ready=False, bound=bound)
                    # Later: the tenant configuration cache must reload, and cannot.
                    await asyncio.sleep(CONFIG_RECHECK_SECONDS + 0.2)
                    for name, call in {**cached_reads(), **calls(pending, tokens)}.items():
                        await assert_answer(http, name, call, bound, reads_only(mode, name))
                    await assert_health(http, ready=False, bound=bound)
                finally:
                    outage.up()
                await wait_ready(http)
                assert len(smtp_sink.received) == mails, f"{mode}: a message went out"

            # Same process, no restart: the code issued before the outage was not touched
            # (no attempt counted), and a new login goes all the way through.
            response = await http.post("/oauth/token", json=otp_body(EMAIL, pending))
            assert response.status_code == 200, response.text
            assert len(smtp_sink.received) == mails  # still nothing from the outage
            again = await email_login(http, smtp_sink, EMAIL)
            assert (await http.get("/.well-known/jwks.json")).status_code == 200
            info = await http.get(
                "/userinfo", headers={"Authorization": f"Bearer {again['access_token']}"}
            )
            assert info.status_code == 200, info.text

    log = access_log(server)
    statuses = [e["status"] for e in log if e.get("event") == "request"]
    assert 503 in statuses
    assert not [s for s in statuses if s >= 500 and s != 503], statuses
    assert not [e for e in log if e.get("event") == "unhandled_error"]
