"""Clocks tests can move (expiry without sleeping) or stop (answers that do not depend on
when they are given)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta


class MovableClock:
    """Time moves only when told, plus one millisecond per reading, so events keep their
    order as they would in real time."""

    def __init__(self, start: datetime | None = None) -> None:
        self._now = start or datetime.now(UTC)

    def now(self) -> datetime:
        self._now += timedelta(milliseconds=1)
        return self._now

    def advance(self, seconds: float) -> None:
        self._now += timedelta(seconds=seconds)


class FrozenClock:
    """Every reading is the same instant, however many are taken and whenever: two
    applications on one FrozenClock compute the same expiries and rate-limit resets even
    when the real clock crosses a second between their answers."""

    def __init__(self, instant: datetime | None = None) -> None:
        self.instant = instant or datetime.now(UTC)

    def now(self) -> datetime:
        return self.instant
