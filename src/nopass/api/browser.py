"""What browser endpoints share: cookies, the HTML error page, failures sent back to clients."""

from __future__ import annotations

from typing import Any

from starlette.responses import HTMLResponse

from nopass.api.errors import authorize_error
from nopass.api.pages import page
from nopass.core.errors import RedirectRejected
from nopass.core.models import Resolved
from nopass.flows.authorization_request import (
    AuthorizationResponse,
    AuthorizeFailed,
    error_response,
)
from nopass.flows.session import SESSION_LIFETIME

SESSION_COOKIE = "nopass_session"
TX_COOKIE = "nopass_tx"

REJECTED_TEXT = {
    "missing_client_id": "The request has no client_id.",
    "unknown_client": "Unknown client: {client_id}.",
    "missing_redirect_uri": "The request has no redirect_uri and the application has several.",
    "callback_mismatch": (
        "Callback URL mismatch. {uri} is not in the list of allowed callback URLs."
    ),
    "repeated_parameter": "The parameter {uri} is given more than once.",
    "unreadable_form": "The form could not be read.",
    # RP-Initiated Logout (/oidc/logout)
    "invalid_id_token_hint": "The id_token_hint is not a valid ID token of this tenant.",
    "hint_client_mismatch": (
        "The client_id {client_id} is not the client the id_token_hint was issued to."
    ),
    "logout_client_missing": (
        "A post_logout_redirect_uri needs an id_token_hint or a client_id naming the application."
    ),
    "logout_url_mismatch": (
        "Logout URL mismatch. {uri} is not in the list of allowed logout URLs of {client_id}."
    ),
    "unreadable_body": "The request body is not a form.",
}


def cookie_options(tenant: Resolved, max_age: int | None) -> dict[str, Any]:
    """HttpOnly, SameSite=Lax, Secure unless the tenant origin is plain http."""
    return {
        "max_age": max_age,
        "httponly": True,
        "samesite": "lax",
        "secure": tenant.origin.startswith("https://"),
        "path": "/",
    }


def session_cookie(tenant: Resolved, token: str) -> tuple[str, str, dict[str, Any]]:
    return SESSION_COOKIE, token, cookie_options(tenant, int(SESSION_LIFETIME.total_seconds()))


def error_page(exc: RedirectRejected) -> HTMLResponse:
    text = REJECTED_TEXT.get(exc.reason, "The request is not valid.")
    message = text.format(client_id=exc.client_id or "", uri=exc.uri or "")
    return page("pages/error.html", status=400, title="Something is wrong", message=message)


def failure_response(exc: AuthorizeFailed) -> AuthorizationResponse:
    error, description = authorize_error(exc.cause)
    return error_response(exc.request, error, description)
