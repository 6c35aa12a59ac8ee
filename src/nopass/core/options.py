"""The tenant, client and connection options the domain reads, typed, with their defaults.

These defaults are the only ones: ``config_file``'s pydantic models take theirs from here, the
stored JSON is read back into these records (``store.options``) with a missing key meaning
its default, and no flow restates a number. Field names are Auth0's where Auth0 has one;
where Auth0's is not a Python name (``from``, ``authParams``, ``totp.time_step``) the record
says what it is (``sender``, ``auth_params``, ``code.lifetime``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, TypeAlias

DEFAULT_ACCESS_TOKEN_LIFETIME = 86400  # seconds; also a resource server's default token_lifetime

SmsProvider: TypeAlias = Literal["sms_gateway", "twilio", "outbox"]
SmsSyntax: TypeAlias = Literal["md_with_macros", "liquid"]
OUTBOX_PROVIDER: SmsProvider = "outbox"


@dataclass(frozen=True, slots=True)
class CodeOptions:
    """``options.totp``: the one-time code's digits and its lifetime in seconds."""

    length: int = 6
    lifetime: int = 180  # Auth0's totp.time_step


DEFAULT_CODE = CodeOptions()


@dataclass(frozen=True, slots=True)
class EmailTemplate:
    """``options.email``: a custom Liquid template (each part optional)."""

    sender: str | None = None  # "from"
    subject: str | None = None
    syntax: Literal["liquid"] = "liquid"
    body: str | None = None


@dataclass(frozen=True, slots=True)
class EmailOptions:
    """The options of a ``strategy: email`` connection."""

    strategy: Literal["email"] = "email"
    code: CodeOptions = DEFAULT_CODE
    disable_signup: bool = False
    brute_force_protection: bool = True
    magic_link_confirmation: bool = True
    auth_params: Mapping[str, str] = field(default_factory=dict)  # Auth0's authParams
    template: EmailTemplate | None = None  # Auth0's email


@dataclass(frozen=True, slots=True)
class GatewayAuthentication:
    """``options.gateway_authentication`` of an ``sms_gateway`` connection (bearer JWT)."""

    method: str  # only "bearer" is supported: the sender refuses any other
    subject: str
    audience: str
    secret: str
    secret_base64_encoded: bool = False


@dataclass(frozen=True, slots=True)
class SmsOptions:
    """The options of a ``strategy: sms`` connection and its provider's settings."""

    strategy: Literal["sms"] = "sms"
    code: CodeOptions = DEFAULT_CODE
    disable_signup: bool = False
    brute_force_protection: bool = True
    provider: SmsProvider = OUTBOX_PROVIDER
    gateway_url: str | None = None
    gateway_authentication: GatewayAuthentication | None = None
    forward_req_info: bool = False
    twilio_sid: str | None = None
    twilio_token: str | None = None
    messaging_service_sid: str | None = None
    sender: str | None = None  # "from"
    syntax: SmsSyntax = "md_with_macros"
    template: str | None = None
    allowed_countries: frozenset[str] | None = None  # None: every country

    @property
    def synchronous(self) -> bool:
        """Sent through a real provider after the commit (else queued in the outbox)."""
        return self.provider != OUTBOX_PROVIDER


@dataclass(frozen=True, slots=True)
class OtherOptions:
    """A connection of a strategy nopass does not sign in with (``auth0``, say): it exists,
    ``/passwordless/start`` refuses it, and its options are kept as they were written."""

    strategy: str
    raw: Mapping[str, Any] = field(default_factory=dict)


PasswordlessOptions: TypeAlias = EmailOptions | SmsOptions
ConnectionOptions: TypeAlias = EmailOptions | SmsOptions | OtherOptions


@dataclass(frozen=True, slots=True)
class RateLimits:
    """A tenant's ``rate_limits`` (docs/specs/security.md §6); 0 disables a limit."""

    start_per_ip_per_hour: int = 50
    start_per_identity_per_10min: int = 5
    start_per_identity_per_day: int = 20
    failures_per_identity_per_15min: int = 10
    failures_per_ip_per_hour: int = 100
    sms_per_tenant_per_day: int = 1000
    management_per_client_per_second: int = 50  # Management API calls (at least 10 for deploy-cli)
    allowlist: tuple[str, ...] = ()  # CIDRs exempt from the per-IP limits


@dataclass(frozen=True, slots=True)
class RefreshTokenPolicy:
    """A client's ``refresh_token`` settings (Auth0 Management API names)."""

    rotation_type: Literal["rotating", "non-rotating"] = "non-rotating"
    expiration_type: Literal["expiring", "non-expiring"] = "non-expiring"
    token_lifetime: int = 2592000  # seconds, for expiring tokens
    leeway: int = 0  # seconds a rotated token may still be used

    @property
    def rotating(self) -> bool:
        return self.rotation_type == "rotating"

    @property
    def expiring(self) -> bool:
        return self.expiration_type == "expiring"


@dataclass(frozen=True, slots=True)
class IdTokenPolicy:
    """A client's ``jwt_configuration``: how its ID tokens are signed and how long they last."""

    lifetime_in_seconds: int = 36000
    alg: Literal["RS256"] = "RS256"
