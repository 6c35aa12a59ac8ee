"""The tenant's logs through the Management API (docs/specs/management-api.md §4): pages of
the audit log (newest first by default, at most 1,000 results deep), one event by log id,
and checkpoint reading (``from``/``take``) for log exporters. Reading writes nothing."""

from __future__ import annotations

from dataclasses import dataclass

from nopass.core.errors import InvalidManagementRequest, LogNotFound
from nopass.core.log_query import check_log_window, prepare
from nopass.core.lucene import Node
from nopass.core.models import LoggedEvent, TenantConfig
from nopass.flows.management.caller import ManagementDeps


@dataclass(frozen=True, slots=True)
class LogPage:
    page: int
    per_page: int
    newest_first: bool = True
    user_id: str | None = None  # only this user's events (``/users/{id}/logs``)
    search: Node | None = None  # a parsed ``q`` (core/log_query.py)
    hostname: str = ""  # the request's host: what ``hostname`` is for every event


async def page_logs(
    tenant: TenantConfig, request: LogPage, deps: ManagementDeps
) -> tuple[list[LoggedEvent], int]:
    """A page of events and how many match in all."""
    offset = request.page * request.per_page
    check_log_window(offset, request.per_page)
    # Fields the configuration gives (client_name, strategy, ...) become stored ones.
    query = prepare(request.search, tenant, request.hostname)
    async with deps.uow() as uow:
        return await uow.audit.page(
            tenant.tenant.id,
            user_id=request.user_id,
            newest_first=request.newest_first,
            offset=offset,
            limit=request.per_page,
            query=query,
        )


async def logs_after(
    tenant: TenantConfig, log_id: str | None, take: int, deps: ManagementDeps
) -> list[LoggedEvent]:
    """Up to ``take`` events written after ``log_id``, oldest first."""
    if log_id is not None and LoggedEvent.number_of(log_id) is None:
        raise InvalidManagementRequest(
            "Query validation error: 'from' must be a log_id", in_query=True
        )
    async with deps.uow() as uow:
        return await uow.audit.after(tenant.tenant.id, log_id, take)


async def get_log(tenant: TenantConfig, log_id: str, deps: ManagementDeps) -> LoggedEvent:
    async with deps.uow() as uow:
        found = await uow.audit.get(tenant.tenant.id, log_id)
    if found is None:
        raise LogNotFound(log_id)
    return found
