"""The auth0.js and Lock endpoints: ``POST /passwordless/verify`` (docs/specs/auth0-wire.md §5.1,
§12.10), ``POST|OPTIONS /co/authenticate`` (§5.2, §1.5, §12.11) and
``GET /client/{client_id}.js`` (§5.8)."""

from __future__ import annotations

import json

from fastapi import APIRouter, Request
from starlette.responses import Response

from nopass.api.body import read_body
from nopass.api.commands import cross_origin_fields, text_field, verify_command
from nopass.api.cors import SDK_HEADERS, allow_origin, origin_refused, preflight
from nopass.api.deps import ServicesDep, TenantDep
from nopass.api.errors import co_authenticate_error, verify_error
from nopass.api.request_info import basic_credentials, request_info
from nopass.api.responses import JSON
from nopass.core.errors import BodyUnreadable, NopassError, OriginNotAllowed
from nopass.core.models import Resolved
from nopass.flows.cross_origin import (
    VERIFIER_COOKIE_PREFIX,
    CrossOriginCommand,
    authenticate,
    refuse_origin,
)
from nopass.flows.lock_client import lock_client
from nopass.flows.origins import origin_allowed, tenant_origins
from nopass.flows.passwordless_verify import verify_passwordless

router = APIRouter()
CO_PATH = "/co/authenticate"


@router.post("/passwordless/verify")
async def passwordless_verify(
    request: Request, services: ServicesDep, tenant: TenantDep
) -> Response:
    try:
        command = verify_command(
            await read_body(request),
            basic_credentials(request),
            issuer=tenant.issuer,
            request=request_info(request, services.trusted_proxies),
        )
        await verify_passwordless(command, tenant.config, services.browser)
    except NopassError as exc:
        return verify_error(exc)
    return JSON({})


@router.options(CO_PATH)
async def co_preflight(request: Request, services: ServicesDep, tenant: TenantDep) -> Response:
    """The pre-flight carries no body, so no client: origins of any client of the tenant."""
    origin = request.headers.get("origin")
    if origin is None or not origin_allowed(origin, tenant_origins(tenant.config)):
        info = request_info(request, services.trusted_proxies)
        refused = await refuse_origin(origin, tenant.config, info, services.browser)
        return origin_refused(refused.origin)
    return preflight(
        origin,
        request.headers.get("access-control-request-headers"),
        methods="POST",
        allow_list=SDK_HEADERS,
        credentials=True,
    )


@router.post(CO_PATH)
async def co_authenticate(request: Request, services: ServicesDep, tenant: TenantDep) -> Response:
    origin = request.headers.get("origin")
    try:
        body: dict[str, object] | None = await read_body(request)
    except BodyUnreadable:
        body = None
    command = CrossOriginCommand(
        fields=cross_origin_fields(body),
        client_id=text_field(body, "client_id"),
        username=text_field(body, "username"),
        origin=origin,
        request=request_info(request, services.trusted_proxies),
    )
    try:
        issued = await authenticate(command, tenant.config, services.browser)
    except OriginNotAllowed as exc:
        return origin_refused(exc.origin)
    except NopassError as exc:
        response = co_authenticate_error(exc)
    else:
        response = JSON(issued.as_json(), headers={"Cache-Control": "no-store"})
        response.set_cookie(
            VERIFIER_COOKIE_PREFIX + issued.co_id,
            issued.co_verifier,
            max_age=issued.lifetime,
            path="/",
            httponly=True,
            secure=_https(tenant),
            samesite="none" if _https(tenant) else "lax",
        )
    if origin is not None:  # the flow refused every other origin
        response.headers.update(allow_origin(origin, credentials=True))
    return response


def _https(tenant: Resolved) -> bool:
    """The verifier cookie is set by a cross-origin request and read at ``/authorize``:
    ``SameSite=None`` (which needs ``Secure``) on https, ``Lax`` on plain http."""
    return tenant.origin.startswith("https://")


@router.get("/client/{client_id}.js")
async def lock_client_script(client_id: str, tenant: TenantDep) -> Response:
    description = lock_client(tenant.config, client_id)
    headers = {"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"}
    if description is None:
        return Response(
            "/* unknown client */\n",
            status_code=404,
            media_type="application/javascript",
            headers=headers,
        )
    body = json.dumps(description, ensure_ascii=True, separators=(",", ":"))
    for char, escaped in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026")):
        body = body.replace(char, escaped)
    return Response(
        f"Auth0.setClient({body});\n", media_type="application/javascript", headers=headers
    )
