"""The download of a completed users export (docs/specs/management-api.md §7.5): the job's
``location``. No bearer token: the URL's token is the credential, unguessable (256 bits),
stored only as its hash, good for ten minutes and spent by its first use (atomically: of two
downloads at once, one gets the file). A spent or expired token answers 410, an unknown one
404. Each download is audited ``sapi``. The file is gzip-compressed NDJSON or CSV named after
the tenant (``acme.json.gz``)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from nopass.api.deps import ServicesDep, TenantDep
from nopass.api.request_info import client_ip
from nopass.api.responses import JSON
from nopass.flows.management import jobs

router = APIRouter()
NO_STORE = {"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"}


@router.get("/export-files/{token}")
async def download(
    token: str, request: Request, services: ServicesDep, tenant: TenantDep
) -> Response:
    ip = client_ip(request, services.trusted_proxies)
    taken = await jobs.take_download(tenant.config, token, services.management, ip=ip)
    if taken is None:
        return JSON({"error": "not_found", "error_description": "No such export file"}, 404)
    if taken.data is None:
        return JSON(
            {"error": "gone", "error_description": "This download link was used or expired"},
            410,
            headers=NO_STORE,
        )
    extension = "csv" if taken.job.options.get("format") == "csv" else "json"
    name = f"{tenant.config.tenant.name}.{extension}.gz"
    headers = {**NO_STORE, "Content-Disposition": f'attachment; filename="{name}"'}
    return Response(taken.data, media_type="application/gzip", headers=headers)
