"""The two endpoints of every login, called without FastAPI's routing on the way.

``POST /passwordless/start`` and ``POST /oauth/token`` are most of the traffic. FastAPI
reaches them through its exception middleware, an exit stack, a scan of the routes, the
route's wrappers and a dependency solver: about a tenth of a login's CPU
(docs/benchmarks.md). Here they are called directly, with the same two dependencies
(``get_services``, ``get_tenant``), and what they raise goes to the application's own
exception handlers, so answers are byte for byte those of the routed path (the middleware
outside this one, the body's deadline, CORS and the access log, still sees every request).
Everything else, and these paths under another method or a ``root_path``, goes on to FastAPI.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from nopass.api.deps import Services, get_services, get_tenant
from nopass.core.models import Resolved

__all__ = ["Endpoint", "HotRoutes"]

Endpoint = Callable[[Request, Services, Resolved], Awaitable[Response]]
Handler = Callable[[Request, Exception], Awaitable[Response]]


class HotRoutes:
    """ASGI middleware: ``routes`` maps (method, path) to an endpoint taking the request,
    the services and the resolved tenant."""

    def __init__(self, app: ASGIApp, routes: Mapping[tuple[str, str], Endpoint]) -> None:
        self.app = app
        self.routes = dict(routes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and not scope.get("root_path"):
            endpoint = self.routes.get((scope["method"], scope["path"]))
            if endpoint is not None:
                await self._serve(endpoint, scope, receive, send)
                return
        await self.app(scope, receive, send)

    async def _serve(self, endpoint: Endpoint, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        try:
            services = await get_services(request)
            response = await endpoint(request, services, await get_tenant(request, services))
        except Exception as exc:
            handler = _handler_for(scope, exc)
            if handler is None:
                raise  # the server error middleware answers, as on the routed path
            response = await handler(request, exc)
        await response(scope, receive, send)


def _handler_for(scope: Scope, exc: Exception) -> Handler | None:
    """The application's handler for ``exc``'s class or its nearest base, as Starlette's
    exception middleware picks it; ``Exception`` itself belongs to the server error
    middleware."""
    handlers: Mapping[object, Handler] = scope["app"].exception_handlers
    for cls in type(exc).__mro__:
        if cls is Exception:
            return None
        if cls in handlers:
            return handlers[cls]
    return None
