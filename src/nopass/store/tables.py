"""The relational schema (SQLAlchemy 2 typed models). Every tenant-owned row has ``tenant_id``.

Table models never leave ``nopass.store``: repositories turn them into ``nopass.core.models``.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    false,
    text,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

from nopass.store import user_keys

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC on every backend (SQLite stores naive text)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None or value.tzinfo is not None:
            return value
        return value.replace(tzinfo=UTC)

    # On SQLite the two steps (to UTC, then SQLAlchemy's text format; its regex parse, then
    # UTC) are done in one, by the C methods ``isoformat``/``fromisoformat``: the same text
    # ("2026-11-27 12:00:00.000000"), at a fraction of the CPU (a login reads and writes
    # some thirty of these).
    def bind_processor(self, dialect: Dialect) -> Callable[[Any], Any] | None:
        if dialect.name == "sqlite":
            return _sqlite_text
        return super().bind_processor(dialect)

    def result_processor(self, dialect: Dialect, coltype: object) -> Callable[[Any], Any] | None:
        if dialect.name == "sqlite":
            return _sqlite_datetime
        return super().result_processor(dialect, coltype)


def _sqlite_text(value: datetime | None) -> str | None:
    if value is None:
        return None
    if value.tzinfo is None:
        raise ValueError("naive datetime")
    if value.tzinfo is not UTC:
        value = value.astimezone(UTC)
    return value.replace(tzinfo=None).isoformat(" ", "microseconds")


def _sqlite_datetime(value: str | datetime | None) -> datetime | None:
    if value is None:
        return None
    parsed = datetime.fromisoformat(value) if isinstance(value, str) else value
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {  # noqa: RUF012 (SQLAlchemy reads it as is)
        dict[str, Any]: JSON,
        list[Any]: JSON,
        datetime: UTCDateTime(),
    }


def _tenant_fk() -> Mapped[str]:
    return mapped_column(
        String(32), ForeignKey("tenants.id", ondelete="CASCADE"), nullable=False, index=True
    )


class TenantRow(Base):
    __tablename__ = "tenants"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    friendly_name: Mapped[str | None] = mapped_column(String(255))
    default_audience: Mapped[str | None] = mapped_column(String(512))
    rate_limits: Mapped[dict[str, Any]] = mapped_column(default=dict)
    test_identities: Mapped[list[Any]] = mapped_column(default=list)
    # Auth0's tenant settings without a column of their own (picture_url, flags, ...)
    settings: Mapped[dict[str, Any]] = mapped_column(default=dict, server_default=text("'{}'"))
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class TenantDomainRow(Base):
    __tablename__ = "tenant_domains"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    tenant_id: Mapped[str] = _tenant_fk()
    origin: Mapped[str] = mapped_column(String(512))
    host: Mapped[str] = mapped_column(String(512), unique=True)


class ClientRow(Base):
    __tablename__ = "clients"
    __table_args__ = (
        UniqueConstraint("tenant_id", "client_id"),
        UniqueConstraint("tenant_id", "name"),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    tenant_id: Mapped[str] = _tenant_fk()
    client_id: Mapped[str] = mapped_column(String(128))
    name: Mapped[str] = mapped_column(String(255))
    secret_hash: Mapped[str | None] = mapped_column(String(64))
    settings: Mapped[dict[str, Any]] = mapped_column(default=dict)


class ConnectionRow(Base):
    __tablename__ = "connections"
    __table_args__ = (UniqueConstraint("tenant_id", "name"),)
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    tenant_id: Mapped[str] = _tenant_fk()
    name: Mapped[str] = mapped_column(String(128))
    strategy: Mapped[str] = mapped_column(String(64))
    options: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # Auth0's other connection properties given (display_name, realms, ...: config_file)
    settings: Mapped[dict[str, Any]] = mapped_column(default=dict, server_default=text("'{}'"))


class ConnectionClientRow(Base):
    __tablename__ = "connection_clients"
    tenant_id: Mapped[str] = _tenant_fk()
    connection_id: Mapped[str] = mapped_column(
        String(32), ForeignKey("connections.id", ondelete="CASCADE"), primary_key=True
    )
    client_id: Mapped[str] = mapped_column(String(128), primary_key=True)


class ResourceServerRow(Base):
    __tablename__ = "resource_servers"
    __table_args__ = (UniqueConstraint("tenant_id", "identifier"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    tenant_id: Mapped[str] = _tenant_fk()
    identifier: Mapped[str] = mapped_column(String(512))
    name: Mapped[str] = mapped_column(String(255))
    token_lifetime: Mapped[int] = mapped_column(Integer, default=86400)
    allow_offline_access: Mapped[bool] = mapped_column(Boolean, default=False)
    scopes: Mapped[list[Any]] = mapped_column(default=list, server_default=text("'[]'"))
    # Auth0's settings nopass keeps and shows (signing_alg, token_dialect, ...)
    settings: Mapped[dict[str, Any]] = mapped_column(default=dict, server_default=text("'{}'"))


class ClientGrantRow(Base):
    """A client's permission to get client-credentials tokens for one audience."""

    __tablename__ = "client_grants"
    __table_args__ = (UniqueConstraint("tenant_id", "client_id", "audience"),)
    id: Mapped[str] = mapped_column(String(24), primary_key=True)  # cgr_ + 16 alphanumerics
    tenant_id: Mapped[str] = _tenant_fk()
    client_id: Mapped[str] = mapped_column(String(128))
    audience: Mapped[str] = mapped_column(String(512))
    scope: Mapped[list[Any]] = mapped_column(default=list)
    created_at: Mapped[datetime]
    # Auth0's settings nopass keeps and shows (organization_usage, ...)
    settings: Mapped[dict[str, Any]] = mapped_column(default=dict, server_default=text("'{}'"))


class EmailProviderRow(Base):
    __tablename__ = "email_providers"
    tenant_id: Mapped[str] = mapped_column(
        String(32), ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True
    )
    name: Mapped[str] = mapped_column(String(32))
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    default_from_address: Mapped[str | None] = mapped_column(String(512))
    credentials: Mapped[dict[str, Any]] = mapped_column(default=dict)
    settings: Mapped[dict[str, Any]] = mapped_column(default=dict)


class UserRow(Base):
    __tablename__ = "users"
    __table_args__ = (
        UniqueConstraint("tenant_id", "connection_id", "identifier"),
        UniqueConstraint("tenant_id", "user_id"),
        Index("ix_users_tenant_created", "tenant_id", "created_at", "user_id"),
        Index("ix_users_tenant_identifier", "tenant_id", "identifier"),
        # the orders and searches of GET /api/v2/users (migration 0007; store/user_keys.py)
        Index("ix_users_tenant_updated", "tenant_id", "updated_at", "user_id"),
        Index("ix_users_tenant_last_login", "tenant_id", "last_login", "user_id"),
        Index("ix_users_tenant_logins_count", "tenant_id", "logins_count", "user_id"),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    tenant_id: Mapped[str] = _tenant_fk()
    user_id: Mapped[str] = mapped_column(String(64))
    connection_id: Mapped[str] = mapped_column(
        String(32), ForeignKey("connections.id", ondelete="CASCADE")
    )
    identifier: Mapped[str] = mapped_column(String(320))
    profile: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    last_login: Mapped[datetime | None]
    last_ip: Mapped[str | None] = mapped_column(String(64))
    logins_count: Mapped[int] = mapped_column(Integer, default=0)
    # Server-side defaults only, so the login's upsert stays prebuilt (see lost_claims).
    app_metadata: Mapped[dict[str, Any]] = mapped_column(server_default=text("'{}'"))
    user_metadata: Mapped[dict[str, Any]] = mapped_column(server_default=text("'{}'"))
    blocked: Mapped[bool] = mapped_column(Boolean, server_default=false())


def _user_key_indexes() -> None:
    """The expression indexes of ``store/user_keys.py``, each on its own dialect."""
    users = table(UserRow)
    for name, dialect, expression, ordered in user_keys.indexes():
        columns: list[Any] = [users.c.tenant_id, text(expression)]
        if ordered:
            columns.append(users.c.user_id)
        Index(name, *columns).ddl_if(dialect=dialect)


class ChallengeRow(Base):
    """A one-time code. ``code_hmac`` is HMAC-SHA256 over (id, code); never the code."""

    __tablename__ = "challenges"
    __table_args__ = (
        Index("ix_challenges_identity", "tenant_id", "connection_id", "identifier", "created_at"),
        Index("ix_challenges_expires_at", "expires_at"),
    )
    id: Mapped[str] = mapped_column(String(24), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(
        String(32), ForeignKey("tenants.id", ondelete="CASCADE"), nullable=False
    )
    connection_id: Mapped[str] = mapped_column(String(32))
    client_id: Mapped[str] = mapped_column(String(128))
    identifier: Mapped[str] = mapped_column(String(320))
    code_hmac: Mapped[str] = mapped_column(String(64))
    key_id: Mapped[str] = mapped_column(String(16))
    send: Mapped[str] = mapped_column(String(16))
    auth_params: Mapped[dict[str, Any]] = mapped_column(default=dict)
    phantom: Mapped[bool] = mapped_column(Boolean, default=False)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    consumed_at: Mapped[datetime | None]
    voided_at: Mapped[datetime | None]


class OutboxRow(Base):
    """A message waiting for (or done with) delivery. ``payload`` is sealed (AES-GCM)."""

    __tablename__ = "outbox_messages"
    __table_args__ = (
        Index("ix_outbox_messages_due", "status", "next_attempt_at"),
        Index("ix_outbox_messages_tenant_created", "tenant_id", "created_at"),
    )
    id: Mapped[str] = mapped_column(String(24), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(
        String(32), ForeignKey("tenants.id", ondelete="CASCADE"), nullable=False
    )
    channel: Mapped[str] = mapped_column(String(8))
    provider: Mapped[str] = mapped_column(String(16))
    recipient: Mapped[str] = mapped_column(String(320))
    challenge_id: Mapped[str | None] = mapped_column(String(24))
    payload: Mapped[str | None] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer, default=0)  # claims so far (a fence)
    # Claims whose lease ran out (the sender died or stalled): bounded by the retry policy.
    # Server-side defaults only: a Python-side default would take the insert off the prebuilt
    # path (store/prebuilt.py; tests/integration/test_login_statements.py).
    lost_claims: Mapped[int] = mapped_column(Integer, server_default="0")
    next_attempt_at: Mapped[datetime]
    lease_until: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime]
    sent_at: Mapped[datetime | None]


class AuditEventRow(Base):
    __tablename__ = "audit_events"
    __table_args__ = (
        Index("ix_audit_events_tenant_created", "tenant_id", "created_at"),
        Index("ix_audit_events_tenant_type", "tenant_id", "type"),
        Index("ix_audit_events_tenant_user", "tenant_id", "user_id", "id"),  # a user's logs
    )
    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    tenant_id: Mapped[str] = mapped_column(
        String(32), ForeignKey("tenants.id", ondelete="CASCADE"), nullable=False
    )
    type: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime]
    description: Mapped[str] = mapped_column(Text, default="")
    ip: Mapped[str | None] = mapped_column(String(64))
    user_agent: Mapped[str | None] = mapped_column(String(512))
    client_id: Mapped[str | None] = mapped_column(String(128))
    connection: Mapped[str | None] = mapped_column(String(128))
    user_name: Mapped[str | None] = mapped_column(String(320))
    user_id: Mapped[str | None] = mapped_column(String(64))
    details: Mapped[dict[str, Any]] = mapped_column(default=dict)


class ClientAssertionRow(Base):
    """``jti`` values of accepted private_key_jwt assertions, each accepted once."""

    __tablename__ = "client_assertions"
    tenant_id: Mapped[str] = mapped_column(
        String(32), ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True
    )
    client_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    jti: Mapped[str] = mapped_column(String(255), primary_key=True)
    expires_at: Mapped[datetime] = mapped_column(index=True)


class ConfigStateRow(Base):
    """One row whose revision grows whenever ``apply`` changes configuration."""

    __tablename__ = "config_state"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    revision: Mapped[int] = mapped_column(BigInteger, default=0)


def table(model: type[Base]) -> Table:
    """The Core ``Table`` of a model (typed: ``__table__`` is declared as a FromClause)."""
    return cast(Table, model.__table__)


_user_key_indexes()


class SigningKeyRow(Base):
    """A tenant's RS256 key. The private key is sealed with NOPASS_SECRET_KEY; at most one
    key per tenant is ``is_current`` (it signs); the others stay published in the JWKS."""

    __tablename__ = "signing_keys"
    __table_args__ = (
        Index(
            "uq_signing_keys_current",
            "tenant_id",
            unique=True,
            sqlite_where=text("is_current"),
            postgresql_where=text("is_current"),
        ),
    )
    kid: Mapped[str] = mapped_column(String(64), primary_key=True)
    tenant_id: Mapped[str] = _tenant_fk()
    alg: Mapped[str] = mapped_column(String(16), default="RS256")
    private_key: Mapped[str] = mapped_column(Text)
    public_jwk: Mapped[dict[str, Any]] = mapped_column(default=dict)
    is_current: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime]


class RefreshTokenRow(Base):
    """A refresh token, stored as the SHA-256 of its value. Tokens rotated from one another
    share a ``family_id``: reusing a rotated token revokes the whole family."""

    __tablename__ = "refresh_tokens"
    __table_args__ = (
        Index("ix_refresh_tokens_family", "tenant_id", "family_id"),
        Index("ix_refresh_tokens_tenant_user", "tenant_id", "user_id"),  # a user's tokens
    )
    id: Mapped[str] = mapped_column(String(24), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(
        String(32), ForeignKey("tenants.id", ondelete="CASCADE"), nullable=False
    )
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    family_id: Mapped[str] = mapped_column(String(24))
    client_id: Mapped[str] = mapped_column(String(128))
    user_id: Mapped[str] = mapped_column(String(64))
    scope: Mapped[str] = mapped_column(Text)
    audience: Mapped[str | None] = mapped_column(String(512))
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime | None]
    rotated_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]


class FailureWindowRow(Base):
    """Failed verifications of one identity in the current window (docs/specs/security.md §6)."""

    __tablename__ = "failure_windows"
    tenant_id: Mapped[str] = mapped_column(
        String(32), ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True
    )
    connection_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    identifier: Mapped[str] = mapped_column(String(320), primary_key=True)
    window_start: Mapped[datetime]
    failures: Mapped[int] = mapped_column(Integer, default=0)


class AuthorizationCodeRow(Base):
    """An OAuth authorization code (RFC 6749 §4.1), stored as SHA-256, valid ≤ 60 s, once.
    ``refresh_family_id`` remembers what the first redemption issued, so that a second
    redemption can revoke it (RFC 6749 §4.1.2)."""

    __tablename__ = "authorization_codes"
    id: Mapped[str] = mapped_column(String(24), primary_key=True)
    tenant_id: Mapped[str] = _tenant_fk()
    code_hash: Mapped[str] = mapped_column(String(64), unique=True)
    client_id: Mapped[str] = mapped_column(String(128))
    user_id: Mapped[str] = mapped_column(String(64))
    redirect_uri: Mapped[str] = mapped_column(Text)
    scope: Mapped[str] = mapped_column(Text)
    audience: Mapped[str | None] = mapped_column(String(512))
    nonce: Mapped[str | None] = mapped_column(Text)
    code_challenge: Mapped[str | None] = mapped_column(String(128))
    code_challenge_method: Mapped[str | None] = mapped_column(String(8))
    auth_time: Mapped[datetime]
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime] = mapped_column(index=True)
    used_at: Mapped[datetime | None]
    refresh_family_id: Mapped[str | None] = mapped_column(String(24))


class SessionRow(Base):
    """A browser session at nopass (the hosted page's cookie), stored as SHA-256."""

    __tablename__ = "sessions"
    __table_args__ = (Index("ix_sessions_tenant_user", "tenant_id", "user_id"),)  # a user's
    id: Mapped[str] = mapped_column(String(24), primary_key=True)
    tenant_id: Mapped[str] = _tenant_fk()
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime] = mapped_column(index=True)
    revoked_at: Mapped[datetime | None]


class LoginTransactionRow(Base):
    """One visit to the hosted login page: the authorization request it serves, then the
    identity it sent a code or link to. Found by the SHA-256 of its cookie value."""

    __tablename__ = "login_transactions"
    id: Mapped[str] = mapped_column(String(24), primary_key=True)
    tenant_id: Mapped[str] = _tenant_fk()
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    client_id: Mapped[str] = mapped_column(String(128))
    params: Mapped[dict[str, Any]] = mapped_column(default=dict)
    connection: Mapped[str | None] = mapped_column(String(128))
    identifier: Mapped[str | None] = mapped_column(String(320))
    challenge_id: Mapped[str | None] = mapped_column(String(24))
    send: Mapped[str | None] = mapped_column(String(16))
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime] = mapped_column(index=True)
    last_sent_at: Mapped[datetime | None]
    completed_at: Mapped[datetime | None]


class LoginTicketRow(Base):
    """A ``/co/authenticate`` login ticket (docs/specs/auth0-wire.md §5.2-5.3, §12.11): 5 minutes,
    once, bound to its client; ``co_verifier`` is checked when the browser presents its cookie."""

    __tablename__ = "login_tickets"
    id: Mapped[str] = mapped_column(String(24), primary_key=True)
    tenant_id: Mapped[str] = _tenant_fk()
    ticket_hash: Mapped[str] = mapped_column(String(64), unique=True)
    co_id: Mapped[str] = mapped_column(String(64))
    co_verifier_hash: Mapped[str] = mapped_column(String(64))
    client_id: Mapped[str] = mapped_column(String(128))
    user_id: Mapped[str] = mapped_column(String(64))
    realm: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime] = mapped_column(index=True)
    used_at: Mapped[datetime | None]


class RateCounterRow(Base):
    """One rate-limit window (``nopass.ratelimit``): fixed, opened by the key's first hit,
    closing at ``expires_at``. Keys start with the tenant id; subjects are hashed."""

    __tablename__ = "rate_counters"
    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    window_start: Mapped[datetime]
    expires_at: Mapped[datetime] = mapped_column(index=True)
    count: Mapped[int] = mapped_column(Integer, default=0)


class JobRow(Base):
    """A users import or export (docs/specs/management-api.md §7): its upload (an import's
    file, dropped when done) and output (an export's gzip file, dropped once downloaded).
    ``attempts`` counts claims and fences each claim's writes; the lease is ``lease_until``.
    Only the hash of the download token is kept."""

    __tablename__ = "jobs"
    __table_args__ = (
        Index("ix_jobs_status_created", "status", "created_at"),
        Index("ix_jobs_created_at", "created_at"),
    )
    id: Mapped[str] = mapped_column(String(24), primary_key=True)
    tenant_id: Mapped[str] = _tenant_fk()
    type: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16))
    connection_id: Mapped[str | None] = mapped_column(String(32))
    options: Mapped[dict[str, Any]] = mapped_column(default=dict)
    summary: Mapped[dict[str, Any] | None]
    status_details: Mapped[str | None] = mapped_column(Text)
    progress: Mapped[int] = mapped_column(Integer, default=0)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    lease_until: Mapped[datetime | None]
    upload: Mapped[bytes | None] = mapped_column(LargeBinary)
    output: Mapped[bytes | None] = mapped_column(LargeBinary)
    download_hash: Mapped[str | None] = mapped_column(String(64), unique=True)
    download_expires_at: Mapped[datetime | None]
    downloaded_at: Mapped[datetime | None]
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class JobErrorRow(Base):
    """One refused row of an import: the row (as given) and its errors."""

    __tablename__ = "job_errors"
    __table_args__ = (Index("ix_job_errors_job_position", "job_id", "position"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    tenant_id: Mapped[str] = _tenant_fk()
    job_id: Mapped[str] = mapped_column(String(24), ForeignKey("jobs.id", ondelete="CASCADE"))
    position: Mapped[int] = mapped_column(Integer)
    user: Mapped[dict[str, Any]] = mapped_column(default=dict)
    errors: Mapped[list[Any]] = mapped_column(default=list)
    created_at: Mapped[datetime] = mapped_column(index=True)
