"""``/api/v2/user-blocks`` (docs/specs/management-api.md §6): the brute-force blocks of an
identifier or a user, shown and cleared; scopes ``read:users`` / ``update:users``."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from nopass.api.deps import ServicesDep, TenantDep
from nopass.api.management.frame import query_error, scoped
from nopass.api.responses import JSON
from nopass.flows.management import user_blocks
from nopass.flows.management.caller import ApiCall

router = APIRouter()
ReadUsers = Annotated[ApiCall, Depends(scoped("read:users"))]
UpdateUsers = Annotated[ApiCall, Depends(scoped("update:users"))]


def _identifier(request: Request) -> str:
    identifier = request.query_params.get("identifier")
    if not identifier:
        raise query_error("Query validation error: 'Missing required property: identifier'")
    return identifier


def _shown(blocks: list[user_blocks.Block]) -> JSON:
    return JSON(
        {"blocked_for": [{"identifier": b.identifier, "connection": b.connection} for b in blocks]}
    )


@router.get("/user-blocks")
async def blocks_of_identifier(
    request: Request, call: ReadUsers, services: ServicesDep, tenant: TenantDep
) -> Response:
    found = await user_blocks.blocks_for_identifier(
        tenant.config, _identifier(request), services.management
    )
    return _shown(found)


@router.delete("/user-blocks")
async def unblock_identifier(
    request: Request, call: UpdateUsers, services: ServicesDep, tenant: TenantDep
) -> Response:
    await user_blocks.unblock_identifier(
        tenant.config, _identifier(request), call, services.management
    )
    return Response(status_code=204)


@router.get("/user-blocks/{user_id}")
async def blocks_of_user(
    user_id: str, call: ReadUsers, services: ServicesDep, tenant: TenantDep
) -> Response:
    return _shown(await user_blocks.blocks_for_user(tenant.config, user_id, services.management))


@router.delete("/user-blocks/{user_id}")
async def unblock_user(
    user_id: str, call: UpdateUsers, services: ServicesDep, tenant: TenantDep
) -> Response:
    await user_blocks.unblock_user(tenant.config, user_id, call, services.management)
    return Response(status_code=204)
