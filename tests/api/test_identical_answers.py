"""Identical answers for existing, unknown and signup-disabled identities (issue 5, item 3;
docs/specs/auth0-wire.md §12.5; ASVS 5.0 6.3.8): ``/passwordless/start`` and the OTP grant answer
with the same status, the same body shape, the same headers and, within noise, the same time,
whether the identity has an account, has none, or has none on a connection that refuses
signups (where nothing is sent at all).

Timing is compared in rounds: each round takes one answer of every group, in a shuffled
order, so that the load of a busy machine (five other engineers on the same two cores) hits
every group of a round alike. A gap between two groups is the median, over the rounds, of
their difference within the round. What counts as noise is measured in the same run: the
"twin" connection is configured exactly like "email", so the gaps between a group and its
twin are noise and nothing else. A gap counts only when it is larger than NOISE_FACTOR times
that noise floor and than an absolute floor, and shows again in a second, independent set
of rounds.

Two clocks are read for every answer. The CPU time of the thread that runs the application
(it runs in-process, on the test's event loop) is the work the answer took: it hardly moves
with the machine's load (the noise floor is about 0.1 ms when wall-clock medians of identical
groups are 2 ms apart), so a few hundred microseconds of extra work show. Wall-clock time
also shows what CPU time cannot, a wait (a send, a sleep) that only some answers do.
"""

from __future__ import annotations

import asyncio
import random
import statistics
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from sqlalchemy import insert

from nopass.core.models import PASSWORDLESS_OTP_GRANT
from nopass.store.tables import UserRow, table
from tests.support.config import NATIVE_ID, tenant_config
from tests.support.harness import Harness, running_app
from tests.support.smtp import SmtpSink

ORIGIN = "http://127.0.0.1:8123"
SAMPLES = 60
NOISE_FACTOR = 3.0
# Absolute floors (ms): a gap under them never counts, however quiet the run. A wrong code
# is about 4 ms of CPU here; a connection that refuses signups reads whether the user
# exists (one prebuilt indexed read, about 0.1 ms).
CPU_FLOOR_MS = 0.5
WALL_FLOOR_MS = 3.0
IDLE_GAP_SECONDS = 0.02
# Values that differ by nature from one answer to the next.
VARYING_HEADERS = frozenset({"date", "content-length"})


@dataclass(frozen=True)
class Group:
    name: str
    connection: str
    existing: bool

    @property
    def sends(self) -> bool:
        return self.existing or self.connection != "closed"


GROUPS = (
    Group("existing user", "email", existing=True),
    Group("unknown identity", "email", existing=False),
    Group("existing user, signup disabled", "closed", existing=True),
    Group("unknown identity, signup disabled", "closed", existing=False),
    Group("existing user, twin", "twin", existing=True),
    Group("unknown identity, twin", "twin", existing=False),
)
# Identical configurations: their gaps are the run's noise floor.
TWINS = ((0, 4), (1, 5))
# Who has an account must not show (an existing user against an unknown identity on each
# connection), nor whether a connection refuses signups (nothing is sent for an unknown
# identity there, a phantom answer).
COMPARED = ((0, 1), (2, 3), (4, 5), (0, 2), (1, 3))


def config(smtp_port: int) -> dict[str, Any]:
    result = tenant_config(ORIGIN, smtp_port=smtp_port)
    email = next(c for c in result["connections"] if c["name"] == "email")
    closed = {**email, "name": "closed", "options": {"disable_signup": True}}
    result["connections"] += [closed, {**email, "name": "twin"}]
    # Every sample uses a fresh identity; the per-IP limits must not count this test's IP.
    result["tenant"]["rate_limits"] = {"allowlist": ["203.0.113.0/24"]}
    return result


@dataclass
class Sampler:
    harness: Harness
    sink: SmtpSink
    connection_ids: dict[str, str]
    tenant_id: str
    expected_mails: int = 0
    counter: int = 0
    wall: dict[str, list[float]] = field(default_factory=dict)  # ms, one per round
    cpu: dict[str, list[float]] = field(default_factory=dict)
    answers: dict[str, list[httpx.Response]] = field(default_factory=dict)

    async def identity(self, group: Group) -> str:
        """A fresh address (no limit ever sees the same one twice), with a user if asked.
        Every group's sample follows the same write (an unknown identity's creates someone
        else), so that none starts on a database another connection has just changed
        while the others do not (SQLite then reloads pages: CPU time in the answer)."""
        self.counter += 1
        address = f"person{self.counter}@example.com"
        now = datetime.now(UTC)
        async with self.harness.engine.begin() as conn:
            await conn.execute(
                insert(table(UserRow)).values(
                    tenant_id=self.tenant_id,
                    user_id=f"email|{self.counter:024x}",
                    connection_id=self.connection_ids[group.connection],
                    identifier=address if group.existing else f"someone.else.{address}",
                    profile={},
                    created_at=now,
                    updated_at=now,
                    logins_count=1,
                )
            )
        return address

    async def start(self, group: Group, address: str) -> httpx.Response:
        response = await self.harness.start(
            {
                "client_id": NATIVE_ID,
                "connection": group.connection,
                "email": address,
                "send": "code",
            }
        )
        if group.sends:
            self.expected_mails += 1
        return response

    async def settle(self) -> None:
        """Wait until the outbox worker is done (mail received, row settled), then leave the
        same idle gap before every sample: the worker's work must not land in a sample, and
        the time since the last activity must not differ between groups."""
        deadline = time.monotonic() + 10
        while len(self.sink.received) < self.expected_mails or await self.harness.count(
            "outbox_messages", "status <> 'sent'"
        ):
            assert time.monotonic() < deadline, "the outbox worker did not settle"
            await asyncio.sleep(0.002)
        await asyncio.sleep(IDLE_GAP_SECONDS)

    def wrong_code(self, address: str) -> str:
        """A guess that is certainly wrong: not the code the identity was sent (if any)."""
        sent = [m.text() for m in self.sink.received if address in m.recipients]
        return "111111" if sent and "000000" in sent[-1] else "000000"

    async def timed(self, group: Group, call: Awaitable[httpx.Response]) -> httpx.Response:
        """The answer, its wall-clock time and the CPU time of this thread (the
        application's: it runs on this event loop) while it was computed."""
        cpu, began = time.thread_time(), time.perf_counter()
        response = await call
        ended, cpu_ended = time.perf_counter(), time.thread_time()
        self.wall.setdefault(group.name, []).append((ended - began) * 1000)
        self.cpu.setdefault(group.name, []).append((cpu_ended - cpu) * 1000)
        self.answers.setdefault(group.name, []).append(response)
        return response

    def clear_times(self) -> None:
        self.wall.clear()
        self.cpu.clear()


@pytest.fixture
async def sampler(sqlite_url: str, smtp_sink: SmtpSink) -> AsyncIterator[Sampler]:
    async with running_app(sqlite_url, config(smtp_sink.port)) as harness:
        [tenant] = await harness.rows("SELECT id FROM tenants WHERE name = 'acme'")
        rows = await harness.rows("SELECT name, id FROM connections")
        connections = {str(r["name"]): str(r["id"]) for r in rows}
        sampler = Sampler(harness, smtp_sink, connections, str(tenant["id"]))
        # Warm up every path once (templates, statement caches, keys) before measuring.
        for group in GROUPS:
            await sampler.start(group, await sampler.identity(group))
        await sampler.settle()
        yield sampler


def paired_gap(times: dict[str, list[float]], a: Group, b: Group) -> float:
    """The median, over the rounds, of ``a``'s time minus ``b``'s in the same round."""
    return statistics.median(x - y for x, y in zip(times[a.name], times[b.name], strict=True))


def timing_problems(sampler: Sampler, what: str) -> list[str]:
    """What makes the groups' timings tell apart (empty: nothing does)."""
    problems = []
    for clock, times, floor in (
        ("cpu", sampler.cpu, CPU_FLOOR_MS),
        ("wall", sampler.wall, WALL_FLOOR_MS),
    ):
        medians = ", ".join(f"{n}: {statistics.median(t):.2f}" for n, t in times.items())
        noise = max(abs(paired_gap(times, GROUPS[i], GROUPS[j])) for i, j in TWINS)
        bound = max(floor, NOISE_FACTOR * noise)
        print(f"\n{what}, {clock}: median ms {medians}; noise floor {noise:.3f} ms")
        for i, j in COMPARED:
            a, b = GROUPS[i], GROUPS[j]
            gap = paired_gap(times, a, b)
            print(f"{what}, {clock}: {a.name} - {b.name}: {gap:+.3f} ms (bound {bound:.3f})")
            if abs(gap) > bound:
                problems.append(
                    f"{what}: {clock} time of {a.name!r} - {b.name!r} is {gap:+.3f} ms, beyond"
                    f" {bound:.3f} ms (noise floor {noise:.3f} ms between identical groups)"
                )
    return problems


async def assert_same_timing(
    sampler: Sampler, what: str, sample: Callable[[], Awaitable[None]]
) -> None:
    """A difference must show in two independent sets of rounds to count: a real one does
    every time, while a burst of load that the interleaving did not even out rarely
    strikes twice."""
    problems = timing_problems(sampler, what)
    if problems:
        sampler.clear_times()
        await sample()
        problems = timing_problems(sampler, what)
    assert not problems, problems


def header_names(response: httpx.Response) -> list[str]:
    return sorted(k for k in response.headers if not k.startswith("x-ratelimit"))


def fixed_headers(response: httpx.Response) -> dict[str, str]:
    return {
        k: v
        for k, v in response.headers.items()
        if k not in VARYING_HEADERS and not k.startswith(("x-ratelimit", "retry-after"))
    }


def body_shape(response: httpx.Response) -> dict[str, type]:
    return {key: type(value) for key, value in response.json().items()}


def assert_same_answers(sampler: Sampler, *, exact_body: bool) -> None:
    reference = sampler.answers[GROUPS[0].name][0]
    for group in GROUPS:
        for response in sampler.answers[group.name]:
            assert response.status_code == reference.status_code, (group.name, response.text)
            assert header_names(response) == header_names(reference), group.name
            assert fixed_headers(response) == fixed_headers(reference), group.name
            assert body_shape(response) == body_shape(reference), group.name
            if exact_body:
                assert response.json() == reference.json(), group.name


async def test_start_answers_alike_for_existing_unknown_and_signup_disabled(
    sampler: Sampler,
) -> None:
    order = list(GROUPS)
    shuffle = random.Random(7)

    async def sample() -> None:
        for _ in range(SAMPLES):
            shuffle.shuffle(order)
            for group in order:
                address = await sampler.identity(group)
                await sampler.settle()
                response = await sampler.timed(group, sampler.start(group, address))
                assert response.status_code == 200, response.text
                assert response.json()["email"] == address
                assert response.json()["email_verified"] is False
        await sampler.settle()

    await sample()
    assert_same_answers(sampler, exact_body=False)
    # Only the identities that may sign in got a message.
    assert len(sampler.sink.received) == sampler.expected_mails
    await assert_same_timing(sampler, "start", sample)


async def test_otp_grant_answers_alike_for_existing_unknown_and_signup_disabled(
    sampler: Sampler,
) -> None:
    """A wrong guess at an identity that was just sent a code (or, signup disabled and no
    account, was told it was): the attacker's view of each identity. Every code is issued
    first, then the guesses are timed in a shuffled order, so that the delivery of the
    messages (background work that only real sends cause) lands in no sample."""
    order = list(GROUPS)
    shuffle = random.Random(11)

    async def sample() -> None:
        rounds: list[list[tuple[Group, str]]] = []
        for _ in range(SAMPLES):
            shuffle.shuffle(order)
            issued = []
            for group in order:
                address = await sampler.identity(group)
                assert (await sampler.start(group, address)).status_code == 200
                issued.append((group, address))
            rounds.append(issued)
        await sampler.settle()
        for round_ in rounds:
            shuffle.shuffle(round_)
        for group, address in (guess for round_ in rounds for guess in round_):
            guess = {
                "grant_type": PASSWORDLESS_OTP_GRANT,
                "client_id": NATIVE_ID,
                "realm": group.connection,
                "username": address,
                "otp": sampler.wrong_code(address),
                "scope": "openid profile email",
            }
            await asyncio.sleep(IDLE_GAP_SECONDS)
            response = await sampler.timed(
                group, sampler.harness.client.post("/oauth/token", json=guess)
            )
            assert response.status_code == 403, response.text

    await sample()
    assert_same_answers(sampler, exact_body=True)
    reference = sampler.answers[GROUPS[0].name][0]
    assert reference.status_code == 403
    assert reference.json() == {
        "error": "invalid_grant",
        "error_description": "Wrong email or verification code.",
    }
    await assert_same_timing(sampler, "otp grant", sample)
