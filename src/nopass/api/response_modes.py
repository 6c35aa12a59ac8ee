"""Sending an authorization response back to the client: query or fragment redirect,
``form_post`` (OAuth 2.0 Form Post Response Mode), or ``web_message`` (auth0.js)."""

from __future__ import annotations

from urllib.parse import quote, urlencode

from starlette.responses import RedirectResponse, Response

from nopass.api.pages import origin_of, page
from nopass.flows.authorization_request import AuthorizationResponse

SEE_OTHER = 303  # after a credential POST (RFC 9700 §4.12); a GET redirects with 302
FOUND = 302


def redirect_url(response: AuthorizationResponse) -> str:
    query = urlencode(response.params, quote_via=quote, safe="")
    if response.mode == "fragment":
        return f"{response.redirect_uri}#{query}"
    separator = "&" if "?" in response.redirect_uri else "?"
    return f"{response.redirect_uri}{separator}{query}"


def send_response(
    response: AuthorizationResponse,
    *,
    after_post: bool,
    cookies: list[tuple[str, str, dict[str, object]]] | None = None,
) -> Response:
    if response.mode == "form_post":
        out: Response = page(
            "pages/form_post.html",
            title="Signing in…",
            button="Continue",
            action=response.redirect_uri,
            fields=sorted(response.params.items()),
            form_targets=(origin_of(response.redirect_uri),),
        )
    elif response.mode == "web_message":
        target = origin_of(response.redirect_uri)
        out = page(
            "pages/web_message.html",
            title="Signing in…",
            response=response.params,
            origin=target,
            frame_ancestors=(target,),
        )
    else:
        out = RedirectResponse(redirect_url(response), SEE_OTHER if after_post else FOUND)
        out.headers["Cache-Control"] = "no-store"
        out.headers["Referrer-Policy"] = "no-referrer"
    for name, value, options in cookies or []:
        out.set_cookie(name, value, **options)  # type: ignore[arg-type]
    return out
