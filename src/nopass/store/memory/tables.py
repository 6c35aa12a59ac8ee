"""The in-memory store's rows: frozen records in dictionaries keyed like the SQL tables'
primary keys. A transaction works on a copy (``Tables.copy``), so rows are replaced, never
changed in place."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import Any

from nopass.core.jobs import Job, RowError
from nopass.core.models import (
    AuditEvent,
    AuthorizationCode,
    Challenge,
    LoginTicket,
    LoginTransaction,
    Message,
    RefreshGrant,
    Session,
    User,
)


class DuplicateKey(ValueError):
    """A row would break a unique constraint of the SQL schema (there: ``IntegrityError``)."""


@dataclass(frozen=True, slots=True)
class RefreshRecord:
    tenant_id: str
    token_hash: str
    grant: RefreshGrant


@dataclass(frozen=True, slots=True)
class CodeRecord:
    tenant_id: str
    code_hash: str
    code: AuthorizationCode


@dataclass(frozen=True, slots=True)
class SessionRecord:
    tenant_id: str
    token_hash: str
    session: Session
    revoked_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class TransactionRecord:
    tenant_id: str
    token_hash: str
    tx: LoginTransaction


@dataclass(frozen=True, slots=True)
class TicketRecord:
    tenant_id: str
    ticket_hash: str
    ticket: LoginTicket
    created_at: datetime
    used_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class FailureRecord:
    window_start: datetime
    failures: int


@dataclass(frozen=True, slots=True)
class OutboxRecord:
    """A queued message as the outbox stores it (SQL seals the body; memory keeps it)."""

    id: str
    tenant_id: str
    message: Message
    provider: str
    status: str  # pending (a provider will send it) | stored (the dev outbox keeps it)
    challenge_id: str | None
    code: str | None
    link: str | None
    attempts: int
    next_attempt_at: datetime
    created_at: datetime


@dataclass(frozen=True, slots=True)
class AuditRecord:
    event: AuditEvent
    created_at: datetime


@dataclass(frozen=True, slots=True)
class JobRecord:
    """A job as ``store/jobs.py`` keeps it: its lease, upload, output and download token."""

    job: Job
    lease_until: datetime | None = None
    upload: bytes | None = None
    output: bytes | None = None
    download_hash: str | None = None
    download_expires_at: datetime | None = None
    downloaded_at: datetime | None = None


Identity = tuple[str, str, str]  # tenant id, connection id, identifier


@dataclass(slots=True)
class Tables:
    challenges: dict[str, Challenge] = field(default_factory=dict)
    users: dict[tuple[str, str], User] = field(default_factory=dict)  # (tenant, user_id)
    refresh_tokens: dict[str, RefreshRecord] = field(default_factory=dict)
    authorization_codes: dict[str, CodeRecord] = field(default_factory=dict)
    sessions: dict[str, SessionRecord] = field(default_factory=dict)
    transactions: dict[str, TransactionRecord] = field(default_factory=dict)
    tickets: dict[str, TicketRecord] = field(default_factory=dict)
    failures: dict[Identity, FailureRecord] = field(default_factory=dict)
    outbox: dict[str, OutboxRecord] = field(default_factory=dict)
    assertions: dict[tuple[str, str, str], datetime] = field(default_factory=dict)
    audit: list[AuditRecord] = field(default_factory=list)
    configs: dict[str, dict[str, Any]] = field(default_factory=dict)  # tenant -> document
    secrets: dict[tuple[str, str], str] = field(default_factory=dict)  # client secret hashes
    jobs: dict[str, JobRecord] = field(default_factory=dict)
    job_errors: list[tuple[str, str, RowError]] = field(default_factory=list)  # tenant, job

    def copy(self) -> Tables:
        """A copy whose tables can change without changing these (rows are shared: frozen)."""
        return Tables(**{f.name: getattr(self, f.name).copy() for f in fields(self)})

    def audit_of(self, tenant_id: str) -> Iterator[AuditEvent]:
        return (r.event for r in self.audit if r.event.tenant_id == tenant_id)

    def outbox_of(self, tenant_id: str) -> list[OutboxRecord]:
        return [r for r in self.outbox.values() if r.tenant_id == tenant_id]


def insert(table: dict[Any, Any], key: Any, row: Any) -> None:
    if key in table:
        raise DuplicateKey(f"duplicate key {key!r}")
    table[key] = row
