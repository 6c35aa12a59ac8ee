"""The background side of users import and export jobs (docs/specs/management-api.md §7).

``run_next`` claims one job (a lease: ``JobRepo.claim``) and runs it. An import goes through
its file in batches, each one transaction that writes its users (through the same checks as
``POST /users`` and ``PATCH /users/{id}``), its refused rows and the job's progress, fenced by
the claim: a runner that lost its claim (its lease ran out and another runner took the job)
writes nothing more, and the new runner goes on after the last batch committed. Every batch
renews the lease. A job claimed more than ``MAX_CLAIMS`` times, or older than two hours,
fails. Each finished job writes one ``sapi`` event with its summary (no user data).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, Protocol

from nopass.core.clock import Clock
from nopass.core.errors import InvalidManagementRequest, UnknownConnectionName
from nopass.core.jobs import COMPLETED, FAILED, IMPORT, TIMEOUT, Job, RowError
from nopass.core.models import AuditEvent, Connection, TenantConfig
from nopass.core.ports import UnitOfWork, UnitOfWorkFactory, UserSort
from nopass.flows.management import export_file
from nopass.flows.management.import_file import (
    UPSERTED,
    FileUnreadable,
    ImportRow,
    check_rows,
    read_file,
)
from nopass.flows.management.jobs import ExportField
from nopass.flows.management.users import UserPatch, UserView, new_user_record, patched_user

MAX_CLAIMS = 3  # a job whose runner died this often fails (it may be what kills them)
EXPORT_PAGE = 500
NOT_UPSERTED = "The user already exist and upsert parameter is false"  # Auth0's, recorded


class TenantLookup(Protocol):
    async def __call__(self, tenant_id: str) -> TenantConfig | None: ...


@dataclass(frozen=True, slots=True)
class RunnerDeps:
    uow: UnitOfWorkFactory
    clock: Clock
    tenants: TenantLookup
    user_object: Callable[[UserView], dict[str, Any]]  # the API's user object, for exports
    lease_seconds: float = 60.0
    batch: int = 100


class _LostClaim(Exception):
    """Another runner holds the job now."""


async def run_next(deps: RunnerDeps) -> bool:
    """Claim one job and run it; False when there was none to claim."""
    now = deps.clock.now()
    async with deps.uow() as uow:
        job = await uow.jobs.claim(now, now + timedelta(seconds=deps.lease_seconds))
        await uow.commit()
    if job is None:
        return False
    with contextlib.suppress(_LostClaim):
        await _run(job, deps)
    return True


async def _run(job: Job, deps: RunnerDeps) -> None:
    tenant = await deps.tenants(job.tenant_id)
    if job.attempts > MAX_CLAIMS:
        await _finish(job, deps, FAILED, details="The job was interrupted too often.")
    elif deps.clock.now() - job.created_at > TIMEOUT:
        await _finish(job, deps, FAILED, details="The job timed out.")
    elif tenant is None:
        await _finish(job, deps, FAILED, details="The tenant does not exist.")
    elif job.type == IMPORT:
        await _import(job, tenant, deps)
    else:
        await _export(job, tenant, deps)


async def _finish(
    job: Job,
    deps: RunnerDeps,
    status: str,
    *,
    summary: Mapping[str, int] | None = None,
    details: str | None = None,
    output: bytes | None = None,
    connection: str | None = None,
) -> None:
    now = deps.clock.now()
    async with deps.uow() as uow:
        finished = await uow.jobs.finish(
            job, status=status, summary=summary, details=details, output=output, now=now
        )
        if not finished:
            raise _LostClaim
        noun = "import" if job.type == IMPORT else "export"
        facts: dict[str, Any] = {"job_id": job.id, "status": status}
        if summary is not None:
            facts["summary"] = dict(summary)
        if details is not None:
            facts["status_details"] = details
        event = AuditEvent(
            tenant_id=job.tenant_id,
            type="sapi",
            description=f"Users {noun} job {status}",
            client_id=job.options.get("client_id"),
            connection=connection,
            details=facts,
        )
        await uow.audit.add(event, now)
        await uow.commit()


def _refused(row: ImportRow, code: str, message: str) -> RowError:
    return RowError(row.position, row.given, [{"code": code, "message": message}])


async def _import(job: Job, tenant: TenantConfig, deps: RunnerDeps) -> None:
    connection = tenant.connection_by_id(job.connection_id or "")
    if connection is None or not connection.is_passwordless:
        await _finish(job, deps, FAILED, details="The connection does not exist.")
        return
    async with deps.uow() as uow:
        raw = await uow.jobs.file(job.tenant_id, job.id)
    try:
        users = read_file(raw or b"")
    except FileUnreadable as exc:
        await _finish(job, deps, FAILED, details=str(exc), connection=connection.name)
        return
    rows = check_rows(users, connection)
    summary = dict(job.summary or {"failed": 0, "updated": 0, "inserted": 0, "total": len(rows)})
    upsert = bool(job.options.get("upsert"))
    done = job.progress
    lease = timedelta(seconds=deps.lease_seconds)
    while done < len(rows):
        batch = rows[done : done + deps.batch]
        counts = dict(summary)
        now = deps.clock.now()
        async with deps.uow() as uow:
            refused: list[RowError] = []
            for row in batch:
                outcome = (
                    row
                    if isinstance(row, RowError)
                    else await _import_row(uow, tenant, connection, row, upsert, now)
                )
                if isinstance(outcome, RowError):
                    refused.append(outcome)
                else:
                    counts[outcome] += 1
            counts["failed"] += len(refused)
            await uow.jobs.add_errors(job.tenant_id, job.id, refused, now)
            if not await uow.jobs.progress(
                job, done=done + len(batch), summary=counts, lease_until=now + lease
            ):
                raise _LostClaim
            await uow.commit()
        summary, done = counts, done + len(batch)
    await _finish(job, deps, COMPLETED, summary=summary, connection=connection.name)


async def _import_row(
    uow: UnitOfWork,
    tenant: TenantConfig,
    connection: Connection,
    row: ImportRow,
    upsert: bool,
    now: datetime,
) -> str | RowError:
    """``inserted`` or ``updated``, or the row refused."""
    tenant_id = tenant.tenant.id
    channel = connection.channel
    wanted = None if row.new.user_id is None else f"{channel.user_id_prefix}|{row.new.user_id}"
    by_id = await uow.users.get(tenant_id, wanted) if wanted else None
    by_identity = await uow.users.find(tenant_id, connection.id, row.identifier)
    if by_id is not None and by_id.connection_id != connection.id:
        return _refused(row, "CONFLICT", "The user_id is taken by a user of another connection")
    if by_identity is not None and wanted is not None and by_identity.user_id != wanted:
        if not upsert:
            return _refused(row, "DUPLICATED_USER", NOT_UPSERTED)
        code = "CONFLICT_EMAIL" if channel.field == "email" else "CONFLICT"
        message = f"The {channel.field} belongs to another user ({by_identity.user_id})"
        return _refused(row, code, message)
    match = by_id or by_identity
    if match is None:
        try:
            user, _ = new_user_record(tenant, row.new, now)
        except (InvalidManagementRequest, UnknownConnectionName) as exc:
            return _refused(row, "NOT_PASSED", str(exc))
        if not await uow.users.add(user):
            return _refused(row, "DUPLICATED_USER", NOT_UPSERTED)
        return "inserted"
    if not upsert:
        return _refused(row, "DUPLICATED_USER", NOT_UPSERTED)
    given = row.given
    verified = "email_verified" if channel.field == "email" else "phone_verified"
    patch = UserPatch(
        attributes={
            k: given[k] for k in row.keys & UPSERTED if k not in ("app_metadata", "user_metadata")
        },
        email_verified=given.get("email_verified") if verified == "email_verified" else None,
        phone_verified=given.get("phone_verified") if verified == "phone_verified" else None,
    )
    try:
        changed = patched_user(match, connection, patch, now)
    except InvalidManagementRequest as exc:
        return _refused(row, "NOT_PASSED", str(exc))
    # "Upserts do not merge user_metadata or app_metadata. The existing metadata is
    # completely overwritten"
    if "app_metadata" in row.keys:
        changed = replace(changed, app_metadata=dict(given["app_metadata"]))
    if "user_metadata" in row.keys:
        changed = replace(changed, user_metadata=dict(given["user_metadata"]))
    if not await uow.users.replace(changed):
        return _refused(row, "CONFLICT", "The user changed while it was imported")
    return "updated"


async def _export(job: Job, tenant: TenantConfig, deps: RunnerDeps) -> None:
    connection_name = None
    if job.connection_id is not None:
        connection = tenant.connection_by_id(job.connection_id)
        if connection is None:
            await _finish(job, deps, FAILED, details="The connection does not exist.")
            return
        connection_name = connection.name
    limit = job.options.get("limit")
    fields = [ExportField(f["name"], f.get("export_as")) for f in job.options.get("fields", [])]
    lease = timedelta(seconds=deps.lease_seconds)
    found: list[dict[str, Any]] = []
    offset = 0
    while limit is None or len(found) < limit:
        async with deps.uow() as uow:
            page = await uow.users.page(
                job.tenant_id, offset=offset, limit=EXPORT_PAGE, sort=UserSort()
            )
            now = deps.clock.now()
            if not await uow.jobs.progress(job, done=offset, summary={}, lease_until=now + lease):
                raise _LostClaim
            await uow.commit()
        offset += len(page)
        for user in page:
            if job.connection_id is None or user.connection_id == job.connection_id:
                name = connection_name or _name(tenant, user.connection_id)
                found.append(deps.user_object(UserView(user, name)))
        if len(page) < EXPORT_PAGE:
            break
    if limit is not None:
        found = found[:limit]
    output = export_file.render(found, str(job.options.get("format", "json")), fields)
    await _finish(job, deps, COMPLETED, output=output, connection=connection_name)


def _name(tenant: TenantConfig, connection_id: str) -> str:
    connection = tenant.connection_by_id(connection_id)
    return connection.name if connection is not None else ""
