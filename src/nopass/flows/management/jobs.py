"""Users import and export jobs of the Management API (docs/specs/management-api.md §7.1,
§7.3-§7.5): submitted here, run in the background by ``job_runner``.

A job lives 24 hours (then it is 404 and purged). An import takes a users file of at most
500 KB, and a tenant runs at most two imports at once. A completed export is shown with a
``location``: a URL with an unguessable token, minted when the job is read by a caller with
``read:users``, that works once and for ``DOWNLOAD_LIFETIME``; a newer one replaces it, and
once downloaded the file is gone.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta

from nopass.core.errors import (
    ImportFileTooLarge,
    InvalidManagementRequest,
    ObjectNotFound,
    TooManyJobs,
    UnknownConnectionName,
)
from nopass.core.ids import job_id
from nopass.core.jobs import EXPORT, IMPORT, KEPT_FOR, PENDING, Download, Job, RowError
from nopass.core.models import AuditEvent, TenantConfig
from nopass.flows.management.caller import ApiCall, ManagementDeps

MAX_IMPORT_BYTES = 500 * 1000  # "The file size limit for a bulk import is 500KB"
CONCURRENT_IMPORTS = 2  # "There is a limit of two concurrent import jobs per tenant"
DOWNLOAD_LIFETIME = timedelta(minutes=10)
FORMATS = ("json", "csv")
READ_USERS = "read:users"


@dataclass(frozen=True, slots=True)
class ImportRequest:
    connection_id: str
    file: bytes
    upsert: bool = False
    external_id: str | None = None
    send_completion_email: bool = True


@dataclass(frozen=True, slots=True)
class ExportField:
    name: str
    export_as: str | None = None


@dataclass(frozen=True, slots=True)
class ExportRequest:
    connection_id: str | None = None
    format: str = "json"
    limit: int | None = None
    fields: Sequence[ExportField] = ()


@dataclass(frozen=True, slots=True)
class JobView:
    """A job, its connection's name, and the download token of a completed export (once
    minted for this reading; None otherwise)."""

    job: Job
    connection: str | None
    download_token: str | None = None


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _connection_name(tenant: TenantConfig, connection_id: str | None) -> str | None:
    if connection_id is None:
        return None
    connection = tenant.connection_by_id(connection_id)
    return connection.name if connection is not None else None


def _passwordless(tenant: TenantConfig, connection_id: str) -> str:
    connection = tenant.connection_by_id(connection_id)
    if connection is None:
        raise UnknownConnectionName(connection_id)
    if not connection.is_passwordless:
        raise InvalidManagementRequest(
            "nopass imports users into passwordless connections (email, sms) only"
        )
    return connection.name


async def submit_import(
    tenant: TenantConfig, request: ImportRequest, call: ApiCall, deps: ManagementDeps
) -> JobView:
    if len(request.file) > MAX_IMPORT_BYTES:
        raise ImportFileTooLarge(MAX_IMPORT_BYTES)
    name = _passwordless(tenant, request.connection_id)
    tenant_id = tenant.tenant.id
    now = deps.clock.now()
    options: dict[str, object] = {
        "upsert": request.upsert,
        "send_completion_email": request.send_completion_email,
        "client_id": call.caller.client_id,
    }
    if request.external_id is not None:
        options["external_id"] = request.external_id
    job = Job(
        id=job_id(),
        tenant_id=tenant_id,
        type=IMPORT,
        status=PENDING,
        created_at=now,
        connection_id=request.connection_id,
        options=options,
    )
    async with deps.uow() as uow:
        # The count locks the tenant's submits until the insert commits: two at once
        # cannot both pass as the second.
        if await uow.jobs.count_active(tenant_id, IMPORT) >= CONCURRENT_IMPORTS:
            raise TooManyJobs(CONCURRENT_IMPORTS)
        await uow.jobs.add(job, request.file)
        event = call.audit(tenant_id, "Create an import users job", connection=name, job_id=job.id)
        await uow.audit.add(event, now)
        await uow.commit()
    deps.job_submitted()
    return JobView(job, name)


async def submit_export(
    tenant: TenantConfig, request: ExportRequest, call: ApiCall, deps: ManagementDeps
) -> JobView:
    name = None
    if request.connection_id is not None:
        name = _connection_name(tenant, request.connection_id)
        if name is None:
            raise UnknownConnectionName(request.connection_id)
    tenant_id = tenant.tenant.id
    now = deps.clock.now()
    options: dict[str, object] = {"format": request.format, "client_id": call.caller.client_id}
    if request.limit is not None:
        options["limit"] = request.limit
    if request.fields:
        options["fields"] = [
            {"name": f.name, **({"export_as": f.export_as} if f.export_as else {})}
            for f in request.fields
        ]
    job = Job(
        id=job_id(),
        tenant_id=tenant_id,
        type=EXPORT,
        status=PENDING,
        created_at=now,
        connection_id=request.connection_id,
        options=options,
    )
    async with deps.uow() as uow:
        await uow.jobs.add(job, None)
        event = call.audit(tenant_id, "Create an export users job", connection=name, job_id=job.id)
        await uow.audit.add(event, now)
        await uow.commit()
    deps.job_submitted()
    return JobView(job, name)


async def _live_job(tenant: TenantConfig, job_id: str, deps: ManagementDeps) -> Job:
    async with deps.uow() as uow:
        job = await uow.jobs.get(tenant.tenant.id, job_id)
    if job is None or job.created_at <= deps.clock.now() - KEPT_FOR:
        raise ObjectNotFound("job", job_id)
    return job


async def get_job(
    tenant: TenantConfig, job_id: str, call: ApiCall, deps: ManagementDeps
) -> JobView:
    """The job; a completed export read with ``read:users`` gets a fresh download token."""
    job = await _live_job(tenant, job_id, deps)
    name = _connection_name(tenant, job.connection_id)
    if not (job.type == EXPORT and job.has_file and READ_USERS in call.caller.scopes):
        return JobView(job, name)
    token = secrets.token_urlsafe(32)
    expires = deps.clock.now() + DOWNLOAD_LIFETIME
    async with deps.uow() as uow:
        offered = await uow.jobs.offer_download(
            tenant.tenant.id, job.id, token_hash(token), expires
        )
        await uow.commit()
    return JobView(job, name, token if offered else None)


async def job_errors(
    tenant: TenantConfig, job_id: str, deps: ManagementDeps
) -> list[RowError] | Job:
    """The refused rows of an import (``[]`` when none), or the job itself when it failed
    as a whole (its ``status_details`` says why)."""
    job = await _live_job(tenant, job_id, deps)
    if job.status == "failed":
        return job
    async with deps.uow() as uow:
        return await uow.jobs.errors(tenant.tenant.id, job.id)


async def take_download(
    tenant: TenantConfig, token: str, deps: ManagementDeps, *, ip: str | None = None
) -> Download | None:
    """Spend a download token: the export's file (gzip), once; the download is audited
    ``sapi`` (from ``ip``, for the client that asked for the export)."""
    now = deps.clock.now()
    async with deps.uow() as uow:
        taken = await uow.jobs.take_download(tenant.tenant.id, token_hash(token), now)
        if taken is not None and taken.data is not None:
            event = AuditEvent(
                tenant_id=tenant.tenant.id,
                type="sapi",
                description="Download a users export",
                ip=ip,
                client_id=taken.job.options.get("client_id"),
                details={"job_id": taken.job.id, "bytes": len(taken.data)},
            )
            await uow.audit.add(event, now)
        await uow.commit()
    if taken is not None and taken.job.created_at <= now - KEPT_FOR:
        return Download(taken.job, None)
    return taken
