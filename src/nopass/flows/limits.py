"""The rate limits and SMS fraud controls of docs/specs/security.md §6, as policy over a
``RateLimiter``.

    limit                          default     counted per                  refusal
    start_per_ip_per_hour          50 / h      client IP (allowlist exempt) 429 api_limit
    start_per_identity_per_10min   5 / 10 min  connection + identifier      429 api_limit
    start_per_identity_per_day     20 / day    connection + identifier      429 api_limit
    failures_per_ip_per_hour       100 / h     client IP (allowlist exempt) 429 api_limit
    sms_per_tenant_per_day         1000 / day  tenant (SMS only)            429 api_limit
    management_per_client_per_second  50 / s   Management API caller        429 too_many_requests
    allowed_countries              all         connection option            400 limit_sms
    SMS prefix velocity            30 / h      country code + 3 digits      429 limit_sms
    SMS conversion breaker         a country with >= 20 SMS and < 10 % verified in its hour
                                   gets no SMS for an hour                  429 limit_sms

A tenant's ``rate_limits`` overrides the first five and the Management API's; 0 disables one.
Every check runs before anything is stored or sent, and answers the same whether the identity
exists or not. A flow passes its unit of work (``uow``) and counts first thing in it: the
database backend then counts in the request's own transaction, and a refusal commits only its
audit event there. Without one, a database backend writes in a short transaction of its own.
Verification failures per IP are counted by reserving a hit before the code is checked and
refunding it when the code was right, so concurrent guesses cannot overrun the limit. The
conversion breaker is decided, and the send counted, in the same atomic step as the other
windows (``RateLimiter.hit_guarded``): however many starts race, a country gets
``BREAKER_MIN_SENT`` unverified SMS in its hour, and a start refused by any limit is counted
nowhere.
"""

from __future__ import annotations

import functools
import hashlib
import ipaddress
import logging
import math
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from nopass.core.channel import Channel
from nopass.core.clock import Clock
from nopass.core.errors import CountryNotAllowed, RateLimited
from nopass.core.models import AuditEvent, Client, Connection, RateLimitStatus, Tenant
from nopass.core.options import SmsOptions
from nopass.core.phone import country_of, prefix_of
from nopass.core.ports import RequestInfo, UnitOfWork, UnitOfWorkFactory
from nopass.ratelimit.base import Breaker, Decision, RateLimiter, Tripped, Window

HOUR, DAY = 3600, 86400
SMS_PREFIX_PER_HOUR = 30
BREAKER_MIN_SENT = 20
BREAKER_MIN_VERIFIED_PERCENT = 10
BREAKER_SECONDS = HOUR
UNLIMITED = 1_000_000_000  # counters kept for statistics only (the breaker's)
log = logging.getLogger("nopass.limits")
API_LIMIT = "api_limit"
SMS_LIMIT = "limit_sms"


@functools.lru_cache(maxsize=256)
def _networks(cidrs: tuple[str, ...]) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    return tuple(ipaddress.ip_network(c, strict=False) for c in cidrs)


def exempt(tenant: Tenant, ip: str | None) -> bool:
    """Is ``ip`` in the tenant's ``rate_limits.allowlist``?"""
    allowlist = tenant.rate_limits.allowlist
    if not ip or not allowlist:
        return False
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return False
    return any(address in net for net in _networks(allowlist))


def limit_ip(request: RequestInfo, client: Client, *, authenticated: bool) -> str | None:
    """The IP the per-IP limits count: ``auth0-forwarded-for`` when an authenticated
    confidential client trusted for it (``is_token_endpoint_ip_header_trusted``) sent one,
    else the client IP (socket peer, or ``X-Forwarded-For`` from a trusted proxy)."""
    trusted = authenticated and client.is_confidential and client.ip_header_trusted
    if trusted and request.forwarded_for:
        return request.forwarded_for
    return request.ip


def status_of(decision: Decision) -> RateLimitStatus:
    return RateLimitStatus(
        limit=decision.window.limit,
        remaining=decision.remaining,
        reset=math.ceil(decision.reset_at.timestamp()),
    )


def _digest(*parts: str) -> str:
    return hashlib.sha256("\x00".join(parts).encode()).hexdigest()[:32]


def _window(tenant: Tenant, name: str, subject: str, limit: int, seconds: int) -> Window:
    return Window(key=f"{tenant.id}:{name}:{subject}", limit=limit, seconds=seconds, name=name)


def _breaker(tenant: Tenant, country: str) -> Breaker:
    """The conversion breaker of ``country``: its sends per hour (``sms_sent``), the
    verifications of each hour of sends (``sms_verified:<country>:<its start, ms>``) and the
    trip (``sms_breaker``), open for ``BREAKER_SECONDS``."""
    return Breaker(
        trip=_window(tenant, "sms_breaker", country, 1, BREAKER_SECONDS),
        sent=_window(tenant, "sms_sent", country, UNLIMITED, HOUR),
        verified_prefix=f"{tenant.id}:sms_verified:{country}",
        verified_seconds=HOUR,
        min_sent=BREAKER_MIN_SENT,
        min_percent=BREAKER_MIN_VERIFIED_PERCENT,
    )


@dataclass(frozen=True, slots=True)
class Limits:
    limiter: RateLimiter
    uow: UnitOfWorkFactory  # for the audit events of refusals
    clock: Clock

    def _ip_window(self, tenant: Tenant, name: str, limit: int, ip: str | None) -> Window | None:
        if not limit or exempt(tenant, ip):
            return None
        return _window(tenant, name, ip or "unknown", limit, HOUR)

    async def admit_start(
        self,
        tenant: Tenant,
        connection: Connection,
        identifier: str,
        ip: str | None,
        audit: AuditEvent,
        *,
        test_identity: bool,
        uow: UnitOfWork | None = None,
    ) -> RateLimitStatus | None:
        """Count a start, or refuse it (``RateLimited``, ``CountryNotAllowed``) after writing
        its audit event (committed in ``uow`` with what it holds: nothing but the client's
        authentication). Returns the per-IP limit's state (None when it does not apply).
        A test identity is exempt from the send limits and the SMS controls (nothing is sent),
        not from the per-IP limit."""
        now = self.clock.now()
        sms = connection.channel is Channel.SMS and not test_identity
        country = country_of(identifier) if sms else ""
        if sms:
            await self._allowed_country(connection, country, audit, uow)
        limits = tenant.rate_limits
        ip_window = self._ip_window(
            tenant, "start_per_ip_per_hour", limits.start_per_ip_per_hour, ip
        )
        windows = [ip_window] if ip_window else []
        if not test_identity:
            subject = _digest(connection.id, identifier)
            for name, limit, seconds in (
                ("start_per_identity_per_10min", limits.start_per_identity_per_10min, 600),
                ("start_per_identity_per_day", limits.start_per_identity_per_day, DAY),
            ):
                if limit:
                    windows.append(_window(tenant, name, subject, limit, seconds))
        if sms:
            prefix = _window(
                tenant, "sms_prefix_per_hour", prefix_of(identifier), SMS_PREFIX_PER_HOUR, HOUR
            )
            windows.append(prefix)
            if budget := limits.sms_per_tenant_per_day:
                windows.append(_window(tenant, "sms_per_tenant_per_day", "all", budget, DAY))
            # The breaker is decided, and the send counted, with the request's windows in one
            # atomic step: concurrent starts cannot all find it shut (issue 13).
            guarded = await self.limiter.hit_guarded(
                windows, _breaker(tenant, country), now, within=uow
            )
            if guarded.tripped is not None:
                await self._tripped(guarded.tripped, audit, country, now, uow)
            decisions = guarded.decisions
        elif windows:
            decisions = await self.limiter.hit(windows, now, within=uow)
        else:
            return None
        refused = next((d for d in decisions if not d.allowed), None)
        if refused is not None:
            details = {"country": country} if sms else {}
            await self._refuse(refused, audit, ip, now, details, uow)
        return status_of(decisions[0]) if ip_window else None

    async def admit_management_call(self, tenant: Tenant, caller: str) -> RateLimitStatus | None:
        """Count one Management API call of ``caller`` (``<client_id>@clients``, or the IP
        of a request without a valid token), or refuse it with ``RateLimited`` (not audited:
        a flood would write one event per refused call). None when the limit is disabled."""
        limit = tenant.rate_limits.management_per_client_per_second
        if not limit:
            return None
        window = _window(tenant, "management_per_client_per_second", caller, limit, 1)
        now = self.clock.now()
        [decision] = await self.limiter.hit([window], now)
        if not decision.allowed:
            raise RateLimited(window.name, status_of(decision), _retry_after(decision, now))
        return status_of(decision)

    async def _allowed_country(
        self, connection: Connection, country: str, audit: AuditEvent, uow: UnitOfWork | None
    ) -> None:
        options = connection.options
        allowed = options.allowed_countries if isinstance(options, SmsOptions) else None
        if allowed is not None and country not in allowed:
            text = f"SMS refused: {country} is not an allowed country"
            await self._record(
                audit, SMS_LIMIT, text, {"control": "allowed_countries"}, country, uow
            )
            raise CountryNotAllowed(country)

    async def _tripped(
        self,
        tripped: Tripped,
        audit: AuditEvent,
        country: str,
        now: datetime,
        uow: UnitOfWork | None,
    ) -> None:
        """Refuse a start the conversion breaker refused (opened by it, or open already)."""
        if tripped.opened:
            text = (
                f"SMS conversion breaker opened for {country}: {tripped.sent} sent, "
                f"{tripped.verified} verified in the last hour; closed to it for an hour"
            )
            details: dict[str, Any] = {
                "control": "conversion_breaker",
                "opened": True,
                "sent": tripped.sent,
                "verified": tripped.verified,
            }
        else:
            text = f"SMS refused: the conversion breaker for {country} is open"
            details = {"control": "conversion_breaker"}
        await self._record(audit, SMS_LIMIT, text, details, country, uow)
        raise _breaker_refusal(tripped.decision, now)

    async def reserve_verification(
        self, tenant: Tenant, ip: str | None, audit: AuditEvent, uow: UnitOfWork | None = None
    ) -> Decision | None:
        """Count a code check against ``failures_per_ip_per_hour`` before it happens (a
        right code gives it back: ``verified``), or refuse it with ``RateLimited`` (its audit
        event committed in ``uow`` with what it holds: nothing but the client's
        authentication)."""
        limit = tenant.rate_limits.failures_per_ip_per_hour
        window = self._ip_window(tenant, "failures_per_ip_per_hour", limit, ip)
        if window is None:
            return None
        now = self.clock.now()
        [decision] = await self.limiter.hit([window], now, within=uow)
        if not decision.allowed:
            await self._refuse(decision, audit, ip, now, {}, uow)
        return decision

    async def verified(
        self,
        reservation: Decision | None,
        tenant: Tenant,
        connection: Connection,
        identifier: str,
        *,
        signed_in: bool,
        test_identity: bool = False,
        uow: UnitOfWork | None = None,
    ) -> None:
        """A right code: give the reserved failure back, and count a verified SMS for the
        conversion breaker when the code was consumed (``signed_in``). Best effort: a counter
        that cannot be reached (Redis down and the database too) is logged, not raised (the
        failure stays counted, which only errs on the safe side). Counted in ``uow``, the
        counters share the sign-in's database: if they fail, its commit fails with them."""
        now = self.clock.now()
        try:
            if reservation is not None:
                await self.limiter.refund(reservation, now, within=uow)
            if not signed_in or connection.channel is not Channel.SMS or test_identity:
                return
            breaker = _breaker(tenant, country_of(identifier))
            [sent] = await self.limiter.peek([breaker.sent], now, within=uow)
            if sent.started_at is not None:
                verified = breaker.verified_window(sent.started_at)
                await self.limiter.hit([verified], now, within=uow)
        except Exception as exc:  # the answer must not depend on a statistic
            log.warning("rate_counter_update_failed: %s", type(exc).__name__)

    async def _refuse(
        self,
        decision: Decision,
        audit: AuditEvent,
        ip: str | None,
        now: datetime,
        extra: dict[str, Any],
        uow: UnitOfWork | None,
    ) -> None:
        window = decision.window
        event = SMS_LIMIT if window.name == "sms_prefix_per_hour" else API_LIMIT
        details: dict[str, Any] = {
            "limit": window.name,
            "max": window.limit,
            "window_seconds": window.seconds,
            "reset": math.ceil(decision.reset_at.timestamp()),
            **extra,
        }
        if event == SMS_LIMIT:
            details["control"] = "prefix_velocity"
        text = f"Rate limit exceeded: {window.name}"
        refusal = replace(audit, type=event, description=text, ip=ip, details=details)
        await self._write(refusal, now, uow)
        raise RateLimited(window.name, status_of(decision), _retry_after(decision, now))

    async def _record(
        self,
        audit: AuditEvent,
        type_: str,
        text: str,
        details: dict[str, Any],
        country: str,
        uow: UnitOfWork | None,
    ) -> None:
        event = replace(
            audit, type=type_, description=text, details={**details, "country": country}
        )
        await self._write(event, self.clock.now(), uow)

    async def _write(self, event: AuditEvent, now: datetime, uow: UnitOfWork | None) -> None:
        """Commit a refusal's audit event: in the caller's unit of work, else in one of ours."""
        if uow is not None:
            await uow.audit.add(event, now)
            await uow.commit()
            return
        async with self.uow() as own:
            await own.audit.add(event, now)
            await own.commit()


def _retry_after(decision: Decision, now: datetime) -> int:
    return max(1, math.ceil((decision.reset_at - now).total_seconds()))


def _breaker_refusal(breaker: Decision, now: datetime) -> RateLimited:
    status = RateLimitStatus(
        limit=BREAKER_MIN_SENT, remaining=0, reset=math.ceil(breaker.reset_at.timestamp())
    )
    return RateLimited("sms_conversion_breaker", status, _retry_after(breaker, now))
