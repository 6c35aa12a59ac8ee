"""Races against ``nopass serve --workers 2`` (two processes, one database): a code is consumed
at most once and checked at most three times however many requests arrive together
(docs/specs/security.md §6 "Counting"; ASVS 5.0 2.3.4 / 15.4.2), and a rotating refresh token is
exchanged at most once (RFC 9700 §4.14.2).

Each race first opens one keep-alive connection per request, then releases every request at
once from an ``asyncio.Event``, and is repeated a few times with a fresh identity. The figures
of each round are printed (run with ``-s`` to see them).
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from nopass.store.engine import create_engine
from tests.support.config import NATIVE_ID
from tests.support.harness import prepare_database
from tests.support.live import LiveServer, live_server, nopass_env
from tests.support.services import free_port
from tests.support.smtp import SmtpSink
from tests.support.tokens import login_config, otp_body, start_email

pytestmark = pytest.mark.slow

ROUNDS = 3
RACERS = 50
WRONG_GUESSES = 100
WRONG = "Wrong email or verification code."
MAXED = "You've reached the maximum number of attempts. Please try to login again."
# Enough room in the per-identity failure window (max 100) that the race, not the window,
# decides the answers; a 429 from the window is still accounted for below. Every racer
# shares one IP: the per-IP limits are tested in tests/api/test_limits.py, not here.
RATE_LIMITS = {
    "failures_per_identity_per_15min": 100,
    "failures_per_ip_per_hour": 0,
    "start_per_ip_per_hour": 0,
    "start_per_identity_per_10min": 0,
    "start_per_identity_per_day": 0,
}


@pytest.fixture
async def server(
    database_url: str, smtp_sink: SmtpSink, tmp_path: Path
) -> AsyncIterator[LiveServer]:
    port = free_port()
    config = login_config(f"127.0.0.1:{port}", smtp_port=smtp_sink.port, rate_limits=RATE_LIMITS)
    await prepare_database(database_url, config)
    with live_server(nopass_env(database_url), tmp_path, port=port, workers=2) as live:
        assert_worker_processes(live, 2)
        yield live


def assert_worker_processes(server: LiveServer, workers: int) -> None:
    """uvicorn's supervisor really runs ``workers`` worker processes (Linux /proc only)."""
    if not Path(f"/proc/{server.process.pid}").exists():
        return
    deadline = time.monotonic() + 10
    while len(server.worker_pids()) != workers and time.monotonic() < deadline:
        time.sleep(0.1)
    assert len(server.worker_pids()) == workers, server.worker_pids()


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Any]:
    engine = create_engine(database_url)
    try:
        yield engine
    finally:
        await engine.dispose()


async def rows(engine: Any, sql: str, **params: Any) -> list[dict[str, Any]]:
    async with engine.connect() as conn:
        result = await conn.execute(text(sql), params)
        return [dict(r._mapping) for r in result]


def client(server: LiveServer, connections: int) -> httpx.AsyncClient:
    """A client per round: no keep-alive connection is old enough for the server to be
    closing it just as the race reuses it."""
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    return httpx.AsyncClient(base_url=server.url, limits=limits, timeout=60.0)


async def race(http: httpx.AsyncClient, bodies: list[dict[str, Any]]) -> tuple[list[Any], float]:
    """POST every body to /oauth/token at the same moment; the answers and the spread."""
    await asyncio.gather(*(http.get("/health/live") for _ in bodies))  # one connection each
    gate = asyncio.Event()

    async def fire(body: dict[str, Any]) -> httpx.Response:
        await gate.wait()
        return await http.post("/oauth/token", json=body)

    tasks = [asyncio.create_task(fire(body)) for body in bodies]
    await asyncio.sleep(0.05)  # every task is parked at the gate
    started = time.monotonic()
    gate.set()
    responses = await asyncio.gather(*tasks)
    return responses, time.monotonic() - started


def error_of(response: httpx.Response) -> tuple[int, str, str]:
    if response.status_code == 200:
        return 200, "", ""
    body = response.json()
    return response.status_code, body.get("error", ""), body.get("error_description", "")


async def test_one_code_fifty_simultaneous_exchanges(
    server: LiveServer, smtp_sink: SmtpSink, db: Any, database_url: str
) -> None:
    backend = database_url.split(":", 1)[0]
    for round_ in range(ROUNDS):
        async with client(server, RACERS) as http:  # fresh connections each round
            email = f"race{round_}@example.com"
            code = await start_email(http, smtp_sink, email)
            body = otp_body(email, code, scope="openid offline_access")
            responses, spread = await race(http, [body] * RACERS)

            winners = [r for r in responses if r.status_code == 200]
            losers = Counter(error_of(r) for r in responses if r.status_code != 200)
            print(
                f"[{backend}] round {round_}: {len(winners)} x 200, {dict(losers)} in {spread:.2f}s"
            )
            assert len(winners) == 1, losers
            assert losers == {(403, "invalid_grant", WRONG): RACERS - 1}

            [challenge] = await rows(
                db, "SELECT attempts, consumed_at FROM challenges WHERE identifier = :e", e=email
            )
            assert challenge["attempts"] == 1  # only the winner was counted
            assert challenge["consumed_at"] is not None
            [user] = await rows(
                db, "SELECT user_id, logins_count FROM users WHERE identifier = :e", e=email
            )
            assert user["logins_count"] == 1
            refresh = await rows(
                db, "SELECT id FROM refresh_tokens WHERE user_id = :u", u=user["user_id"]
            )
            assert len(refresh) == 1
            logins = await rows(
                db,
                "SELECT type FROM audit_events WHERE user_name = :e AND type IN ('s', 'ss')",
                e=email,
            )
            assert sorted(r["type"] for r in logins) == ["s", "ss"]

            tokens = winners[0].json()
            info = await http.get(
                "/userinfo", headers={"Authorization": f"Bearer {tokens['access_token']}"}
            )
            assert info.status_code == 200
            assert info.json()["sub"] == user["user_id"]


def wrong_codes(code: str, count: int, rng: random.Random) -> list[str]:
    guesses: set[str] = set()
    while len(guesses) < count:
        guess = f"{rng.randrange(1_000_000):06d}"
        if guess != code:
            guesses.add(guess)
    return sorted(guesses)


async def test_a_hundred_wrong_guesses_and_the_right_one_together(
    server: LiveServer, smtp_sink: SmtpSink, db: Any, database_url: str
) -> None:
    backend = database_url.split(":", 1)[0]
    for round_ in range(ROUNDS):
        async with client(server, WRONG_GUESSES + 1) as http:  # fresh connections each round
            rng = random.Random(round_)
            email = f"guess{round_}@example.com"
            code = await start_email(http, smtp_sink, email)
            guesses = wrong_codes(code, WRONG_GUESSES, rng)
            # First in line once, elsewhere after that: both outcomes of the race get a chance.
            guesses.insert(0 if round_ == 0 else rng.randrange(WRONG_GUESSES + 1), code)
            bodies = [otp_body(email, guess, scope="openid", audience=None) for guess in guesses]
            responses, spread = await race(http, bodies)

            answers = Counter(error_of(r) for r in responses)
            ok = answers.pop((200, "", ""), 0)
            wrong = answers.pop((403, "invalid_grant", WRONG), 0)
            maxed = answers.pop((403, "invalid_grant", MAXED), 0)
            blocked = sum(n for (status, _, _), n in answers.items() if status == 429)
            others = {k: n for k, n in answers.items() if k[0] != 429}
            [challenge] = await rows(
                db, "SELECT attempts, consumed_at FROM challenges WHERE identifier = :e", e=email
            )
            print(
                f"[{backend}] round {round_}: right code at #{guesses.index(code)}: "
                f"{ok} x 200, {wrong} x wrong, {maxed} x max attempts, {blocked} x 429; "
                f"attempts={challenge['attempts']} consumed={challenge['consumed_at'] is not None}"
                f" in {spread:.2f}s"
            )
            assert others == {}, others
            assert ok + wrong + maxed + blocked == WRONG_GUESSES + 1
            assert ok <= 1
            assert challenge["attempts"] <= 3
            if ok:
                # The right code was among the first three guesses counted; every later
                # guess found the code consumed and reads as wrong, never as "maximum".
                assert challenge["consumed_at"] is not None
                assert 1 <= challenge["attempts"] <= 3
                assert maxed == 0
            else:
                # Three wrong guesses were counted, then the code was dead for everyone,
                # the right guess included.
                assert challenge["consumed_at"] is None
                assert challenge["attempts"] == 3
                assert wrong == 3
                assert maxed + blocked == WRONG_GUESSES - 2


async def test_one_rotating_refresh_token_redeemed_twenty_times_at_once(
    server: LiveServer, smtp_sink: SmtpSink, db: Any, database_url: str
) -> None:
    """RFC 9700 §4.14.2: a rotating refresh token is exchanged once; the simultaneous
    replays are reuse, which revokes the family, including the token just issued."""
    backend = database_url.split(":", 1)[0]
    racers = 20
    for round_ in range(ROUNDS):
        async with client(server, racers) as http:
            email = f"refresh{round_}@example.com"
            code = await start_email(http, smtp_sink, email)
            login = await http.post(
                "/oauth/token", json=otp_body(email, code, scope="openid offline_access")
            )
            assert login.status_code == 200, login.text
            body = {
                "grant_type": "refresh_token",
                "client_id": NATIVE_ID,
                "refresh_token": login.json()["refresh_token"],
            }
            responses, spread = await race(http, [body] * racers)

            winners = [r for r in responses if r.status_code == 200]
            losers = Counter(error_of(r) for r in responses if r.status_code != 200)
            print(
                f"[{backend}] refresh round {round_}: {len(winners)} x 200, "
                f"{dict(losers)} in {spread:.2f}s"
            )
            assert len(winners) == 1, losers
            assert losers == {
                (403, "invalid_grant", "Unknown or invalid refresh token."): racers - 1
            }

            again = await http.post(
                "/oauth/token", json={**body, "refresh_token": winners[0].json()["refresh_token"]}
            )
            assert again.status_code == 403, "the family survived a detected reuse"
            [user] = await rows(db, "SELECT user_id FROM users WHERE identifier = :e", e=email)
            family = await rows(
                db,
                "SELECT rotated_at, revoked_at FROM refresh_tokens WHERE user_id = :u",
                u=user["user_id"],
            )
            assert len(family) == 2  # the original and the single successor
            assert all(row["revoked_at"] is not None for row in family)
