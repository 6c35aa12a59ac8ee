"""``/api/v2/sessions/{id}``, ``/api/v2/refresh-tokens/{id}`` and
``/api/v2/users/{id}/revoke-access`` (docs/specs/management-api.md §3.9), with the scopes of
§9. The objects are those of a user's lists (``user_object.py``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from nopass.api.deps import ServicesDep, TenantDep
from nopass.api.management.frame import read_object, scoped
from nopass.api.management.user_commands import boolean_field, known_fields, string_field
from nopass.api.management.user_object import refresh_token_object, session_object
from nopass.api.responses import JSON
from nopass.flows.management import sessions
from nopass.flows.management.caller import ApiCall

router = APIRouter()
ReadSessions = Annotated[ApiCall, Depends(scoped("read:sessions"))]
DeleteSessions = Annotated[ApiCall, Depends(scoped("delete:sessions"))]
ReadRefreshTokens = Annotated[ApiCall, Depends(scoped("read:refresh_tokens"))]
DeleteRefreshTokens = Annotated[ApiCall, Depends(scoped("delete:refresh_tokens"))]
RevokeAccess = Annotated[ApiCall, Depends(scoped("delete:sessions", "delete:refresh_tokens"))]
REVOKE_FIELDS = frozenset({"session_id", "preserve_refresh_tokens"})
MAX_SESSION_ID = 128


@router.get("/sessions/{session_id}")
async def get_session(
    session_id: str, call: ReadSessions, services: ServicesDep, tenant: TenantDep
) -> Response:
    session = await sessions.get_session(tenant.config, session_id, services.management)
    return JSON(session_object(session))


@router.delete("/sessions/{session_id}")
async def delete_session(
    session_id: str, call: DeleteSessions, services: ServicesDep, tenant: TenantDep
) -> Response:
    await sessions.delete_session(tenant.config, session_id, call, services.management)
    return Response(status_code=204)


@router.get("/refresh-tokens/{token_id}")
async def get_refresh_token(
    token_id: str, call: ReadRefreshTokens, services: ServicesDep, tenant: TenantDep
) -> Response:
    grant = await sessions.get_refresh_token(tenant.config, token_id, services.management)
    return JSON(refresh_token_object(grant))


@router.delete("/refresh-tokens/{token_id}")
async def delete_refresh_token(
    token_id: str, call: DeleteRefreshTokens, services: ServicesDep, tenant: TenantDep
) -> Response:
    await sessions.delete_refresh_token(tenant.config, token_id, call, services.management)
    return Response(status_code=204)


def revoke_command(body: Mapping[str, Any]) -> sessions.RevokeAccess:
    """``{session_id?, preserve_refresh_tokens?}``; ``null`` is absent (the Fern SDKs send
    it for an omitted argument passed as None)."""
    known_fields(body, REVOKE_FIELDS)
    return sessions.RevokeAccess(
        session_id=string_field(body, "session_id", limit=MAX_SESSION_ID),
        preserve_refresh_tokens=bool(boolean_field(body, "preserve_refresh_tokens")),
    )


@router.post("/users/{user_id}/revoke-access")
async def revoke_access(
    user_id: str, request: Request, call: RevokeAccess, services: ServicesDep, tenant: TenantDep
) -> Response:
    command = revoke_command(await read_object(request))
    await sessions.revoke_access(tenant.config, user_id, command, call, services.management)
    return Response(status_code=202)
