"""Logging out: ``GET /v2/logout`` (Auth0's) and ``GET``/``POST /oidc/logout``
(OpenID Connect RP-Initiated Logout 1.0, advertised as ``end_session_endpoint``).

The rules live in ``flows/logout.py``. Here: read the parameters, clear the session cookie
on every logout that does not fail, and answer with the redirect or the signed-out page.
A refused ``/oidc/logout`` gets the HTML error page and keeps its cookie.
"""

from __future__ import annotations

from dataclasses import replace

from fastapi import APIRouter, Request
from starlette.responses import RedirectResponse, Response

from nopass.api.body import read_body
from nopass.api.browser import SESSION_COOKIE, cookie_options, error_page
from nopass.api.deps import Services, ServicesDep, TenantDep
from nopass.api.i18n import choose_language, texts
from nopass.api.pages import page
from nopass.api.request_info import request_info
from nopass.core.errors import BodyUnreadable, RedirectRejected
from nopass.core.models import AuditEvent, Resolved
from nopass.flows.logout import end_session, legacy_target, rp_logout

router = APIRouter()
NO_STORE = {"Cache-Control": "no-store"}
FORM = "application/x-www-form-urlencoded"


def _audit(request: Request, services: Services, tenant: Resolved) -> AuditEvent:
    info = request_info(request, services.trusted_proxies)
    return AuditEvent(
        tenant_id=tenant.config.tenant.id, type="", ip=info.ip, user_agent=info.user_agent
    )


def _signed_out(
    request: Request, tenant: Resolved, target: str | None, ui_locales: str | None = None
) -> Response:
    response: Response
    if target is not None:
        response = RedirectResponse(target, 302, headers=NO_STORE)
    else:
        t = texts(choose_language(ui_locales, request.headers.get("accept-language")))
        response = page(
            "pages/login_signed_out.html",
            lang=t.language,
            title=t("logout.title"),
            message=t("logout.message"),
        )
    response.set_cookie(SESSION_COOKIE, "", **cookie_options(tenant, 0))
    return response


@router.get("/v2/logout")
async def logout(request: Request, services: ServicesDep, tenant: TenantDep) -> Response:
    """End the nopass session; go to ``returnTo`` only when the client allow-lists it."""
    params: dict[str, str | list[str]] = {}
    for key in ("client_id", "returnTo"):
        values = request.query_params.getlist(key)
        if values:
            params[key] = values[0] if len(values) == 1 else values
    target = legacy_target(tenant.config, params)
    audit = _audit(request, services, tenant)
    client_id = params.get("client_id")
    if isinstance(client_id, str) and client_id in tenant.config.clients:
        audit = replace(audit, client_id=client_id)
    session = request.cookies.get(SESSION_COOKIE)
    await end_session(services.browser, tenant.config.tenant.id, session, audit)
    return _signed_out(request, tenant, target)


@router.api_route("/oidc/logout", methods=["GET", "POST"])
async def oidc_logout(request: Request, services: ServicesDep, tenant: TenantDep) -> Response:
    """RP-Initiated Logout 1.0 §2: parameters in the query (GET) or a form body (POST)."""
    try:
        if request.method == "POST":
            content_type = request.headers.get("content-type", "").split(";")[0].strip()
            if content_type.lower() not in ("", FORM):  # §2: a form, as the spec says
                raise BodyUnreadable()
            params: dict[str, object] = await read_body(request)
        else:
            params = {}
            for key in request.query_params:
                values = request.query_params.getlist(key)
                params[key] = values[0] if len(values) == 1 else values
        done = await rp_logout(
            services.browser,
            tenant,
            params,
            request.cookies.get(SESSION_COOKIE),
            _audit(request, services, tenant),
        )
    except BodyUnreadable:
        return error_page(RedirectRejected("unreadable_body"))
    except RedirectRejected as exc:
        return error_page(exc)
    return _signed_out(request, tenant, done.redirect_to, done.ui_locales)
