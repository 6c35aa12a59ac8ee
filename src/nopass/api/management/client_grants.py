"""``/api/v2/client-grants`` (docs/specs/management-api.md §2.3, §1.4), with the scopes of §9:
offset pages, or checkpoint pages when ``from`` or ``take`` is sent."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from nopass.api.deps import ServicesDep, TenantDep
from nopass.api.management.frame import (
    boolean,
    checkpoint_page,
    checkpoint_params,
    page_of,
    read_object,
    scoped,
)
from nopass.api.responses import JSON
from nopass.flows.management import client_grants
from nopass.flows.management.caller import ApiCall

router = APIRouter()
Read = Annotated[ApiCall, Depends(scoped("read:client_grants"))]
Create = Annotated[ApiCall, Depends(scoped("create:client_grants"))]
Update = Annotated[ApiCall, Depends(scoped("update:client_grants"))]
Delete = Annotated[ApiCall, Depends(scoped("delete:client_grants"))]


@router.get("/client-grants")
async def list_grants(
    request: Request, call: Read, services: ServicesDep, tenant: TenantDep
) -> Response:
    query = request.query_params
    wanted = client_grants.GrantFilter(
        audience=query.get("audience") or None,
        client_id=query.get("client_id") or None,
        subject_type=query.get("subject_type") or None,
        allow_any_organization=(
            boolean(query, "allow_any_organization", False)
            if query.get("allow_any_organization")
            else None
        ),
    )
    found = await client_grants.list_grants(tenant.config, wanted, services.management)
    if "from" in query or "take" in query:
        after, take = checkpoint_params(query)
        rest = [g for g in found if after is None or str(g["id"]) > after]
        page = rest[:take]
        more = len(rest) > take
        return JSON(checkpoint_page("client_grants", page, str(page[-1]["id"]) if more else None))
    return JSON(page_of("client_grants", found, query))


@router.get("/client-grants/{grant_id}")
async def get_grant(
    grant_id: str, call: Read, services: ServicesDep, tenant: TenantDep
) -> Response:
    return JSON(await client_grants.get_grant(tenant.config, grant_id, services.management))


@router.post("/client-grants")
async def create_grant(
    request: Request, call: Create, services: ServicesDep, tenant: TenantDep
) -> Response:
    body = await read_object(request)
    created = await client_grants.create_grant(tenant.config, body, call, services.management)
    return JSON(created, 201)


@router.patch("/client-grants/{grant_id}")
async def update_grant(
    grant_id: str, request: Request, call: Update, services: ServicesDep, tenant: TenantDep
) -> Response:
    body = await read_object(request)
    updated = await client_grants.update_grant(
        tenant.config, grant_id, body, call, services.management
    )
    return JSON(updated)


@router.delete("/client-grants/{grant_id}")
async def delete_grant(
    grant_id: str, call: Delete, services: ServicesDep, tenant: TenantDep
) -> Response:
    await client_grants.delete_grant(tenant.config, grant_id, call, services.management)
    return Response(status_code=204)
