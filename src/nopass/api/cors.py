"""CORS for the endpoints browser SDKs call (docs/specs/auth0-wire.md §1.5; Fetch standard, CORS
protocol).

``/passwordless/start``, ``/passwordless/verify``, ``/oauth/token``, ``/userinfo`` and
``/.well-known/jwks.json`` answer origins that some client of the tenant allows (its Allowed
Web Origins, Allowed Origins or callback origins), without credentials: this middleware does
it. ``/co/authenticate`` is stricter (the client's own origins, with credentials, a plain-text
403 otherwise) and is answered by its route with the helpers below.
"""

from __future__ import annotations

import contextlib

from starlette.datastructures import Headers, MutableHeaders
from starlette.responses import PlainTextResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from nopass.flows.origins import origin_allowed, tenant_origins

PUBLIC_PATHS = frozenset(
    {
        "/passwordless/start",
        "/passwordless/verify",
        "/oauth/token",
        "/userinfo",
        "/.well-known/jwks.json",
    }
)
SDK_HEADERS = ("Content-Type", "Auth0-Client", "X-Request-Language")
PUBLIC_HEADERS = (*SDK_HEADERS, "Authorization")
MAX_AGE = "86400"


def allow_origin(origin: str, *, credentials: bool) -> dict[str, str]:
    headers = {"Access-Control-Allow-Origin": origin, "Vary": "Origin"}
    if credentials:
        headers["Access-Control-Allow-Credentials"] = "true"
    return headers


def allowed_headers(requested: str | None, allow_list: tuple[str, ...]) -> str:
    """Echo ``Access-Control-Request-Headers`` when every name is in ``allow_list``;
    otherwise name the allow-list (and the browser refuses the extra header)."""
    known = {h.lower() for h in allow_list}
    names = [n.strip() for n in (requested or "").split(",") if n.strip()]
    if names and all(n.lower() in known for n in names):
        return ", ".join(names)
    return ", ".join(allow_list)


def preflight(
    origin: str,
    requested_headers: str | None,
    *,
    methods: str,
    allow_list: tuple[str, ...],
    credentials: bool,
) -> Response:
    headers = allow_origin(origin, credentials=credentials)
    headers.update(
        {
            "Access-Control-Allow-Methods": methods,
            "Access-Control-Allow-Headers": allowed_headers(requested_headers, allow_list),
            "Access-Control-Max-Age": MAX_AGE,
        }
    )
    return Response(status_code=204, headers=headers)


def origin_refused(origin: str) -> Response:
    """Auth0's answer to an origin that is not allowed: plain text, no CORS headers."""
    return PlainTextResponse(f"Origin {origin} is not allowed.", status_code=403)


class PublicCors:
    """Pure ASGI middleware: CORS for ``PUBLIC_PATHS`` from the tenant's client origins."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] not in PUBLIC_PATHS:
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        origin = headers.get("origin")
        allowed = origin is not None and await self._allowed(scope, headers, origin)
        if scope["method"] == "OPTIONS" and "access-control-request-method" in headers:
            if origin is None or not allowed:
                response = origin_refused(origin or "null")
            else:
                response = preflight(
                    origin,
                    headers.get("access-control-request-headers"),
                    methods="GET, POST",
                    allow_list=PUBLIC_HEADERS,
                    credentials=False,
                )
            await response(scope, receive, send)
            return

        async def send_with_cors(message: Message) -> None:
            if message["type"] == "http.response.start":
                out = MutableHeaders(scope=message)
                out.add_vary_header("Origin")
                if allowed and origin is not None:
                    out["Access-Control-Allow-Origin"] = origin
            await send(message)

        await self.app(scope, receive, send_with_cors)

    @staticmethod
    async def _allowed(scope: Scope, headers: Headers, origin: str) -> bool:
        services = getattr(scope["app"].state, "services", None)
        if services is None:
            return False
        resolved = None
        # Resolution failing (database down) only means no CORS headers: the route itself
        # then answers the failure.
        with contextlib.suppress(Exception):
            resolved = await services.tenants.resolve(headers.get("host", ""))
        return resolved is not None and origin_allowed(origin, tenant_origins(resolved.config))
