"""Counters in Redis (``NOPASS_REDIS_URL``), shared by every process and node that uses it.

Each window is a hash ``{s: start (ms), c: count}`` changed by one Lua script, so a request's
windows are checked and counted atomically, all or nothing, as ``base`` describes; the time is
the caller's clock, and the key's TTL only collects it some time after its window closed. A
breaker (``hit_guarded``) is read, tripped and counted in that same script.

Redis is a convenience, never a single point of failure and never a way around a limit
(docs/specs/security.md §6): when it cannot be reached, the call is answered by the database
backend, and the next calls go there too for ``retry_seconds`` before Redis is tried again. The
outage is logged once, and so is the recovery. Attempt counters of codes never live here.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

import structlog
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from nopass.core.ports import UnitOfWork
from nopass.ratelimit.base import (
    Breaker,
    Counter,
    Decision,
    Guarded,
    RateLimiter,
    Tripped,
    Window,
    check_distinct,
    decide,
)

T = TypeVar("T")
KEY_PREFIX = "nopass:rl:"
TTL_SLACK_MS = 60_000
TIMEOUT_SECONDS = 1.0

# Shared by HIT and GUARDED. ``hit(first, arg, counting)`` checks KEYS[first..] (limit and
# length (ms) of each in ARGV from ``arg``) and counts one in each when ``counting`` and all
# have room. Reply: counted (1/0), then start (ms, -1 when closed) and count per window.
# ARGV[1] is now (ms), ARGV[#ARGV] the TTL slack (ms).
COUNTING = """
local now = tonumber(ARGV[1])
local slack = tonumber(ARGV[#ARGV])
local function counter(key, length)
  local stored = redis.call('HMGET', key, 's', 'c')
  local s, c = tonumber(stored[1]), tonumber(stored[2])
  if s == nil or c == nil or s + length <= now then return -1, 0 end
  return s, c
end
local function hit(first, arg, counting)
  local room = true
  local starts, counts = {}, {}
  for i = 1, #KEYS - first + 1 do
    local limit, length = tonumber(ARGV[arg + 2 * i - 2]), tonumber(ARGV[arg + 2 * i - 1])
    starts[i], counts[i] = counter(KEYS[first + i - 1], length)
    if counts[i] >= limit then room = false end
  end
  local counted = counting and room
  local reply = {counted and 1 or 0}
  for i = 1, #KEYS - first + 1 do
    local key = KEYS[first + i - 1]
    if counted then
      if starts[i] == -1 then
        redis.call('HSET', key, 's', ARGV[1], 'c', 1)
        redis.call('PEXPIRE', key, tonumber(ARGV[arg + 2 * i - 1]) + slack)
        starts[i], counts[i] = now, 1
      else
        counts[i] = redis.call('HINCRBY', key, 'c', 1)
      end
    end
    reply[#reply + 1] = starts[i]
    reply[#reply + 1] = counts[i]
  end
  return reply
end
"""

# KEYS: the windows; ARGV: now (ms), "1" to count or "0" to peek, then limit and length (ms)
# of each window, then the TTL slack. Reply: ``hit``'s.
HIT = COUNTING + "return hit(1, 3, ARGV[2] == '1')"

# KEYS: the breaker's trip window, its sent window, then the request's windows. ARGV: now (ms),
# the verified windows' key prefix and length (ms), min sent, min percent, the trip window's
# limit and length (ms), then limit and length (ms) of the sent window and of each window, then
# the TTL slack. The verified window's key is read from the sent window's start, so it is not
# in KEYS (a single Redis, not a cluster). Reply: verdict (0: through, 1: tripped now, 2: open
# already), the trip window's start (ms) and count, the sent and verified counts, then
# ``hit``'s over the sent window and the request's windows (counted only when through).
GUARDED = (
    COUNTING
    + """
local ts, tc = counter(KEYS[1], tonumber(ARGV[7]))
local ss, sc = counter(KEYS[2], tonumber(ARGV[9]))
local vc = 0
if ss ~= -1 then
  local _
  _, vc = counter(ARGV[2] .. ':' .. string.format('%d', ss), tonumber(ARGV[3]))
end
local verdict = 0
if ts ~= -1 and tc >= tonumber(ARGV[6]) then
  verdict = 2
elseif sc >= tonumber(ARGV[4]) and vc * 100 < tonumber(ARGV[5]) * sc then
  verdict = 1
  redis.call('HSET', KEYS[1], 's', ARGV[1], 'c', 1)
  redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[7]) + slack)
  ts, tc = now, 1
end
local reply = {verdict, ts, tc, sc, vc}
for _, value in ipairs(hit(2, 8, verdict == 0)) do reply[#reply + 1] = value end
return reply
"""
)

# KEYS[1]: the window; ARGV: its start (ms) as counted, now (ms), length (ms).
REFUND = """
local stored = redis.call('HMGET', KEYS[1], 's', 'c')
if stored[1] == ARGV[1] and tonumber(stored[2]) > 0
   and tonumber(stored[1]) + tonumber(ARGV[3]) > tonumber(ARGV[2]) then
  redis.call('HINCRBY', KEYS[1], 'c', -1)
end
return 0
"""


def _log() -> structlog.typing.FilteringBoundLogger:
    # Looked up when used, so it writes where logging is configured now (not at import).
    logger: structlog.typing.FilteringBoundLogger = structlog.get_logger("nopass.ratelimit")
    return logger


def _ms(moment: datetime) -> int:
    return round(moment.timestamp() * 1000)


def _moment(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)


def _limits(windows: Sequence[Window]) -> list[int]:
    return [n for w in windows for n in (w.limit, w.seconds * 1000)]


def _decisions(windows: Sequence[Window], reply: Sequence[Any], now: datetime) -> list[Decision]:
    """The decisions of ``hit``'s reply (counted, then start and count per window)."""
    counted = bool(int(reply[0]))
    states: list[Counter | None] = []
    for i in range(len(windows)):
        start, count = int(reply[1 + 2 * i]), int(reply[2 + 2 * i])
        if start < 0:
            states.append(None)
        elif counted:  # ``decide`` adds this hit again
            states.append(Counter(_moment(start), count - 1))
        else:
            states.append(Counter(_moment(start), count))
    decisions, _ = decide(windows, states, now, counting=counted)
    return decisions


class RedisRateLimiter:
    def __init__(self, url: str, *, fallback: RateLimiter, retry_seconds: float = 5.0) -> None:
        self._client: Redis = Redis.from_url(
            url,
            socket_timeout=TIMEOUT_SECONDS,
            socket_connect_timeout=TIMEOUT_SECONDS,
            retry=Retry(NoBackoff(), 0),
            retry_on_error=[],
        )
        self._hit = self._client.register_script(HIT)
        self._guarded = self._client.register_script(GUARDED)
        self._refund = self._client.register_script(REFUND)
        self._fallback = fallback
        self._retry_seconds = retry_seconds
        self._skip_until = 0.0
        self._down = False

    async def hit(
        self, windows: Sequence[Window], now: datetime, *, within: UnitOfWork | None = None
    ) -> list[Decision]:
        check_distinct(windows)
        return await self._either(
            lambda: self._run(windows, now, counting=True),
            lambda: self._fallback.hit(windows, now, within=within),
        )

    async def hit_guarded(
        self,
        windows: Sequence[Window],
        breaker: Breaker,
        now: datetime,
        *,
        within: UnitOfWork | None = None,
    ) -> Guarded:
        check_distinct([*windows, breaker.sent, breaker.trip])
        return await self._either(
            lambda: self._run_guarded(windows, breaker, now),
            lambda: self._fallback.hit_guarded(windows, breaker, now, within=within),
        )

    async def peek(
        self, windows: Sequence[Window], now: datetime, *, within: UnitOfWork | None = None
    ) -> list[Decision]:
        check_distinct(windows)
        return await self._either(
            lambda: self._run(windows, now, counting=False),
            lambda: self._fallback.peek(windows, now, within=within),
        )

    async def refund(
        self, decision: Decision, now: datetime, *, within: UnitOfWork | None = None
    ) -> None:
        if decision.started_at is None:
            return

        async def redis_refund() -> None:
            args = [_ms(decision.started_at or now), _ms(now), decision.window.seconds * 1000]
            await self._refund(keys=[KEY_PREFIX + decision.window.key], args=args)

        await self._either(
            redis_refund, lambda: self._fallback.refund(decision, now, within=within)
        )

    async def aclose(self) -> None:
        await self._client.aclose()

    async def _run(
        self, windows: Sequence[Window], now: datetime, *, counting: bool
    ) -> list[Decision]:
        args: list[Any] = [_ms(now), "1" if counting else "0", *_limits(windows), TTL_SLACK_MS]
        reply = await self._hit(keys=[KEY_PREFIX + w.key for w in windows], args=args)
        return _decisions(windows, reply, now)

    async def _run_guarded(
        self, windows: Sequence[Window], breaker: Breaker, now: datetime
    ) -> Guarded:
        counted = [breaker.sent, *windows]
        args: list[Any] = [
            _ms(now),
            KEY_PREFIX + breaker.verified_prefix,
            breaker.verified_seconds * 1000,
            breaker.min_sent,
            breaker.min_percent,
            breaker.trip.limit,
            breaker.trip.seconds * 1000,
            *_limits(counted),
            TTL_SLACK_MS,
        ]
        keys = [KEY_PREFIX + w.key for w in (breaker.trip, *counted)]
        reply = await self._guarded(keys=keys, args=args)
        verdict, trip_start, trip_count, sent, verified = (int(v) for v in reply[:5])
        tripped = None
        if verdict:
            started = _moment(trip_start)
            decision = Decision(
                window=breaker.trip,
                allowed=verdict == 1,
                count=trip_count,
                started_at=started,
                reset_at=started + breaker.trip.length,
            )
            tripped = Tripped(decision, verdict == 1, sent, verified)
        return Guarded(_decisions(counted, reply[5:], now)[1:], tripped)

    async def _either(
        self, primary: Callable[[], Awaitable[T]], fallback: Callable[[], Awaitable[T]]
    ) -> T:
        if time.monotonic() < self._skip_until:
            return await fallback()
        try:
            result = await primary()
        except (RedisError, OSError, TimeoutError) as exc:
            self._skip_until = time.monotonic() + self._retry_seconds
            if not self._down:
                self._down = True
                _log().warning("redis_unavailable_using_database", error=type(exc).__name__)
            return await fallback()
        if self._down:
            self._down = False
            _log().info("redis_available_again")
        return result
