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
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from nopass.core.ports import UnitOfWork


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


class RateLimiter(Protocol):
    async def hit(
        self, windows: Sequence[Window], now: datetime, *, within: UnitOfWork | None = None
    ) -> list[Decision]:
        """Count one hit against every window, all or nothing (see the module docstring).
        The decisions come in the order of ``windows``; keys must be distinct."""
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


def check_distinct(windows: Sequence[Window]) -> None:
    keys = [w.key for w in windows]
    if len(set(keys)) != len(keys):
        raise ValueError("a request's windows need distinct keys")
