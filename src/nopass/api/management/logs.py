"""``/api/v2/logs``, ``/api/v2/logs/{id}`` and ``/api/v2/users/{id}/logs``
(docs/specs/management-api.md §3.8, §4), with the scopes of §9."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from nopass.api.deps import ServicesDep, TenantDep
from nopass.api.management.frame import (
    DEFAULT_PER_PAGE,
    MAX_PER_PAGE,
    FieldSelection,
    integer,
    offset_page,
    page_params,
    scoped,
)
from nopass.api.management.log_events import log_event
from nopass.api.responses import JSON
from nopass.core.log_query import parse_log_query, parse_log_sort
from nopass.flows.management import logs
from nopass.flows.management.caller import ApiCall

router = APIRouter()
ReadLogs = Annotated[ApiCall, Depends(scoped("read:logs", "read:logs_users"))]


def _host(request: Request) -> str:
    return request.url.hostname or ""


async def _page(
    request: Request, services: ServicesDep, tenant: TenantDep, user_id: str | None
) -> Response:
    query = request.query_params
    page, per_page, with_total = page_params(query)
    fields = FieldSelection(query)
    request_page = logs.LogPage(
        page=page,
        per_page=per_page,
        newest_first=parse_log_sort(query.get("sort")),
        user_id=user_id,
        search=parse_log_query(query.get("q") or query.get("search")),  # Fern SDKs: search
        hostname=_host(request),
    )
    found, total = await logs.page_logs(tenant.config, request_page, services.management)
    host = _host(request)
    items = [fields.apply(log_event(e, tenant.config, host)) for e in found]
    return JSON(offset_page("logs", items, page, per_page, total if with_total else None))


@router.get("/logs")
async def list_logs(
    request: Request, call: ReadLogs, services: ServicesDep, tenant: TenantDep
) -> Response:
    query = request.query_params
    take = integer(query, "take", DEFAULT_PER_PAGE, 1, MAX_PER_PAGE)  # checked, used or not
    if "from" not in query:
        return await _page(request, services, tenant, None)
    # Checkpoint mode: every other parameter is ignored ("from takes precedence").
    after = query.get("from") or None
    found = await logs.logs_after(tenant.config, after, take, services.management)
    host = _host(request)
    last = found[-1].log_id if found else (after or "")
    link = f'<{tenant.origin}/api/v2/logs?from={last}&take={take}>; rel="next"'
    return JSON([log_event(e, tenant.config, host) for e in found], headers={"Link": link})


@router.get("/logs/{log_id}")
async def get_log(
    log_id: str, request: Request, call: ReadLogs, services: ServicesDep, tenant: TenantDep
) -> Response:
    found = await logs.get_log(tenant.config, log_id, services.management)
    return JSON(log_event(found, tenant.config, _host(request)))


@router.get("/users/{user_id}/logs")
async def user_logs(
    user_id: str, request: Request, call: ReadLogs, services: ServicesDep, tenant: TenantDep
) -> Response:
    return await _page(request, services, tenant, user_id)
