"""``/api/v2/jobs`` (docs/specs/management-api.md §7): users imports (``multipart/form-data``,
202), users exports (JSON, 200), a job and its errors; scopes of §9.

The import body is read capped (the 500 KB file and its parts) before it is parsed: a larger
one is refused with 413 without being read to its end.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Mapping
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from starlette.datastructures import UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser
from starlette.responses import Response

from nopass.api.body import read_capped
from nopass.api.deps import ServicesDep, TenantDep
from nopass.api.management.frame import read_object, scoped
from nopass.api.management.user_object import iso
from nopass.api.responses import JSON
from nopass.core.errors import ImportFileTooLarge, InvalidManagementRequest
from nopass.core.jobs import COMPLETED, EXPORT, FAILED, PROCESSING, Job, RowError
from nopass.flows.management import jobs
from nopass.flows.management.caller import ApiCall
from nopass.flows.management.export_file import valid_path

router = APIRouter()
CreateUsers = Annotated[ApiCall, Depends(scoped("create:users"))]
ReadUsers = Annotated[ApiCall, Depends(scoped("read:users"))]
ReadJobs = Annotated[ApiCall, Depends(scoped("create:users", "read:users"))]
MULTIPART_OVERHEAD = 64 * 1024  # the other parts and the boundaries around the file
EXPORT_FIELDS = frozenset({"connection_id", "format", "limit", "fields"})
DOWNLOAD_PATH = "/export-files/"


def invalid(message: str) -> InvalidManagementRequest:
    return InvalidManagementRequest(f"Payload validation error: {message}")


def _flag(form: Mapping[str, Any], name: str, default: bool) -> bool:
    value = form.get(name)
    if value is None or value == "":
        return default
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise invalid(f"'Expected type boolean but found type string' on property {name}.")


async def _multipart(request: Request, raw: bytes) -> dict[str, Any]:
    async def stream() -> AsyncGenerator[bytes, None]:
        yield raw
        yield b""

    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        raise invalid("'the body must be multipart/form-data'.")
    parser = MultiPartParser(
        request.headers,
        stream(),
        max_files=1,
        max_fields=10,
        max_part_size=jobs.MAX_IMPORT_BYTES + 1,
    )
    try:
        form = await parser.parse()
    except MultiPartException as exc:
        raise invalid(f"'{exc.message}'.") from None
    parts: dict[str, Any] = {}
    for name, value in form.multi_items():
        if isinstance(value, UploadFile):
            parts[name] = await value.read()
            await value.close()
        else:
            parts[name] = value
    return parts


@router.post("/jobs/users-imports")
async def users_import(
    request: Request, call: CreateUsers, services: ServicesDep, tenant: TenantDep
) -> Response:
    raw = await read_capped(request, jobs.MAX_IMPORT_BYTES + MULTIPART_OVERHEAD)
    if raw is None:
        raise ImportFileTooLarge(jobs.MAX_IMPORT_BYTES)
    form = await _multipart(request, raw)
    users = form.get("users")
    if isinstance(users, str):  # a part without a filename
        users = users.encode()
    if not isinstance(users, bytes):
        raise invalid("'Missing required property: users'.")
    connection_id = form.get("connection_id")
    if not isinstance(connection_id, str) or not connection_id:
        raise invalid("'Missing required property: connection_id'.")
    external_id = form.get("external_id")
    command = jobs.ImportRequest(
        connection_id=connection_id,
        file=users,
        upsert=_flag(form, "upsert", False),
        external_id=external_id if isinstance(external_id, str) and external_id else None,
        send_completion_email=_flag(form, "send_completion_email", True),
    )
    view = await jobs.submit_import(tenant.config, command, call, services.management)
    return JSON(job_object(view, tenant.origin), 202)


def _export_request(body: Mapping[str, Any]) -> jobs.ExportRequest:
    extra = sorted(set(body) - EXPORT_FIELDS)
    if extra:
        raise invalid(f"'Additional properties not allowed: {', '.join(extra)}'.")
    connection_id = body.get("connection_id")
    if connection_id is not None and not isinstance(connection_id, str):
        raise invalid("'Expected type string' on property connection_id.")
    file_format = body.get("format", "json")
    if file_format not in jobs.FORMATS:
        raise invalid("'No enum match for: format' (json, csv).")
    limit = body.get("limit")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise invalid("'limit' must be a positive integer.")
    fields = body.get("fields", [])
    if not isinstance(fields, list):
        raise invalid("'Expected type array' on property fields.")
    chosen = []
    for index, item in enumerate(fields):
        name = item.get("name") if isinstance(item, dict) else None
        export_as = item.get("export_as") if isinstance(item, dict) else None
        if not isinstance(name, str) or not valid_path(name):
            raise invalid(f"fields[{index}].name must be a user attribute path.")
        if set(item) - {"name", "export_as"} or not isinstance(export_as, str | None):
            raise invalid(f"fields[{index}] takes name and export_as (a string) only.")
        chosen.append(jobs.ExportField(name, export_as or None))
    return jobs.ExportRequest(
        connection_id=connection_id, format=file_format, limit=limit, fields=tuple(chosen)
    )


@router.post("/jobs/users-exports")
async def users_export(
    request: Request, call: ReadUsers, services: ServicesDep, tenant: TenantDep
) -> Response:
    command = _export_request(await read_object(request))
    view = await jobs.submit_export(tenant.config, command, call, services.management)
    return JSON(job_object(view, tenant.origin), 200)


@router.get("/jobs/{job_id}")
async def get_job(
    job_id: str, call: ReadJobs, services: ServicesDep, tenant: TenantDep
) -> Response:
    view = await jobs.get_job(tenant.config, job_id, call, services.management)
    return JSON(job_object(view, tenant.origin))


@router.get("/jobs/{job_id}/errors")
async def job_errors(
    job_id: str, call: ReadJobs, services: ServicesDep, tenant: TenantDep
) -> Response:
    found = await jobs.job_errors(tenant.config, job_id, services.management)
    if isinstance(found, Job):
        return JSON(_failed_object(found))
    return JSON([_error_object(e) for e in found])


def job_object(view: jobs.JobView, origin: str) -> dict[str, Any]:
    job = view.job
    body: dict[str, Any] = {"type": job.type, "status": job.status}
    if job.connection_id is not None:
        body["connection_id"] = job.connection_id
    if view.connection is not None:
        body["connection"] = view.connection
    options = job.options
    if job.type == EXPORT:
        body["format"] = options.get("format", "json")
        for name in ("limit", "fields"):
            if name in options:
                body[name] = options[name]
        if view.download_token is not None:
            body["location"] = f"{origin}{DOWNLOAD_PATH}{view.download_token}"
    else:
        for name in ("external_id", "upsert", "send_completion_email"):
            if name in options:
                body[name] = options[name]
        total = (job.summary or {}).get("total", 0)
        if job.status == PROCESSING and total:
            body["percentage_done"] = job.progress * 100 // total
        if job.summary is not None and job.status in (COMPLETED, FAILED):
            body["summary"] = dict(job.summary)
    if job.status_details is not None:
        body["status_details"] = job.status_details
    body["created_at"] = iso(job.created_at)
    body["id"] = job.id
    return body


def _failed_object(job: Job) -> dict[str, Any]:
    body: dict[str, Any] = {
        "status": job.status,
        "type": job.type,
        "created_at": iso(job.created_at),
        "id": job.id,
    }
    if job.connection_id is not None:
        body["connection_id"] = job.connection_id
    body["status_details"] = job.status_details or "The job failed."
    return body


def _error_object(error: RowError) -> dict[str, Any]:
    return {"user": dict(error.user), "errors": [dict(e) for e in error.errors]}
