"""Who calls the Management API, and may they (docs/specs/management-api.md §1.5, §2.2, §9).

A call carries a bearer access token the tenant signed (RS256, a ``kid`` of its key set),
issued by the client-credentials grant: ``iss`` the tenant's issuer, ``aud`` the Management
API's audience at the origin the request came to, unexpired, ``gty`` ``client-credentials``
and ``sub`` ``<client_id>@clients``. Each endpoint accepts any one of its scopes. Calls are
counted per caller (``Limits.admit_management_call``) and every write is audited ``sapi``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import jwt

from nopass.core.clock import Clock
from nopass.core.errors import (
    InsufficientScope,
    InvalidAccessToken,
    ManagementTokenRejected,
    TokenProblem,
)
from nopass.core.management import management_audience
from nopass.core.models import AuditEvent, Resolved
from nopass.core.ports import KeyStore, UnitOfWorkFactory
from nopass.flows.limits import Limits
from nopass.tokens.jwt import unverified_kid, verify_access_token

CLIENT_SUFFIX = "@clients"
CLIENT_CREDENTIALS = "client-credentials"
CORRELATION_ID_CHARS = 64


def _nothing() -> None:
    return None


@dataclass(frozen=True, slots=True)
class ManagementDeps:
    uow: UnitOfWorkFactory
    keys: KeyStore
    clock: Clock
    limits: Limits
    config_changed: Callable[[], None] = _nothing  # this process reloads its configuration
    job_submitted: Callable[[], None] = _nothing  # this process's job runner looks at once


@dataclass(frozen=True, slots=True)
class Caller:
    """A verified Management API token: the machine client and its scopes."""

    client_id: str
    scopes: frozenset[str]

    @property
    def subject(self) -> str:
        return self.client_id + CLIENT_SUFFIX


@dataclass(frozen=True, slots=True)
class ApiCall:
    """One authorised call, as its ``sapi`` audit event tells it."""

    caller: Caller
    method: str
    path: str
    ip: str | None
    user_agent: str | None
    correlation_id: str | None  # X-Correlation-ID, cut to its first 64 characters

    def audit(
        self,
        tenant_id: str,
        description: str,
        *,
        user_id: str | None = None,
        connection: str | None = None,
        **facts: Any,
    ) -> AuditEvent:
        details: dict[str, Any] = {"request": {"method": self.method, "path": self.path}}
        if self.correlation_id:
            details["references"] = {"correlation_id": self.correlation_id}
        details.update(facts)
        return AuditEvent(
            tenant_id=tenant_id,
            type="sapi",
            description=description,
            ip=self.ip,
            user_agent=self.user_agent,
            client_id=self.caller.client_id,
            connection=connection,
            user_id=user_id,
            details=details,
        )


def correlation_id(header: str | None) -> str | None:
    return header[:CORRELATION_ID_CHARS] if header else None


async def authenticate(token: str | None, tenant: Resolved, deps: ManagementDeps) -> Caller:
    """The caller of a valid Management API token, or ``ManagementTokenRejected``."""
    if not token:
        raise ManagementTokenRejected(TokenProblem.MISSING, "no bearer token")
    tenant_id = tenant.config.tenant.id
    audience = management_audience(tenant.origin)
    keys = await deps.keys.public_keys(tenant_id, kid=unverified_kid(token))
    try:
        claims = verify_access_token(
            token, keys, issuer=tenant.issuer, audience=audience, now=deps.clock.now()
        )
    except InvalidAccessToken as exc:
        if exc.reason == "expired":
            raise ManagementTokenRejected(TokenProblem.EXPIRED, exc.reason) from exc
        if exc.reason == "InvalidAudienceError":
            named = _unverified_audience(token)
            raise ManagementTokenRejected(TokenProblem.AUDIENCE, exc.reason, named) from exc
        raise ManagementTokenRejected(TokenProblem.INVALID, exc.reason) from exc
    subject, scope = claims.get("sub"), claims.get("scope", "")
    if not isinstance(subject, str) or not isinstance(scope, str):
        raise ManagementTokenRejected(TokenProblem.INVALID, "claims of the wrong type")
    if claims.get("gty") != CLIENT_CREDENTIALS or not subject.endswith(CLIENT_SUFFIX):
        # a user's token is never a Management API token here (read:current_user is not served)
        raise ManagementTokenRejected(TokenProblem.INVALID, "not a client-credentials token")
    return Caller(client_id=subject.removesuffix(CLIENT_SUFFIX), scopes=frozenset(scope.split()))


def require(caller: Caller, accepted: Sequence[str]) -> None:
    """Any one of ``accepted`` suffices (``InsufficientScope`` lists them all)."""
    if caller.scopes.isdisjoint(accepted):
        raise InsufficientScope(accepted)


def _unverified_audience(token: str) -> str:
    try:
        aud = jwt.decode(token, options={"verify_signature": False}).get("aud")
    except jwt.PyJWTError:
        return ""
    if isinstance(aud, list):
        return " ".join(str(a) for a in aud)
    return str(aud) if aud is not None else ""
