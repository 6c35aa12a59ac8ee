"""User import and export jobs (docs/specs/management-api.md §7): what the store keeps of one.

A job is claimed by one runner at a time with a lease; ``attempts`` counts the claims and
fences every write of a claim (only the latest claim may write). ``progress`` is how many
rows of an import are done, so a job taken over after its runner died goes on from there.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

IMPORT = "users_import"
EXPORT = "users_export"
PENDING, PROCESSING, COMPLETED, FAILED = "pending", "processing", "completed", "failed"
ACTIVE = (PENDING, PROCESSING)
KEPT_FOR = timedelta(hours=24)  # "All job-related data is automatically deleted after 24 hours"
TIMEOUT = timedelta(hours=2)  # "Jobs time out after 2 hours"


@dataclass(frozen=True, slots=True)
class Job:
    id: str
    tenant_id: str
    type: str  # users_import | users_export
    status: str  # pending | processing | completed | failed
    created_at: datetime
    connection_id: str | None = None
    # import: upsert, external_id, send_completion_email; export: format, limit, fields.
    # Both: client_id (the caller, for the job's audit event).
    options: Mapping[str, Any] = field(default_factory=dict)
    summary: Mapping[str, int] | None = None
    status_details: str | None = None
    progress: int = 0
    attempts: int = 0
    has_file: bool = False  # an export's file is there to download (not yet taken)


@dataclass(frozen=True, slots=True)
class RowError:
    """One refused row of an import: the row as given (or a part of it) and why."""

    position: int
    user: Mapping[str, Any]
    errors: Sequence[Mapping[str, str]]  # {code, message, path?}


@dataclass(frozen=True, slots=True)
class Download:
    """The outcome of presenting a download token: the file (gzip), or None when the token
    was known but is spent or expired."""

    job: Job
    data: bytes | None
