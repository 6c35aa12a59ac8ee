"""Counters in this process's memory: correct for one process only, so nopass never serves
with them (``create_app`` uses the database or Redis); unit tests and the contract suite do."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import datetime

from nopass.core.ports import UnitOfWork
from nopass.ratelimit.base import (
    Breaker,
    Counter,
    Decision,
    Guarded,
    Window,
    check_distinct,
    current,
    decide,
    judge,
)


class MemoryRateLimiter:
    def __init__(self) -> None:
        self._counters: dict[str, Counter] = {}
        self._lock = asyncio.Lock()

    async def hit(
        self, windows: Sequence[Window], now: datetime, *, within: UnitOfWork | None = None
    ) -> list[Decision]:
        return await self._apply(windows, now, counting=True)

    async def hit_guarded(
        self,
        windows: Sequence[Window],
        breaker: Breaker,
        now: datetime,
        *,
        within: UnitOfWork | None = None,
    ) -> Guarded:
        check_distinct([*windows, breaker.sent, breaker.trip])
        async with self._lock:
            sent = current(self._counters.get(breaker.sent.key), breaker.sent, now)
            verified = None
            if sent is not None:
                window = breaker.verified_window(sent.started_at)
                verified = current(self._counters.get(window.key), window, now)
            trip = current(self._counters.get(breaker.trip.key), breaker.trip, now)
            tripped = judge(breaker, trip, sent, verified, now)
            if tripped is not None and tripped.opened:
                self._counters[breaker.trip.key] = Counter(now, 1)
            counted = [*windows, breaker.sent]
            states = [current(self._counters.get(w.key), w, now) for w in counted]
            decisions, updated = decide(counted, states, now, counting=tripped is None)
            for window, counter in zip(counted, updated, strict=False):
                self._counters[window.key] = counter
        return Guarded(decisions[:-1], tripped)

    async def peek(
        self, windows: Sequence[Window], now: datetime, *, within: UnitOfWork | None = None
    ) -> list[Decision]:
        return await self._apply(windows, now, counting=False)

    async def _apply(
        self, windows: Sequence[Window], now: datetime, *, counting: bool
    ) -> list[Decision]:
        check_distinct(windows)
        async with self._lock:
            states = [current(self._counters.get(w.key), w, now) for w in windows]
            decisions, updated = decide(windows, states, now, counting=counting)
            for window, counter in zip(windows, updated, strict=False):
                self._counters[window.key] = counter
        return decisions

    async def refund(
        self, decision: Decision, now: datetime, *, within: UnitOfWork | None = None
    ) -> None:
        async with self._lock:
            stored = current(self._counters.get(decision.window.key), decision.window, now)
            if stored is not None and stored.started_at == decision.started_at and stored.count:
                self._counters[decision.window.key] = Counter(stored.started_at, stored.count - 1)

    async def aclose(self) -> None:
        self._counters.clear()
