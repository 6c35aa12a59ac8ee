"""Configuration changes through the Management API (docs/specs/management-api.md §2.3, §5).

Clients, connections, resource servers, client grants and tenant settings are one model with
the ``nopass apply`` file: a change reads the tenant's whole configuration as that file's
document (``ConfigRepo.document``), edits it, and writes it back validated exactly as
``nopass apply --prune`` validates and writes a file (``ConfigRepo.replace``), in one
transaction with its ``sapi`` audit event. A document that breaks a rule of the file is a
400 naming the key (``callbacks[0]: not an absolute URL``), and nothing is written.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from nopass.config_file import ApplyConflict, ConfigFileError
from nopass.core.errors import InvalidManagementRequest, ObjectConflict
from nopass.core.models import TenantConfig
from nopass.core.ports import UnitOfWork
from nopass.flows.management.caller import ApiCall, ManagementDeps

Document = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Changed:
    """The tenant's configuration once changed, and what apply reported (the client secrets
    it generated, under ``summary["clients"]``)."""

    document: Document
    summary: dict[str, Any]


async def read(tenant: TenantConfig, deps: ManagementDeps) -> Document:
    """The tenant's configuration document, as stored (for the GET endpoints)."""
    async with deps.uow() as uow:
        return await uow.config.document(tenant.tenant.id)


async def change(
    tenant: TenantConfig,
    call: ApiCall,
    deps: ManagementDeps,
    edit: Callable[[Document], str | None],
    description: str,
    *,
    also: Callable[[UnitOfWork], Awaitable[None]] | None = None,
    **facts: Any,
) -> Changed:
    """Apply ``edit`` to the tenant's document and store the result, audited as
    ``description`` with ``facts`` (never a secret). ``edit`` changes the document in place
    (raising the domain's refusals: not found, conflict) and returns where in it the edited
    object is (``clients[3]``), which validation messages then leave out. ``also`` does the
    change's other writes (a deleted client's refresh tokens, a deleted connection's users)
    in the same transaction, before the document is written (a connection's users must go
    before the connection's row, whose deletion would cascade to them alone)."""
    tenant_id = tenant.tenant.id
    async with deps.uow() as uow:
        document = await uow.config.document(tenant_id)
        where = edit(document)
        now = deps.clock.now()
        if also is not None:
            await also(uow)
        try:
            summary = await uow.config.replace(tenant_id, document, now)
        except ConfigFileError as exc:
            raise InvalidManagementRequest(_payload_error(str(exc), where)) from None
        except ApplyConflict as exc:
            raise ObjectConflict(str(exc)) from None
        await uow.audit.add(call.audit(tenant_id, description, **facts), now)
        stored = await uow.config.document(tenant_id)
        await uow.commit()
    deps.config_changed()
    return Changed(document=stored, summary=summary)


def _payload_error(message: str, where: str | None) -> str:
    if where and message.startswith(where):
        message = message[len(where) :].lstrip(".")
    return f"Payload validation error: {message}"
