"""OIDC discovery, the JWKS and ``/userinfo`` (OIDC Discovery §4, RFC 7517, OIDC Core §5.3).

``/userinfo`` takes the access token in the ``Authorization: Bearer`` header (RFC 6750 §2.1)
or, on a POST, in an ``application/x-www-form-urlencoded`` body's ``access_token`` (§2.2, as
pyoidc sends it); never both, and never in the query.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from nopass.api.body import read_body
from nopass.api.deps import ServicesDep, TenantDep
from nopass.api.errors import bearer_challenge, bearer_error
from nopass.api.responses import JSON
from nopass.core.errors import InvalidAccessToken, RequestRejected
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


FORM = "application/x-www-form-urlencoded"


async def _bearer_token(request: Request) -> str | None:
    """The request's one access token; ``None`` when it has none. A token given both ways,
    or a body ``access_token`` that is not one string, is ``RequestRejected``."""
    scheme, _, header_token = request.headers.get("authorization", "").partition(" ")
    in_header = scheme.lower() == "bearer"
    in_body: object = None
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if request.method == "POST" and content_type == FORM:
        in_body = (await read_body(request)).get("access_token")
    if in_body is not None and in_header:
        raise RequestRejected("access_token", "Only one access token may be given")
    if in_body is not None and not isinstance(in_body, str):
        raise RequestRejected("access_token", "access_token must be given once, as a string")
    token = in_body if isinstance(in_body, str) else header_token if in_header else ""
    return token.strip() or None


@router.api_route("/userinfo", methods=["GET", "POST"])
async def user_info(request: Request, services: ServicesDep, tenant: TenantDep) -> Response:
    try:
        token = await _bearer_token(request)
        if token is None:
            return bearer_challenge()
        claims = await userinfo(token, tenant, services.userinfo)
    except (InvalidAccessToken, RequestRejected) as exc:
        return bearer_error(exc)
    return JSON(claims, headers={"Cache-Control": "no-store"})
