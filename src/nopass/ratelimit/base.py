"""The counter contract every backend keeps, and its reference semantics.

A window is *fixed* and opens at its key's first hit: it counts hits for ``seconds`` and then
closes; the next hit opens a new one. ``hit`` is all or nothing over the windows of one request:
it counts one against each of them only when every one stays within its limit, so a refused
request counts nowhere and leaves the others' budgets alone. Time is the caller's clock
(``now``), so every backend agrees on when a window closes and tests can move time.

``within`` is the caller's open unit of work: a database backend counts in its transaction
(one commit per request instead of two, and no second connection while the request holds
one); the count then becomes durable, or is undone, with that transaction. Other backends
ignore it.

``hit_guarded`` is ``hit`` behind a conversion breaker (``Breaker``): the breaker is read,
tripped and its ``sent`` window counted in the same atomic step as the request's windows, so
concurrent requests cannot all find it shut and all be counted; it trips at exactly the hit
after ``min_sent``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from nopass.core.ports import UnitOfWork

UNCAPPED = 1_000_000_000  # the limit of a window kept for statistics only


@dataclass(frozen=True, slots=True)
class Window:
    key: str  # namespaced: "<tenant id>:<limit>:<subject>"
    limit: int  # hits allowed per window (> 0; a disabled limit has no window)
    seconds: int
    name: str = ""  # the limit's name, for audit events ("start_per_ip_per_hour")

    @property
    def length(self) -> timedelta:
        return timedelta(seconds=self.seconds)


@dataclass(frozen=True, slots=True)
class Decision:
    window: Window
    allowed: bool  # hit: counted; peek: one more hit would be counted
    count: int  # hits in the open window, this one included when counted
    started_at: datetime | None  # None: no window is open
    reset_at: datetime  # when the open window closes (for a closed one: now + length)

    @property
    def remaining(self) -> int:
        return max(self.window.limit - self.count, 0)


@dataclass(frozen=True, slots=True)
class Breaker:
    """Hits counted in ``sent`` that trip ``trip`` (a window of limit 1, open while tripped)
    when ``sent`` holds at least ``min_sent`` hits and fewer than ``min_percent`` % of them
    were verified. Verifications are counted (with ``hit``) in the window of key
    ``verified_key(sent's start)``, of length ``verified_seconds``."""

    trip: Window
    sent: Window
    verified_prefix: str
    verified_seconds: int
    min_sent: int
    min_percent: int

    def verified_key(self, sent_started_at: datetime) -> str:
        return f"{self.verified_prefix}:{round(sent_started_at.timestamp() * 1000)}"

    def verified_window(self, sent_started_at: datetime) -> Window:
        key = self.verified_key(sent_started_at)
        return Window(key=key, limit=UNCAPPED, seconds=self.verified_seconds, name="verified")

    def trips(self, sent: int, verified: int) -> bool:
        """Does a hit trip the breaker when ``sent`` hits and ``verified`` verifications are
        counted in the open windows?"""
        return sent >= self.min_sent and verified * 100 < self.min_percent * sent


@dataclass(frozen=True, slots=True)
class Tripped:
    """``hit_guarded`` refused by the breaker: nothing was counted (but one on ``trip`` when
    this hit tripped it)."""

    decision: Decision  # the trip window's: when it closes
    opened: bool  # by this hit (else it was open already)
    sent: int  # the counts in the open windows when it was decided
    verified: int


@dataclass(frozen=True, slots=True)
class Guarded:
    """``hit_guarded``'s answer."""

    decisions: list[Decision]  # of the request's windows (counted only when all allowed)
    tripped: Tripped | None  # None: the breaker let the request through


class RateLimiter(Protocol):
    async def hit(
        self, windows: Sequence[Window], now: datetime, *, within: UnitOfWork | None = None
    ) -> list[Decision]:
        """Count one hit against every window, all or nothing (see the module docstring).
        The decisions come in the order of ``windows``; keys must be distinct."""
        ...

    async def hit_guarded(
        self,
        windows: Sequence[Window],
        breaker: Breaker,
        now: datetime,
        *,
        within: UnitOfWork | None = None,
    ) -> Guarded:
        """In one atomic step: refuse when ``breaker.trip`` is open; else trip it (counting
        one on it, nothing else) when ``breaker.trips``; else ``hit`` ``windows`` and
        ``breaker.sent``, all or nothing. Keys must be distinct."""
        ...

    async def peek(
        self, windows: Sequence[Window], now: datetime, *, within: UnitOfWork | None = None
    ) -> list[Decision]:
        """The windows' state, counting nothing."""
        ...

    async def refund(
        self, decision: Decision, now: datetime, *, within: UnitOfWork | None = None
    ) -> None:
        """Take back the hit ``decision`` counted, if its window is still open."""
        ...

    async def aclose(self) -> None: ...


@dataclass(frozen=True, slots=True)
class Counter:
    """A key's stored state."""

    started_at: datetime
    count: int


def current(stored: Counter | None, window: Window, now: datetime) -> Counter | None:
    """The stored counter if its window is still open at ``now``."""
    if stored is None or stored.started_at + window.length <= now:
        return None
    return stored


def decide(
    windows: Sequence[Window], states: Sequence[Counter | None], now: datetime, *, counting: bool
) -> tuple[list[Decision], list[Counter]]:
    """Decisions for open counters ``states`` (None: no open window) and, when ``counting``
    and every window has room, the counters to store; an empty list means count nothing."""
    room = all((s.count if s else 0) < w.limit for w, s in zip(windows, states, strict=True))
    counted = counting and room
    decisions: list[Decision] = []
    updated: list[Counter] = []
    for window, state in zip(windows, states, strict=True):
        count = state.count if state else 0
        started = state.started_at if state else None
        if counted:
            started = started or now
            count += 1
            updated.append(Counter(started, count))
        decisions.append(
            Decision(
                window=window,
                allowed=count < window.limit + (1 if counted else 0),
                count=count,
                started_at=started,
                reset_at=(started or now) + window.length,
            )
        )
    return decisions, updated


def judge(
    breaker: Breaker,
    trip: Counter | None,
    sent: Counter | None,
    verified: Counter | None,
    now: datetime,
) -> Tripped | None:
    """The breaker's answer for open counters ``trip``, ``sent`` and ``verified`` (None: no
    open window): refused (``trip`` open, or tripped by this hit: the caller counts one on
    ``trip``) or None, the request goes on to its windows."""
    sent_count = sent.count if sent else 0
    verified_count = verified.count if verified else 0
    if trip is not None and trip.count >= breaker.trip.limit:
        opened, started = False, trip.started_at
    elif breaker.trips(sent_count, verified_count):
        opened, started = True, now
    else:
        return None
    decision = Decision(
        window=breaker.trip,
        allowed=opened,
        count=trip.count if trip and not opened else 1,
        started_at=started,
        reset_at=started + breaker.trip.length,
    )
    return Tripped(decision, opened, sent_count, verified_count)


def check_distinct(windows: Sequence[Window]) -> None:
    keys = [w.key for w in windows]
    if len(set(keys)) != len(keys):
        raise ValueError("a request's windows need distinct keys")
