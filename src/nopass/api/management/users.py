"""``/api/v2/users`` and ``/api/v2/users-by-email`` (docs/specs/management-api.md §3.2-§3.7,
§3.9), with the scopes of §9."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from nopass.api.deps import ServicesDep, TenantDep
from nopass.api.management.frame import (
    FieldSelection,
    checkpoint_page,
    checkpoint_params,
    offset_page,
    page_params,
    query_error,
    read_object,
    scoped,
)
from nopass.api.management.user_commands import new_user, user_patch
from nopass.api.management.user_object import (
    refresh_token_object,
    session_object,
    user_object,
)
from nopass.api.responses import JSON
from nopass.core.user_query import parse_query, parse_sort
from nopass.flows.management import users
from nopass.flows.management.caller import ApiCall

router = APIRouter()
ReadUsers = Annotated[ApiCall, Depends(scoped("read:users"))]
CreateUsers = Annotated[ApiCall, Depends(scoped("create:users"))]
UpdateUsers = Annotated[ApiCall, Depends(scoped("update:users", "update:users_app_metadata"))]
DeleteUsers = Annotated[ApiCall, Depends(scoped("delete:users"))]
ReadSessions = Annotated[ApiCall, Depends(scoped("read:sessions"))]
ReadRefreshTokens = Annotated[ApiCall, Depends(scoped("read:refresh_tokens"))]
DeleteSessions = Annotated[ApiCall, Depends(scoped("delete:sessions"))]
DeleteRefreshTokens = Annotated[ApiCall, Depends(scoped("delete:refresh_tokens"))]


@router.get("/users")
async def list_users(
    request: Request, call: ReadUsers, services: ServicesDep, tenant: TenantDep
) -> Response:
    query = request.query_params
    page, per_page, with_total = page_params(query)
    fields = FieldSelection(query)
    search = users.UserQuery(
        page=page,
        per_page=per_page,
        sort=parse_sort(query.get("sort")),
        with_total=with_total,
        search=parse_query(query.get("q")),  # search_engine v1, v2 and v3 alike
    )
    found, total = await users.list_users(tenant.config, search, services.management)
    items = [fields.apply(user_object(v)) for v in found]
    return JSON(offset_page("users", items, page, per_page, total))


@router.get("/users-by-email")
async def users_by_email(
    request: Request, call: ReadUsers, services: ServicesDep, tenant: TenantDep
) -> Response:
    email = request.query_params.get("email")
    if not email:
        raise query_error("Query validation error: 'Missing required property: email'")
    fields = FieldSelection(request.query_params)
    found = await users.users_by_email(tenant.config, email, services.management)
    return JSON([fields.apply(user_object(v)) for v in found])


@router.get("/users/{user_id}")
async def get_user(
    user_id: str, request: Request, call: ReadUsers, services: ServicesDep, tenant: TenantDep
) -> Response:
    fields = FieldSelection(request.query_params)
    view = await users.get_user(tenant.config, user_id, services.management)
    return JSON(fields.apply(user_object(view)))


@router.post("/users")
async def create_user(
    request: Request, call: CreateUsers, services: ServicesDep, tenant: TenantDep
) -> Response:
    command = new_user(await read_object(request))
    view = await users.create_user(tenant.config, command, call, services.management)
    return JSON(user_object(view), 201)


@router.patch("/users/{user_id}")
async def update_user(
    user_id: str, request: Request, call: UpdateUsers, services: ServicesDep, tenant: TenantDep
) -> Response:
    patch = user_patch(await read_object(request))
    view = await users.update_user(tenant.config, user_id, patch, call, services.management)
    return JSON(user_object(view))


@router.delete("/users/{user_id}")
async def delete_user(
    user_id: str, call: DeleteUsers, services: ServicesDep, tenant: TenantDep
) -> Response:
    await users.delete_user(tenant.config, user_id, call, services.management)
    return Response(status_code=204)


@router.delete("/users/{user_id}/sessions")
async def delete_sessions(
    user_id: str, call: DeleteSessions, services: ServicesDep, tenant: TenantDep
) -> Response:
    await users.delete_sessions(tenant.config, user_id, call, services.management)
    return Response(status_code=202)


@router.delete("/users/{user_id}/refresh-tokens")
async def delete_refresh_tokens(
    user_id: str, call: DeleteRefreshTokens, services: ServicesDep, tenant: TenantDep
) -> Response:
    await users.delete_refresh_tokens(tenant.config, user_id, call, services.management)
    return Response(status_code=202)


@router.get("/users/{user_id}/sessions")
async def list_sessions(
    user_id: str, request: Request, call: ReadSessions, services: ServicesDep, tenant: TenantDep
) -> Response:
    after, take = checkpoint_params(request.query_params)
    page = users.Checkpoint(after=after, take=take)
    found, following = await users.list_sessions(tenant.config, user_id, page, services.management)
    return JSON(checkpoint_page("sessions", [session_object(s) for s in found], following))


@router.get("/users/{user_id}/refresh-tokens")
async def list_refresh_tokens(
    user_id: str,
    request: Request,
    call: ReadRefreshTokens,
    services: ServicesDep,
    tenant: TenantDep,
) -> Response:
    after, take = checkpoint_params(request.query_params)
    page = users.Checkpoint(after=after, take=take)
    found, following = await users.list_refresh_tokens(
        tenant.config, user_id, page, services.management
    )
    return JSON(checkpoint_page("tokens", [refresh_token_object(g) for g in found], following))
