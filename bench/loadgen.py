"""Whole logins as a client does them: start → code from the SMTP sink → token exchange.

``closed_loop`` keeps N logins in flight (peak throughput); ``open_loop`` starts logins at a
fixed rate whatever the server does (latency at a given load, without coordinated omission).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from bench.client import ConnectionPool, HttpConnection, SmtpSink

CODE_TIMEOUT = 10.0
OTP_GRANT = "http://auth0.com/oauth/grant-type/passwordless/otp"


class LoginFailed(Exception):
    pass


Login = Callable[[HttpConnection, str], Awaitable[None]]


def nopass_login(sink: SmtpSink, client_id: str, scope: str = "openid profile email") -> Login:
    async def login(conn: HttpConnection, email: str) -> None:
        code = sink.expect(email)
        try:
            start = {"client_id": client_id, "connection": "email", "email": email, "send": "code"}
            r = await conn.request("POST", "/passwordless/start", body=json.dumps(start).encode())
            if r.status != 200:
                raise LoginFailed(f"start {r.status} {r.body[:200]!r}")
            otp = await asyncio.wait_for(code, CODE_TIMEOUT)
        finally:
            sink.forget(email)
        exchange = {
            "grant_type": OTP_GRANT,
            "client_id": client_id,
            "username": email,
            "otp": otp,
            "realm": "email",
            "scope": scope,
        }
        r = await conn.request("POST", "/oauth/token", body=json.dumps(exchange).encode())
        if r.status != 200 or b"id_token" not in r.body:
            raise LoginFailed(f"token {r.status} {r.body[:200]!r}")

    return login


def allauth_login(sink: SmtpSink, request_path: str, confirm_path: str) -> Login:
    async def login(conn: HttpConnection, email: str) -> None:
        code = sink.expect(email)
        try:
            body = json.dumps({"email": email}).encode()
            r = await conn.request("POST", request_path, body=body)
            if r.status not in (200, 401):
                raise LoginFailed(f"request {r.status} {r.body[:200]!r}")
            token = r.json()["meta"]["session_token"]
            otp = await asyncio.wait_for(code, CODE_TIMEOUT)
        finally:
            sink.forget(email)
        body = json.dumps({"code": otp}).encode()
        r = await conn.request("POST", confirm_path, body=body, headers={"X-Session-Token": token})
        if r.status != 200:
            raise LoginFailed(f"confirm {r.status} {r.body[:200]!r}")

    return login


@dataclass
class Outcome:
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)  # seconds, successful logins only
    errors: int = 0
    first_errors: list[str] = field(default_factory=list)

    @property
    def ok(self) -> int:
        return len(self.latencies)

    @property
    def rate(self) -> float:
        return self.ok / self.seconds if self.seconds else 0.0

    def percentile(self, p: float) -> float:
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]

    def summary(self) -> dict[str, float | int | list[str]]:
        return {
            "ok": self.ok,
            "errors": self.errors,
            "seconds": round(self.seconds, 2),
            "per_second": round(self.rate, 1),
            "p50_ms": round(self.percentile(50) * 1000, 2),
            "p95_ms": round(self.percentile(95) * 1000, 2),
            "p99_ms": round(self.percentile(99) * 1000, 2),
            "first_errors": self.first_errors,
        }


class Driver:
    """Runs ``login`` over a rotating set of identities, one login per identity at a time."""

    def __init__(self, login: Login, pool: ConnectionPool, identities: list[str]) -> None:
        self._login = login
        self._pool = pool
        self._free = deque(identities)
        self._recording: Outcome | None = None

    async def _one(self) -> None:
        email = self._free.popleft()
        conn = self._pool.take()
        began = time.perf_counter()
        try:
            await self._login(conn, email)
        except Exception as exc:  # a failed login is data, not a crash
            conn.close()
            if self._recording is not None:
                self._recording.errors += 1
                if len(self._recording.first_errors) < 5:
                    self._recording.first_errors.append(f"{type(exc).__name__}: {exc}"[:300])
        else:
            if self._recording is not None:
                self._recording.latencies.append(time.perf_counter() - began)
        finally:
            self._pool.give(conn)
            self._free.append(email)

    async def closed_loop(self, concurrency: int, warmup: float, seconds: float) -> Outcome:
        stop = time.perf_counter() + warmup + seconds

        async def worker() -> None:
            while time.perf_counter() < stop:
                await self._one()

        return await self._measure(
            [asyncio.create_task(worker()) for _ in range(concurrency)], warmup, seconds
        )

    async def open_loop(self, rate: float, warmup: float, seconds: float) -> Outcome:
        stop = time.perf_counter() + warmup + seconds
        running: set[asyncio.Task[None]] = set()

        async def arrivals() -> None:
            interval, due = 1.0 / rate, time.perf_counter()
            while due < stop:
                if self._free:
                    task = asyncio.create_task(self._one())
                    running.add(task)
                    task.add_done_callback(running.discard)
                elif self._recording is not None:  # every identity is busy: count it as lost
                    self._recording.errors += 1
                due += interval
                await asyncio.sleep(max(0.0, due - time.perf_counter()))
            if running:
                await asyncio.wait(set(running))

        return await self._measure([asyncio.create_task(arrivals())], warmup, seconds)

    async def _measure(
        self, tasks: list[asyncio.Task[None]], warmup: float, seconds: float
    ) -> Outcome:
        await asyncio.sleep(warmup)
        outcome = self._recording = Outcome()
        began = time.perf_counter()
        await asyncio.sleep(seconds)
        outcome.seconds = time.perf_counter() - began
        self._recording = None  # logins finishing after the window are not counted
        await asyncio.gather(*tasks)
        return outcome
