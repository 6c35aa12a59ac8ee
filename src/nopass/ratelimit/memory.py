"""Counters in this process's memory: correct for one process only, so nopass never serves
with them (``create_app`` uses the database or Redis); unit tests and the contract suite do."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import datetime

from nopass.core.ports import UnitOfWork
from nopass.ratelimit.base import Counter, Decision, Window, check_distinct, current, decide


class MemoryRateLimiter:
    def __init__(self) -> None:
        self._counters: dict[str, Counter] = {}
        self._lock = asyncio.Lock()

    async def hit(
        self, windows: Sequence[Window], now: datetime, *, within: UnitOfWork | None = None
    ) -> list[Decision]:
        return await self._apply(windows, now, counting=True)

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
