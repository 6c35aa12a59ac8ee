"""A clock tests can move (expiry without sleeping)."""

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
