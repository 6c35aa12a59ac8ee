"""``POST /oauth/token`` and ``POST /oauth/revoke`` (docs/specs/auth0-wire.md §3, RFC 6749 §5, RFC
7009)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from nopass.api.body import read_body
from nopass.api.commands import revoke_command, token_command
from nopass.api.deps import ServicesDep, TenantDep
from nopass.api.errors import NO_STORE, token_error
from nopass.api.request_info import basic_credentials, request_info
from nopass.api.responses import JSON
from nopass.core.errors import NopassError
from nopass.flows.revoke import revoke
from nopass.flows.token import exchange

router = APIRouter()


@router.post("/oauth/token")
async def token(request: Request, services: ServicesDep, tenant: TenantDep) -> Response:
    try:
        command = token_command(
            await read_body(request),
            basic_credentials(request),
            issuer=tenant.issuer,
            request=request_info(request, services.trusted_proxies),
        )
        tokens = await exchange(command, tenant.config, services.tokens)
    except NopassError as exc:
        return token_error(exc)
    return JSON(tokens.as_json(), headers=NO_STORE)


@router.post("/oauth/revoke")
async def revoke_token(request: Request, services: ServicesDep, tenant: TenantDep) -> Response:
    try:
        command = revoke_command(
            await read_body(request), basic_credentials(request), issuer=tenant.issuer
        )
        await revoke(command, tenant.config, services.tokens)
    except NopassError as exc:
        return token_error(exc)
    return Response(status_code=200, headers=NO_STORE)
