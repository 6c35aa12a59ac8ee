"""Auth0's Management API v2 under ``/api/v2`` (docs/specs/management-api.md).

One router: every route behind ``frame.gate`` (tenant by Host, bearer token, rate limit),
then its own scopes. A last catch-all route answers unknown paths (404) and methods a path
does not take (405) after the same gate, so they too carry the rate-limit headers and the
error envelope.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from starlette.exceptions import HTTPException
from starlette.routing import Match

from nopass.api.management import (
    client_grants,
    clients,
    connections,
    jobs,
    logs,
    resource_servers,
    sessions,
    tenant_settings,
    user_blocks,
    users,
)
from nopass.api.management.errors import PREFIX
from nopass.api.management.frame import RateLimitHeaders, gate

__all__ = ["RateLimitHeaders", "router"]

METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]

router = APIRouter(prefix=PREFIX, dependencies=[Depends(gate)])
router.include_router(users.router)
router.include_router(logs.router)
router.include_router(user_blocks.router)
router.include_router(sessions.router)
router.include_router(jobs.router)
router.include_router(connections.router)
router.include_router(clients.router)
router.include_router(resource_servers.router)
router.include_router(client_grants.router)
router.include_router(tenant_settings.router)
CATCH_ALL = PREFIX + "/{rest:path}"


@router.api_route("/{rest:path}", methods=METHODS, include_in_schema=False)
async def unknown(request: Request) -> None:
    """No route has this path (404), or none takes this method (405)."""
    for route in router.routes:
        if getattr(route, "path", None) != CATCH_ALL:
            match, _ = route.matches(request.scope)
            if match is Match.PARTIAL:
                raise HTTPException(405)
    raise HTTPException(404)
