"""Rate-limit counters: one contract (``base.RateLimiter``), three backends.

``sql`` (the database, shared by every process on it), ``redis`` (shared through
``NOPASS_REDIS_URL``, falling back to the database when Redis is unreachable) and ``memory``
(one process only: unit tests). Which limits exist is policy, in ``nopass.flows.limits``.
"""

from nopass.ratelimit.base import Decision, RateLimiter, Window

__all__ = ["Decision", "RateLimiter", "Window"]
