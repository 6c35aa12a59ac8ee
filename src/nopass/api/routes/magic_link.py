"""``GET|HEAD|POST /passwordless/verify_redirect`` (docs/specs/auth0-wire.md §4.2, §12.9)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from nopass.api.body import read_form
from nopass.api.browser import TX_COOKIE, error_page, failure_response, session_cookie
from nopass.api.commands import link_params
from nopass.api.deps import ServicesDep, TenantDep
from nopass.api.pages import origin_of, page
from nopass.api.request_info import request_info
from nopass.api.response_modes import send_response
from nopass.core.errors import BodyUnreadable, RedirectRejected
from nopass.core.models import AuditEvent, Resolved
from nopass.flows.authorization_request import AuthorizeFailed
from nopass.flows.magic_link import (
    MagicLink,
    confirmation_needed,
    latest_challenge_id,
    read_link,
    redeem_link,
)

router = APIRouter()
PATH = "/passwordless/verify_redirect"


@router.api_route(PATH, methods=["GET", "HEAD"])
async def show_link(request: Request, services: ServicesDep, tenant: TenantDep) -> Response:
    try:
        link = read_link(link_params(request.query_params.multi_items()), tenant.config)
    except RedirectRejected as exc:
        return error_page(exc)
    except AuthorizeFailed as exc:
        return send_response(failure_response(exc), after_post=False)
    tx_challenge, latest = await latest_challenge_id(
        services.browser, tenant.config, link, request.cookies.get(TX_COOKIE)
    )
    if request.method == "GET" and not confirmation_needed(link, tx_challenge, latest):
        return await _redeem(request, services, tenant, link, after_post=False)
    fields = list(request.query_params.multi_items())
    who = link.identifier or ""
    return page(
        "pages/confirm_link.html",
        title="Finish signing in",
        message=f"Press the button to finish signing in as {who}.",
        button="Sign in",
        action=PATH,
        fields=fields,
        # The POST answers with a redirect to the client: CSP form-action covers redirects.
        form_targets=(origin_of(link.request.redirect_uri),),
    )


@router.post(PATH)
async def use_link(request: Request, services: ServicesDep, tenant: TenantDep) -> Response:
    try:
        link = read_link(link_params(await read_form(request)), tenant.config)
    except BodyUnreadable:  # more than 64 KiB, or not a form
        return error_page(RedirectRejected("unreadable_form"))
    except RedirectRejected as exc:
        return error_page(exc)
    except AuthorizeFailed as exc:
        return send_response(failure_response(exc), after_post=True)
    return await _redeem(request, services, tenant, link, after_post=True)


async def _redeem(
    request: Request, services: ServicesDep, tenant: Resolved, link: MagicLink, *, after_post: bool
) -> Response:
    info = request_info(request, services.trusted_proxies)
    audit = AuditEvent(
        tenant_id=tenant.config.tenant.id,
        type="",
        ip=info.ip,
        user_agent=info.user_agent,
        client_id=link.request.client_id,
        connection=link.connection.name,
        user_name=link.identifier,
    )
    try:
        response, session = await redeem_link(
            link, tenant.config, tenant.issuer, services.browser, ip=info.ip, audit=audit
        )
    except AuthorizeFailed as exc:
        return send_response(failure_response(exc), after_post=after_post)
    return send_response(response, after_post=after_post, cookies=[session_cookie(tenant, session)])
