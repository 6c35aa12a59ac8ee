"""``/api/v2/tenants/settings`` (docs/specs/management-api.md §5.4), with the scopes of §9."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from nopass.api.deps import ServicesDep, TenantDep
from nopass.api.management.frame import FieldSelection, read_object, scoped
from nopass.api.responses import JSON
from nopass.flows.management import tenant_settings
from nopass.flows.management.caller import ApiCall

router = APIRouter()
Read = Annotated[ApiCall, Depends(scoped("read:tenant_settings"))]
Update = Annotated[ApiCall, Depends(scoped("update:tenant_settings"))]


@router.get("/tenants/settings")
async def get_settings(
    request: Request, call: Read, services: ServicesDep, tenant: TenantDep
) -> Response:
    fields = FieldSelection(request.query_params)
    found = await tenant_settings.get_settings(tenant.config, services.management)
    return JSON(fields.apply(found))


@router.patch("/tenants/settings")
async def update_settings(
    request: Request, call: Update, services: ServicesDep, tenant: TenantDep
) -> Response:
    body = await read_object(request)
    updated = await tenant_settings.update_settings(tenant.config, body, call, services.management)
    return JSON(updated)
