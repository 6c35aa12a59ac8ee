"""``/api/v2/resource-servers`` (docs/specs/management-api.md §5.3), with the scopes of §9.
A path's id may be the API's id or its (percent-encoded) identifier, slashes and all."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from nopass.api.deps import ServicesDep, TenantDep
from nopass.api.management.frame import FieldSelection, page_of, read_object, scoped
from nopass.api.responses import JSON
from nopass.flows.management import resource_servers
from nopass.flows.management.caller import ApiCall

router = APIRouter()
Read = Annotated[ApiCall, Depends(scoped("read:resource_servers"))]
Create = Annotated[ApiCall, Depends(scoped("create:resource_servers"))]
Update = Annotated[ApiCall, Depends(scoped("update:resource_servers"))]
Delete = Annotated[ApiCall, Depends(scoped("delete:resource_servers"))]


@router.get("/resource-servers")
async def list_resource_servers(
    request: Request, call: Read, services: ServicesDep, tenant: TenantDep
) -> Response:
    query = request.query_params
    fields = FieldSelection(query)
    found = await resource_servers.list_resource_servers(
        tenant.config, tenant.origin, services.management
    )
    wanted = {i for value in query.getlist("identifiers") for i in value.split(",") if i}
    if wanted:
        found = [api for api in found if api["identifier"] in wanted]
    return JSON(page_of("resource_servers", [fields.apply(api) for api in found], query))


@router.post("/resource-servers")
async def create_resource_server(
    request: Request, call: Create, services: ServicesDep, tenant: TenantDep
) -> Response:
    body = await read_object(request)
    created = await resource_servers.create_resource_server(
        tenant.config, body, call, services.management
    )
    return JSON(created, 201)


@router.get("/resource-servers/{key:path}")
async def get_resource_server(
    key: str, request: Request, call: Read, services: ServicesDep, tenant: TenantDep
) -> Response:
    fields = FieldSelection(request.query_params)
    found = await resource_servers.get_resource_server(
        tenant.config, tenant.origin, key, services.management
    )
    return JSON(fields.apply(found))


@router.patch("/resource-servers/{key:path}")
async def update_resource_server(
    key: str, request: Request, call: Update, services: ServicesDep, tenant: TenantDep
) -> Response:
    body = await read_object(request)
    updated = await resource_servers.update_resource_server(
        tenant.config, key, body, call, services.management
    )
    return JSON(updated)


@router.delete("/resource-servers/{key:path}")
async def delete_resource_server(
    key: str, call: Delete, services: ServicesDep, tenant: TenantDep
) -> Response:
    await resource_servers.delete_resource_server(tenant.config, key, call, services.management)
    return Response(status_code=204)
