"""The domain vocabulary: frozen records with no I/O.

Field names follow Auth0's Management API where an Auth0 concept exists.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum
from typing import Any, ClassVar

from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey

from nopass.core.channel import Channel as Channel  # re-exported: the vocabulary
from nopass.core.options import (
    DEFAULT_CODE,
    CodeOptions,
    ConnectionOptions,
    IdTokenPolicy,
    OtherOptions,
    RateLimits,
    RefreshTokenPolicy,
)

PASSWORDLESS_OTP_GRANT = "http://auth0.com/oauth/grant-type/passwordless/otp"
PASSWORDLESS_STRATEGIES = frozenset(Channel)

JSON = dict[str, Any]


class AuthMethod(StrEnum):
    NONE = "none"
    SECRET_POST = "client_secret_post"  # noqa: S105 (a method name, not a secret)
    SECRET_BASIC = "client_secret_basic"  # noqa: S105
    PRIVATE_KEY_JWT = "private_key_jwt"


@dataclass(frozen=True, slots=True)
class TestIdentity:
    """A fixed code for one identity (app-store review, CI): nothing is sent, send limits do
    not apply, every use is audited; after ``expires_at`` the identity is an ordinary one."""

    __test__: ClassVar[bool] = False  # not a pytest test class

    connection: str  # the connection's name
    identifier: str  # normalised like a typed identifier (lower-case email, E.164)
    code: str
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class Tenant:
    id: str
    name: str
    friendly_name: str | None
    default_audience: str | None
    rate_limits: RateLimits = field(default_factory=RateLimits)
    test_identities: tuple[TestIdentity, ...] = ()
    # Auth0's tenant settings the hosted login page shows (a logo, where to get help)
    picture_url: str | None = None
    support_email: str | None = None
    support_url: str | None = None

    def test_identity(self, connection: str, identifier: str, now: datetime) -> TestIdentity | None:
        """The unexpired test identity for (connection name, normalised identifier)."""
        for candidate in self.test_identities:
            if (
                candidate.connection == connection
                and candidate.identifier == identifier
                and now < candidate.expires_at
            ):
                return candidate
        return None


@dataclass(frozen=True, slots=True)
class RateLimitStatus:
    """One rate limit's state, as the ``x-ratelimit-*`` headers tell it (docs/specs/auth0-wire.md
    §1.4)."""

    limit: int
    remaining: int
    reset: int  # UNIX epoch seconds when the window closes


@dataclass(frozen=True, slots=True)
class Client:
    tenant_id: str
    client_id: str
    name: str
    app_type: str
    auth_method: AuthMethod
    secret_hash: str | None
    grant_types: tuple[str, ...]
    callbacks: tuple[str, ...]
    allowed_origins: tuple[str, ...] = ()
    allowed_logout_urls: tuple[str, ...] = ()  # GET /v2/logout `returnTo`, exact match
    web_origins: tuple[str, ...] = ()
    cross_origin_auth: bool = False
    ip_header_trusted: bool = False
    public_keys: tuple[str, ...] = ()  # PEM, for private_key_jwt
    jwt_configuration: IdTokenPolicy = field(default_factory=IdTokenPolicy)
    refresh_token: RefreshTokenPolicy = field(default_factory=RefreshTokenPolicy)

    @property
    def is_confidential(self) -> bool:
        return self.auth_method is not AuthMethod.NONE


@dataclass(frozen=True, slots=True)
class Connection:
    tenant_id: str
    id: str
    name: str
    strategy: str
    options: ConnectionOptions
    enabled_clients: frozenset[str]

    def __post_init__(self) -> None:
        if self.options.strategy != self.strategy:
            raise ValueError(f"{self.options.strategy} options for a {self.strategy} connection")

    @property
    def is_passwordless(self) -> bool:
        return self.strategy in PASSWORDLESS_STRATEGIES

    @property
    def channel(self) -> Channel:
        """The channel of a passwordless connection (``ValueError`` for any other)."""
        return Channel(self.strategy)

    @property
    def code(self) -> CodeOptions:
        return DEFAULT_CODE if isinstance(self.options, OtherOptions) else self.options.code

    @property
    def code_length(self) -> int:
        return self.code.length

    @property
    def code_lifetime(self) -> int:
        return self.code.lifetime

    @property
    def disable_signup(self) -> bool:
        return not isinstance(self.options, OtherOptions) and self.options.disable_signup


@dataclass(frozen=True, slots=True)
class EmailProvider:
    name: str  # smtp | outbox
    enabled: bool
    default_from_address: str | None
    credentials: Mapping[str, Any]
    settings: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class ResourceServer:
    """An API access tokens can be issued for (its ``identifier`` is the audience)."""

    identifier: str
    name: str
    token_lifetime: int
    allow_offline_access: bool
    scopes: tuple[str, ...] = ()  # the permissions a client grant may hand out


@dataclass(frozen=True, slots=True)
class ClientGrant:
    """A client's permission to get client-credentials tokens for one API (``audience``),
    with at most ``scope``."""

    id: str  # cgr_ + 16 alphanumerics
    client_id: str
    audience: str
    scope: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class TenantConfig:
    """Everything a request of one tenant needs to read, loaded once and cached."""

    tenant: Tenant
    clients: Mapping[str, Client]
    connections: Mapping[str, Connection]
    email_provider: EmailProvider | None
    resource_servers: Mapping[str, ResourceServer] = field(default_factory=dict)
    client_grants: tuple[ClientGrant, ...] = ()

    def connection_by_id(self, connection_id: str) -> Connection | None:
        """The connection with this id (``connections`` is keyed by name; a tenant has few)."""
        return next((c for c in self.connections.values() if c.id == connection_id), None)

    def client_grant(self, client_id: str, audience: str) -> ClientGrant | None:
        for grant in self.client_grants:
            if grant.client_id == client_id and grant.audience == audience:
                return grant
        return None


@dataclass(frozen=True, slots=True)
class Resolved:
    """A tenant found by the request's Host, and the configured origin it matched."""

    config: TenantConfig
    origin: str  # e.g. "https://login.acme.example": links and issuers are built from it

    @property
    def issuer(self) -> str:
        return self.origin + "/"


@dataclass(frozen=True, slots=True)
class Challenge:
    """A pending one-time code (and the link that carries it). Only its HMAC is stored."""

    id: str
    tenant_id: str
    connection_id: str
    client_id: str
    identifier: str
    code_hmac: str
    key_id: str
    send: str
    created_at: datetime
    expires_at: datetime
    phantom: bool = False  # an identity that may not sign up: never deliverable, never valid
    auth_params: Mapping[str, str] = field(default_factory=dict)
    attempts: int = 0
    consumed_at: datetime | None = None
    voided_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Message:
    """A rendered message to one recipient."""

    channel: Channel
    recipient: str
    subject: str
    text: str
    html: str | None = None
    sender: str | None = None


@dataclass(frozen=True, slots=True)
class OutboxEntry:
    id: str
    tenant_id: str
    channel: Channel
    recipient: str
    provider: str  # smtp | outbox
    status: str
    attempts: int
    created_at: datetime
    message: Message | None  # None once delivered (the body is purged)
    code: str | None = None  # only for dev outbox display
    link: str | None = None


@dataclass(frozen=True, slots=True)
class AuditEvent:
    """One tenant log entry, with Auth0's event type codes (``cls``, ``cs``, ``fn``, ...)."""

    tenant_id: str
    type: str
    description: str = ""
    ip: str | None = None
    user_agent: str | None = None
    client_id: str | None = None
    connection: str | None = None
    user_name: str | None = None
    user_id: str | None = None
    details: Mapping[str, Any] = field(default_factory=dict)

    def but(self, type_: str, description: str = "", *, user_id: str | None = None) -> AuditEvent:
        """This event's context (who, where, which client) for another event type."""
        return replace(
            self,
            type=type_,
            description=description,
            user_id=user_id if user_id is not None else self.user_id,
        )


LOG_ID_DIGITS = 20


@dataclass(frozen=True, slots=True)
class LoggedEvent:
    """An audit event as stored: ``log_id`` is its number as fixed-width decimal, so log ids
    sort as they were written and a checkpoint (``from``) is "after this one"."""

    log_id: str
    date: datetime
    event: AuditEvent

    @staticmethod
    def id_of(number: int) -> str:
        return f"{number:0{LOG_ID_DIGITS}d}"

    @staticmethod
    def number_of(log_id: str) -> int | None:
        """The stored number of a log id (exactly its digits: ``1`` names no log, so each
        event has one id); None for anything that is not one."""
        if not (log_id.isascii() and log_id.isdigit()) or len(log_id) != LOG_ID_DIGITS:
            return None
        return int(log_id)


@dataclass(frozen=True, slots=True)
class User:
    """A passwordless user: one per (tenant, connection, identifier)."""

    tenant_id: str
    user_id: str  # "email|<24 hex>" or "sms|<24 hex>"
    connection_id: str
    identifier: str
    profile: Mapping[str, Any]  # email/phone, *_verified, name, nickname, picture
    created_at: datetime
    updated_at: datetime
    last_login: datetime | None = None
    last_ip: str | None = None
    logins_count: int = 0
    app_metadata: Mapping[str, Any] = field(default_factory=dict)
    user_metadata: Mapping[str, Any] = field(default_factory=dict)
    blocked: bool = False  # by an administrator: every sign-in refused


@dataclass(frozen=True, slots=True)
class RefreshGrant:
    """What a refresh token stands for (its value is only known to the client)."""

    id: str
    family_id: str
    client_id: str
    user_id: str
    scope: str
    audience: str | None
    created_at: datetime
    expires_at: datetime | None
    rotated_at: datetime | None
    revoked_at: datetime | None


@dataclass(frozen=True, slots=True)
class SigningKey:
    """A tenant's RS256 key: ``jwk`` is the public half as published (kid, alg, use)."""

    kid: str
    private: RSAPrivateKey
    jwk: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class AuthorizationCode:
    id: str
    client_id: str
    user_id: str
    redirect_uri: str
    scope: str
    audience: str | None
    nonce: str | None
    code_challenge: str | None
    code_challenge_method: str | None
    auth_time: datetime
    created_at: datetime
    expires_at: datetime
    used_at: datetime | None = None
    refresh_family_id: str | None = None


@dataclass(frozen=True, slots=True)
class Session:
    id: str
    user_id: str
    created_at: datetime
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class LoginTransaction:
    id: str
    client_id: str
    params: Mapping[str, str]
    created_at: datetime
    expires_at: datetime
    connection: str | None = None
    identifier: str | None = None
    challenge_id: str | None = None
    send: str | None = None
    last_sent_at: datetime | None = None
    completed_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class LoginTicket:
    id: str
    co_id: str
    co_verifier_hash: str
    client_id: str
    user_id: str
    realm: str
    expires_at: datetime
