"""The tenant's logs through the Management API (docs/specs/management-api.md §4): pages of
the audit log (newest first by default, at most 1,000 results deep), one event by log id,
and checkpoint reading (``from``/``take``) for log exporters. Reading writes nothing."""

from __future__ import annotations

from dataclasses import dataclass

from nopass.core.errors import InvalidManagementRequest, LogNotFound
from nopass.core.models import LoggedEvent, TenantConfig
from nopass.flows.management.caller import ManagementDeps

SEARCH_CAP = 1000  # "you may paginate only through 1,000 search results"


@dataclass(frozen=True, slots=True)
class LogPage:
    page: int
    per_page: int
    newest_first: bool = True
    user_id: str | None = None  # only this user's events (``/users/{id}/logs``)


async def page_logs(
    tenant: TenantConfig, request: LogPage, deps: ManagementDeps
) -> tuple[list[LoggedEvent], int]:
    """A page of events and how many match in all."""
    if (request.page + 1) * request.per_page > SEARCH_CAP:
        raise InvalidManagementRequest(
            f"You can only page through the first {SEARCH_CAP} results", in_query=True
        )
    async with deps.uow() as uow:
        return await uow.audit.page(
            tenant.tenant.id,
            user_id=request.user_id,
            newest_first=request.newest_first,
            offset=request.page * request.per_page,
            limit=request.per_page,
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
