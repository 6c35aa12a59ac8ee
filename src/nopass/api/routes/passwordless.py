"""``POST /passwordless/start`` (docs/specs/auth0-wire.md §2, §12.2-12.4)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from nopass.api.body import read_body
from nopass.api.commands import start_command
from nopass.api.deps import ServicesDep, TenantDep
from nopass.api.errors import rate_limit_headers, start_error
from nopass.api.request_info import basic_credentials, request_info, request_language
from nopass.api.responses import JSON
from nopass.core.errors import NopassError
from nopass.core.models import Channel
from nopass.flows.start import start_passwordless

router = APIRouter()


@router.post("/passwordless/start")
async def passwordless_start(
    request: Request, services: ServicesDep, tenant: TenantDep
) -> Response:
    try:
        body = await read_body(request)
        command = start_command(
            body,
            basic_credentials(request),
            origin=tenant.origin,
            request=request_info(request, services.trusted_proxies),
            request_language=request_language(request),
        )
        result = await start_passwordless(command, tenant.config, services.start)
    except NopassError as exc:
        return start_error(exc)
    headers = rate_limit_headers(result.rate_limit) if result.rate_limit else None
    if result.channel is Channel.EMAIL:
        body = {"_id": result.id, "email": result.identifier, "email_verified": False}
        return JSON(body, headers=headers)
    return JSON(
        {
            "_id": result.id,
            "phone_number": result.identifier,
            "phone_verified": False,
            "request_language": result.request_language,
        },
        headers=headers,
    )
