"""The hosted login page: ``GET /authorize`` (issue 4 item 3; docs/specs/interface.md "The hosted
login page", binding markup), its forms under ``/login``; logging out is in ``routes/logout.py``.

Pages work without JavaScript, load nothing from elsewhere and carry a strict CSP with a
per-response nonce (``api/pages.py``). Every form posts here with a CSRF token bound to the
login transaction (an HMAC of its id); a post without a valid one gets a 403 page and changes
nothing. Posts that succeed answer 303 (post/redirect/get, RFC 9700 §4.12).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import RedirectResponse, Response

from nopass.api.body import read_body
from nopass.api.browser import (
    SESSION_COOKIE,
    TX_COOKIE,
    cookie_options,
    error_page,
    failure_response,
    session_cookie,
)
from nopass.api.commands import authorize_params, login_ticket
from nopass.api.deps import Services, ServicesDep, TenantDep
from nopass.api.i18n import Texts, choose_language, texts
from nopass.api.pages import origin_of, page
from nopass.api.request_info import request_info
from nopass.api.response_modes import SEE_OTHER, send_response
from nopass.core.channel import Channel
from nopass.core.errors import (
    CodeFailure,
    CodeRejected,
    CountryNotAllowed,
    DeliveryFailed,
    IdentityBlocked,
    MissingProperty,
    NopassError,
    RateLimited,
    RedirectRejected,
    RequestRejected,
    ResendTooSoon,
    ServiceUnavailable,
    UserBlocked,
)
from nopass.core.models import AuditEvent, Connection, LoginTransaction, Resolved
from nopass.flows.authorization_request import (
    AuthorizeFailed,
    AuthorizeParams,
    AuthorizeRequest,
    parse_authorize,
)
from nopass.flows.cross_origin import answer_ticket, verifier_cookie_name
from nopass.flows.login_page import (
    TRANSACTION_LIFETIME,
    PageDeps,
    Sender,
    answer_from_session,
    begin_login,
    find_transaction,
    resend_message,
    send_message,
    transaction_connection,
    verify_page_code,
)

router = APIRouter()
LOGIN = "/login"
CODE_TEXT = {
    CodeFailure.WRONG: "code.wrong",
    CodeFailure.EXPIRED: "code.expired",
    CodeFailure.EXHAUSTED: "code.exhausted",
}


@dataclass(frozen=True, slots=True)
class _View:
    """One login transaction, as its pages need it."""

    tenant: Resolved
    tx: LoginTransaction
    request: AuthorizeRequest
    connection: Connection
    t: Texts
    csrf: str

    @property
    def client_name(self) -> str:
        return self.tenant.config.clients[self.tx.client_id].name

    def branding(self) -> dict[str, Any]:
        """The tenant settings the page shows (logo, help), and the CSP its logo needs."""
        tenant = self.tenant.config.tenant
        logo = tenant.picture_url
        return {
            "tenant_name": tenant.friendly_name or tenant.name,
            "picture_url": logo,
            "support_email": tenant.support_email,
            "support_url": tenant.support_url,
            "images": (origin_of(logo),) if logo else (),
        }


def _field(form: dict[str, object], name: str) -> str | None:
    value = form.get(name)
    return value if isinstance(value, str) else None


def _language(request: Request, ui_locales: str | None = None) -> Texts:
    return texts(choose_language(ui_locales, request.headers.get("accept-language")))


def _audit(
    request: Request,
    services: Services,
    tenant: Resolved,
    client_id: str,
    *,
    connection: str | None = None,
    user_name: str | None = None,
) -> AuditEvent:
    info = request_info(request, services.trusted_proxies)
    return AuditEvent(
        tenant_id=tenant.config.tenant.id,
        type="",
        ip=info.ip,
        user_agent=info.user_agent,
        client_id=client_id,
        connection=connection,
        user_name=user_name,
    )


def _message_page(t: Texts, name: str, status: int) -> Response:
    return page(
        "pages/error.html",
        status=status,
        lang=t.language,
        title=t(f"{name}.title"),
        message=t(f"{name}.message" if name != "error" else "error.generic"),
    )


def _identifier_page(
    view: _View,
    *,
    value: str = "",
    error: str | None = None,
    status: int = 200,
    headers: dict[str, str] | None = None,
) -> Response:
    strategy = view.connection.strategy
    intro = "link" if view.request.send == "link" else "code"
    if not view.connection.channel.links:
        intro = "sms"
    return page(
        "pages/login_identifier.html",
        status=status,
        headers=headers,
        lang=view.t.language,
        t=view.t,
        title=view.t(f"identifier.title.{strategy}"),
        intro=view.t(f"identifier.intro.{intro}"),
        client_name=view.client_name,
        csrf=view.csrf,
        strategy=strategy,
        **view.branding(),
        value=value,
        error=error,
    )


def _step_page(
    view: _View,
    *,
    error: str | None = None,
    notice: str | None = None,
    status: int = 200,
    headers: dict[str, str] | None = None,
) -> Response:
    """The page after a send: the code form, or "check your email" for a link."""
    link = view.tx.send == "link"
    return page(
        "pages/login_check_email.html" if link else "pages/login_code.html",
        status=status,
        headers=headers,
        # The code form's answer redirects to the client: CSP form-action must allow it.
        form_targets=(origin_of(view.request.redirect_uri),),
        lang=view.t.language,
        t=view.t,
        title=view.t("check.title" if link else "code.title"),
        client_name=view.client_name,
        csrf=view.csrf,
        strategy=view.connection.strategy,
        **view.branding(),
        identifier=view.tx.identifier or "",
        error=error,
        notice=notice,
    )


def _view_of(
    request: Request, services: Services, tenant: Resolved, tx: LoginTransaction
) -> _View | Response:
    t = _language(request, tx.params.get("ui_locales"))
    try:
        auth = parse_authorize(
            AuthorizeParams.of(tx.params), tenant.config
        )  # the configuration may have changed
    except RedirectRejected as exc:
        return error_page(exc)
    except AuthorizeFailed as exc:
        return send_response(failure_response(exc), after_post=request.method == "POST")
    connection = transaction_connection(tenant.config, tx)
    if connection is None:
        return _message_page(t, "error", 400)
    csrf = services.browser.keyring.form_token(tx.id)
    return _View(tenant=tenant, tx=tx, request=auth, connection=connection, t=t, csrf=csrf)


async def _load(
    request: Request,
    services: Services,
    tenant: Resolved,
    form: dict[str, object] | None = None,
) -> _View | Response:
    """The transaction of the browser's cookie; for a post (``form``), only with its token."""
    token = request.cookies.get(TX_COOKIE)
    tx = await find_transaction(services.browser, tenant.config.tenant.id, token)
    if tx is None:
        return _message_page(_language(request), "expired", 400)
    if form is not None:
        submitted = _field(form, "csrf_token")
        keyring = services.browser.keyring
        if submitted is None or not keyring.form_token_matches(tx.id, submitted):
            return _message_page(_language(request, tx.params.get("ui_locales")), "csrf", 403)
    return _view_of(request, services, tenant, tx)


async def _form(request: Request) -> dict[str, object]:
    try:
        return await read_body(request)
    except RequestRejected:
        return {}


def _sender(request: Request, services: Services, view: _View) -> Sender:
    return Sender(
        origin=view.tenant.origin,
        info=request_info(request, services.trusted_proxies),
        language=view.t.language,
    )


def _send_failed(view: _View, exc: NopassError) -> Response:
    if isinstance(exc, ServiceUnavailable):
        raise exc
    if isinstance(exc, DeliveryFailed):
        return _step_page(view, error=view.t("error.delivery"), status=502)
    if isinstance(exc, RateLimited):
        return _step_page(view, error=_too_many(view, exc), status=429, headers=_retry(exc))
    return _message_page(view.t, "error", 400)


def _too_many(view: _View, exc: RateLimited) -> str:
    return view.t("error.too_many", minutes=max(1, math.ceil(exc.retry_after / 60)))


def _retry(exc: RateLimited) -> dict[str, str]:
    return {"Retry-After": str(exc.retry_after)}


@router.get("/authorize")
async def authorize(request: Request, services: ServicesDep, tenant: TenantDep) -> Response:
    query = request.query_params.multi_items()
    try:
        auth = parse_authorize(authorize_params(query), tenant.config)
        ticket = login_ticket(query)
    except RedirectRejected as exc:
        return error_page(exc)
    except AuthorizeFailed as exc:
        return send_response(failure_response(exc), after_post=False)
    audit = _audit(request, services, tenant, auth.client_id)
    if ticket is not None:  # auth0.js after /co/authenticate (docs/specs/auth0-wire.md §5.3)
        return await _ticket_login(request, services, tenant, auth, ticket, audit)
    try:
        if auth.prompt != "login":
            answer = await answer_from_session(
                services.browser,
                tenant.config,
                tenant.issuer,
                auth,
                request.cookies.get(SESSION_COOKIE),
                audit=audit,
            )
            if answer is not None:
                return send_response(answer, after_post=False)
        token, tx = await begin_login(services.browser, tenant.config, auth)
    except AuthorizeFailed as exc:
        return send_response(failure_response(exc), after_post=False)
    view = _view_of(request, services, tenant, tx)
    if isinstance(view, Response):
        return view
    response = _identifier_page(view, value=auth.login_hint or "")
    lifetime = int(TRANSACTION_LIFETIME.total_seconds())
    response.set_cookie(TX_COOKIE, token, **cookie_options(tenant, lifetime))
    return response


async def _ticket_login(
    request: Request,
    services: Services,
    tenant: Resolved,
    auth: AuthorizeRequest,
    ticket: str,
    audit: AuditEvent,
) -> Response:
    verifier_cookie = verifier_cookie_name(ticket)
    try:
        answer, session = await answer_ticket(
            services.browser,
            tenant.config,
            tenant.issuer,
            auth,
            ticket,
            request.cookies.get(verifier_cookie),
            audit=audit,
        )
    except AuthorizeFailed as exc:
        return send_response(failure_response(exc), after_post=False)
    response = send_response(answer, after_post=False, cookies=[session_cookie(tenant, session)])
    response.delete_cookie(verifier_cookie, path="/")
    return response


@router.get(LOGIN)
async def login_step(request: Request, services: ServicesDep, tenant: TenantDep) -> Response:
    view = await _load(request, services, tenant)
    if isinstance(view, Response):
        return view
    identifier = view.tx.identifier
    if identifier is None or request.query_params.get("step") == "identifier":
        return _identifier_page(view, value=identifier or view.request.login_hint or "")
    notice = None
    if request.query_params.get("sent"):
        notice = view.t("resend.link" if view.tx.send == "link" else "resend.code")
    return _step_page(view, notice=notice)


@router.post(LOGIN + "/identifier")
async def submit_identifier(request: Request, services: ServicesDep, tenant: TenantDep) -> Response:
    form = await _form(request)
    view = await _load(request, services, tenant, form)
    if isinstance(view, Response):
        return view
    channel = view.connection.channel
    typed = _field(form, channel.field) or ""
    deps = PageDeps(browser=services.browser, start=services.start)
    try:
        await send_message(
            deps,
            tenant.config,
            view.tx,
            view.connection,
            view.request,
            typed,
            _sender(request, services, view),
        )
    except RequestRejected:
        error = view.t("error.email" if channel is Channel.EMAIL else "error.phone")
        return _identifier_page(view, value=typed, error=error, status=400)
    except DeliveryFailed:
        error = view.t("error.delivery")
        return _identifier_page(view, value=typed, error=error, status=502)
    except CountryNotAllowed:
        error = view.t("error.country")
        return _identifier_page(view, value=typed, error=error, status=400)
    except RateLimited as exc:
        error = _too_many(view, exc)
        return _identifier_page(view, value=typed, error=error, status=429, headers=_retry(exc))
    except NopassError as exc:
        return _send_failed(view, exc)
    return RedirectResponse(LOGIN, SEE_OTHER)


@router.post(LOGIN + "/code")
async def submit_code(request: Request, services: ServicesDep, tenant: TenantDep) -> Response:
    form = await _form(request)
    view = await _load(request, services, tenant, form)
    if isinstance(view, Response):
        return view
    code = _field(form, "code") or ""
    if not code.strip():  # nothing typed: not a guess
        return _step_page(view, error=view.t("code.wrong"), status=400)
    audit = _audit(
        request,
        services,
        tenant,
        view.tx.client_id,
        connection=view.connection.name,
        user_name=view.tx.identifier,
    )
    info = request_info(request, services.trusted_proxies)
    try:
        answer, session = await verify_page_code(
            services.browser,
            tenant.config,
            tenant.issuer,
            view.tx,
            view.connection,
            view.request,
            code,
            ip=info.ip,
            audit=audit,
        )
    except CodeRejected as exc:
        return _step_page(view, error=view.t(CODE_TEXT[exc.reason]), status=400)
    except IdentityBlocked as exc:
        minutes = max(1, math.ceil(exc.retry_after / 60))
        retry = {"Retry-After": str(exc.retry_after)}
        error = view.t("code.blocked", minutes=minutes)
        return _step_page(view, error=error, status=429, headers=retry)
    except UserBlocked:
        return _step_page(view, error=view.t("user.blocked"), status=401)
    except RateLimited as exc:
        return _step_page(view, error=_too_many(view, exc), status=429, headers=_retry(exc))
    cookies = [session_cookie(tenant, session), (TX_COOKIE, "", cookie_options(tenant, 0))]
    return send_response(answer, after_post=True, cookies=cookies)


@router.post(LOGIN + "/resend")
async def resend(request: Request, services: ServicesDep, tenant: TenantDep) -> Response:
    form = await _form(request)
    view = await _load(request, services, tenant, form)
    if isinstance(view, Response):
        return view
    deps = PageDeps(browser=services.browser, start=services.start)
    sender = _sender(request, services, view)
    try:
        await resend_message(deps, tenant.config, view.tx, view.connection, view.request, sender)
    except ResendTooSoon as exc:
        retry = {"Retry-After": str(exc.retry_after)}
        error = view.t("resend.too_soon", seconds=exc.retry_after)
        return _step_page(view, error=error, status=429, headers=retry)
    except MissingProperty:  # nothing was sent yet: ask for the identifier first
        return RedirectResponse(LOGIN, SEE_OTHER)
    except NopassError as exc:
        return _send_failed(view, exc)
    return RedirectResponse(LOGIN + "?sent=1", SEE_OTHER)
