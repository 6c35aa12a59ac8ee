"""``/api/v2/connections`` and ``/api/v2/connections-directory-provisionings``
(docs/specs/management-api.md §5.0, §5.2), with the scopes of §9.

A connection is answered in Auth0's shape: ``id``, ``name``, ``strategy``, ``options``,
``enabled_clients`` (client ids), ``realms`` (``[name]`` unless set) and
``is_domain_connection`` (false unless set), plus ``display_name``, ``metadata`` and
``show_as_button`` when set. Lists page by offset (``{total, start, limit, connections}``)
or, when ``from`` or ``take`` is sent, by checkpoint (``{connections, next?}``).
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from nopass.api.body import read_capped
from nopass.api.deps import ServicesDep, TenantDep
from nopass.api.management.frame import (
    MAX_BODY_BYTES,
    FieldSelection,
    checkpoint_page,
    checkpoint_params,
    page_params,
    query_error,
    read_object,
    scoped,
)
from nopass.api.responses import JSON
from nopass.core.errors import BodyTooLarge, BodyUnreadable
from nopass.flows.management import connections
from nopass.flows.management.caller import ApiCall

router = APIRouter()
CHECKPOINT = re.compile(r"[A-Za-z0-9_-]+")  # base64url of the last key answered
ReadConnections = Annotated[ApiCall, Depends(scoped("read:connections"))]
CreateConnections = Annotated[ApiCall, Depends(scoped("create:connections"))]
UpdateConnections = Annotated[ApiCall, Depends(scoped("update:connections"))]
DeleteConnections = Annotated[ApiCall, Depends(scoped("delete:connections"))]


def connection_object(entry: dict[str, Any]) -> dict[str, Any]:
    """A stored connection (its document entry) in Auth0's shape."""
    body: dict[str, Any] = {"id": entry["id"], "name": entry["name"]}
    if "display_name" in entry:
        body["display_name"] = entry["display_name"]
    body["strategy"] = entry["strategy"]
    body["options"] = entry.get("options", {})
    body["enabled_clients"] = list(entry.get("enabled_clients", []))
    body["is_domain_connection"] = entry.get("is_domain_connection", False)
    body["realms"] = list(entry.get("realms") or [entry["name"]])
    for key in ("metadata", "show_as_button"):
        if key in entry:
            body[key] = entry[key]
    return body


def _checkpoint(value: str) -> str:
    return base64.urlsafe_b64encode(value.encode()).decode().rstrip("=")


def _after(checkpoint: str | None) -> str | None:
    if checkpoint is None:
        return None
    if not CHECKPOINT.fullmatch(checkpoint):
        raise query_error("Query validation error: 'from' is not a checkpoint")
    try:
        return base64.urlsafe_b64decode(checkpoint + "=" * (-len(checkpoint) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError):
        raise query_error("Query validation error: 'from' is not a checkpoint") from None


def _after_key(items: Sequence[str], checkpoint: str | None, take: int) -> tuple[list[str], bool]:
    """The ``take`` keys (sorted) after the checkpoint's, and whether more follow."""
    after = _after(checkpoint)
    rest = [k for k in items if after is None or k > after]
    return rest[:take], len(rest) > take


def _strategies(request: Request) -> frozenset[str]:
    values = request.query_params.getlist("strategy")
    return frozenset(s.strip() for v in values for s in v.split(",") if s.strip())


@router.get("/connections")
async def list_connections(
    request: Request, call: ReadConnections, services: ServicesDep, tenant: TenantDep
) -> Response:
    query = request.query_params
    fields = FieldSelection(query)
    wanted = connections.ConnectionFilter(
        strategies=_strategies(request), name=query.get("name") or None
    )
    found = await connections.list_connections(tenant.config, wanted, services.management)
    if "from" in query or "take" in query:  # §1.4: checkpoints win over include_totals
        checkpoint, take = checkpoint_params(query)
        by_name = {c["name"]: c for c in found}
        names, more = _after_key(sorted(by_name), checkpoint, take)
        items = [fields.apply(connection_object(by_name[n])) for n in names]
        following = _checkpoint(names[-1]) if more and names else None
        return JSON(checkpoint_page("connections", items, following))
    page, per_page, with_total = page_params(query)
    start = page * per_page
    items = [fields.apply(connection_object(c)) for c in found[start : start + per_page]]
    if not with_total:
        return JSON(items)
    # the recorded envelope of connections has no ``length`` (§1.4)
    return JSON({"total": len(found), "start": start, "limit": per_page, "connections": items})


@router.get("/connections/{connection_id}")
async def get_connection(
    connection_id: str,
    request: Request,
    call: ReadConnections,
    services: ServicesDep,
    tenant: TenantDep,
) -> Response:
    fields = FieldSelection(request.query_params)
    entry = await connections.get_connection(tenant.config, connection_id, services.management)
    return JSON(fields.apply(connection_object(entry)))


@router.post("/connections")
async def create_connection(
    request: Request, call: CreateConnections, services: ServicesDep, tenant: TenantDep
) -> Response:
    body = await read_object(request)
    entry = await connections.create_connection(tenant.config, body, call, services.management)
    return JSON(connection_object(entry), 201)


@router.patch("/connections/{connection_id}")
async def update_connection(
    connection_id: str,
    request: Request,
    call: UpdateConnections,
    services: ServicesDep,
    tenant: TenantDep,
) -> Response:
    body = await read_object(request)
    entry = await connections.update_connection(
        tenant.config, connection_id, body, call, services.management
    )
    return JSON(connection_object(entry))


@router.delete("/connections/{connection_id}")
async def delete_connection(
    connection_id: str, call: DeleteConnections, services: ServicesDep, tenant: TenantDep
) -> Response:
    await connections.delete_connection(tenant.config, connection_id, call, services.management)
    deleted_at = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return JSON({"deleted_at": deleted_at}, 202)  # as recorded (§1.6)


@router.get("/connections/{connection_id}/clients")
async def list_enabled_clients(
    connection_id: str,
    request: Request,
    call: ReadConnections,
    services: ServicesDep,
    tenant: TenantDep,
) -> Response:
    checkpoint, take = checkpoint_params(request.query_params)
    enabled = await connections.enabled_clients(tenant.config, connection_id, services.management)
    page, more = _after_key(enabled, checkpoint, take)
    following = _checkpoint(page[-1]) if more and page else None
    return JSON(checkpoint_page("clients", [{"client_id": c} for c in page], following))


@router.patch("/connections/{connection_id}/clients")
async def change_enabled_clients(
    connection_id: str,
    request: Request,
    call: UpdateConnections,
    services: ServicesDep,
    tenant: TenantDep,
) -> Response:
    changes = connections.client_changes(await _read_json(request))
    await connections.change_enabled_clients(
        tenant.config, connection_id, changes, call, services.management
    )
    return Response(status_code=204)


@router.get("/connections-directory-provisionings")
async def directory_provisionings(call: ReadConnections) -> Response:
    """nopass provisions no directories (deploy-cli asks, §5.0 item 5)."""
    return JSON({"directory_provisionings": []})


async def _read_json(request: Request) -> object:
    """A JSON body of any type (the enabled-clients change is an array), at most 1 MiB."""
    raw = await read_capped(request, MAX_BODY_BYTES)
    if raw is None:
        raise BodyTooLarge(MAX_BODY_BYTES)
    try:
        return json.loads(raw)
    except (ValueError, RecursionError):
        raise BodyUnreadable() from None
