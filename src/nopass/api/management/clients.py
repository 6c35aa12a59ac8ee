"""``/api/v2/clients`` (docs/specs/management-api.md §5.1), with the scopes of §9."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from nopass.api.deps import ServicesDep, TenantDep
from nopass.api.management.frame import FieldSelection, boolean, page_of, read_object, scoped
from nopass.api.responses import JSON
from nopass.flows.management import clients
from nopass.flows.management.caller import ApiCall, require

router = APIRouter()
READ = ("read:clients", "read:client_keys", "read:client_credentials", "read:client_summary")
ReadClients = Annotated[ApiCall, Depends(scoped(*READ))]
CreateClients = Annotated[ApiCall, Depends(scoped("create:clients"))]
UpdateClients = Annotated[
    ApiCall, Depends(scoped("update:clients", "update:client_keys", "update:client_credentials"))
]
UpdateClientKeys = Annotated[ApiCall, Depends(scoped("update:client_keys"))]
DeleteClients = Annotated[ApiCall, Depends(scoped("delete:clients"))]


@router.get("/clients")
async def list_clients(
    request: Request, call: ReadClients, services: ServicesDep, tenant: TenantDep
) -> Response:
    query = request.query_params
    fields = FieldSelection(query)
    found = await clients.list_clients(tenant.config, services.management)
    if boolean(query, "is_global", False):
        found = []  # nopass has no global (tenant-level) client
    if query.get("is_first_party"):
        first_party = boolean(query, "is_first_party", True)
        found = [c for c in found if c["is_first_party"] is first_party]
    app_types = {t.strip() for t in (query.get("app_type") or "").split(",") if t.strip()}
    if app_types:
        found = [c for c in found if c.get("app_type") in app_types]
    return JSON(page_of("clients", [fields.apply(c) for c in found], query))


@router.post("/clients")
async def create_client(
    request: Request, call: CreateClients, services: ServicesDep, tenant: TenantDep
) -> Response:
    body = await read_object(request)
    created = await clients.create_client(tenant.config, body, call, services.management)
    return JSON(created, 201)


@router.get("/clients/{client_id}")
async def get_client(
    client_id: str, request: Request, call: ReadClients, services: ServicesDep, tenant: TenantDep
) -> Response:
    fields = FieldSelection(request.query_params)
    found = await clients.get_client(tenant.config, client_id, services.management)
    return JSON(fields.apply(found))


@router.patch("/clients/{client_id}")
async def update_client(
    client_id: str,
    request: Request,
    call: UpdateClients,
    services: ServicesDep,
    tenant: TenantDep,
) -> Response:
    body = await read_object(request)
    if "client_secret" in body:
        require(call.caller, ("update:client_keys",))
    updated = await clients.update_client(tenant.config, client_id, body, call, services.management)
    return JSON(updated)


@router.post("/clients/{client_id}/rotate-secret")
async def rotate_secret(
    client_id: str, call: UpdateClientKeys, services: ServicesDep, tenant: TenantDep
) -> Response:
    # the body is ignored: Python v4 sends {"id": ...}, Go sends null
    return JSON(await clients.rotate_secret(tenant.config, client_id, call, services.management))


@router.delete("/clients/{client_id}")
async def delete_client(
    client_id: str, call: DeleteClients, services: ServicesDep, tenant: TenantDep
) -> Response:
    await clients.delete_client(tenant.config, client_id, call, services.management)
    return Response(status_code=204)
