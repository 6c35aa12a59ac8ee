"""OIDC discovery, the JWKS and ``/userinfo`` (OIDC Discovery §4, RFC 7517, OIDC Core §5.3)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import PlainTextResponse, Response

from nopass.api.deps import ServicesDep, TenantDep
from nopass.api.responses import JSON
from nopass.core.errors import InvalidAccessToken
from nopass.flows.userinfo import userinfo
from nopass.tokens.discovery import openid_configuration

router = APIRouter()
PUBLIC_CACHE = {"Cache-Control": "public, max-age=60"}


@router.get("/.well-known/openid-configuration")
async def discovery(tenant: TenantDep) -> Response:
    return JSON(openid_configuration(tenant.issuer), headers=PUBLIC_CACHE)


@router.get("/.well-known/jwks.json")
async def jwks(services: ServicesDep, tenant: TenantDep) -> Response:
    keys = await services.tokens.keys.jwks(tenant.config.tenant.id)
    return JSON({"keys": keys}, headers=PUBLIC_CACHE)


def _unauthorized(error: str | None) -> Response:
    challenge = "Bearer" if error is None else f'Bearer error="{error}"'
    return PlainTextResponse(
        "Unauthorized", status_code=401, headers={"WWW-Authenticate": challenge}
    )


@router.api_route("/userinfo", methods=["GET", "POST"])
async def user_info(request: Request, services: ServicesDep, tenant: TenantDep) -> Response:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return _unauthorized(None)
    try:
        claims = await userinfo(token.strip(), tenant, services.userinfo)
    except InvalidAccessToken:
        return _unauthorized("invalid_token")
    return JSON(claims, headers={"Cache-Control": "no-store"})
