"""How long a synchronous provider usually takes, so that a start that sends nothing (an
identity that may not sign up) can take as long as one that does (docs/specs/auth0-wire.md §12.5,
ASVS 6.3.8: no timing difference between known and unknown identities)."""

from __future__ import annotations

import random

ALPHA = 0.2
INITIAL_SECONDS = 0.5
MAX_SECONDS = 10.0


class LatencyEstimate:
    """An exponential moving average per key (e.g. per connection), in-process."""

    def __init__(self, initial: float = INITIAL_SECONDS) -> None:
        self._initial = initial
        self._average: dict[str, float] = {}

    def observe(self, key: str, seconds: float) -> None:
        seconds = min(max(seconds, 0.0), MAX_SECONDS)
        previous = self._average.get(key)
        self._average[key] = (
            seconds if previous is None else (ALPHA * seconds + (1 - ALPHA) * previous)
        )

    def sample(self, key: str) -> float:
        """A plausible duration: the average with ±10 % jitter."""
        average = self._average.get(key, self._initial)
        return average * random.uniform(0.9, 1.1)  # noqa: S311 (timing noise, not a secret)
