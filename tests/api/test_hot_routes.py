"""``POST /passwordless/start`` and ``POST /oauth/token`` skip FastAPI's routing
(api/hot_routes.py) and answer exactly as the routed path does: the same requests, sent to
an application with the shortcut and to one without it, get the same status, headers and
body (ids aside). Both applications read one frozen clock, so that answers which carry a
time (``x-ratelimit-reset``, in epoch seconds) do not differ when the real clock crosses a
second between the two."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, cast

import httpx
import pytest
from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from starlette.middleware import Middleware

from nopass.api.hot_routes import HotRoutes
from nopass.app import create_app
from nopass.core.models import PASSWORDLESS_OTP_GRANT
from tests.support import harness
from tests.support.clock import FrozenClock
from tests.support.config import NATIVE_ID, WEB_ID, tenant_config

ORIGIN = "http://127.0.0.1:8123"
# The date is the real clock's (the server's); ids are of one length, so content-length is compared.
VARYING_HEADERS = frozenset({"date"})

Request = tuple[str, str, dict[str, Any]]  # method, path, httpx keyword arguments
WRONG_SECRET = "Basic " + base64.b64encode(f"{WEB_ID}:wrong".encode()).decode()


def _json() -> dict[str, str]:
    return {"content-type": "application/json"}


REQUESTS: list[Request] = [
    ("POST", "/passwordless/start", {"json": {"client_id": NATIVE_ID, "connection": "email"}}),
    (
        "POST",
        "/passwordless/start",
        {
            "json": {
                "client_id": NATIVE_ID,
                "connection": "email",
                "email": "new.user@example.com",
                "send": "code",
            }
        },
    ),
    ("POST", "/passwordless/start", {"json": {"client_id": "nobody", "connection": "email"}}),
    ("POST", "/passwordless/start", {"content": b"{not json", "headers": _json()}),
    ("POST", "/passwordless/start", {"content": b"x=1", "headers": {"content-type": "text/x"}}),
    ("POST", "/passwordless/start", {"data": {"client_id": NATIVE_ID, "connection": "sms"}}),
    (
        "POST",
        "/passwordless/start",
        {"json": {"client_id": NATIVE_ID}, "headers": {"host": "unknown.example"}},
    ),
    (
        "POST",
        "/passwordless/start",
        {"json": {"client_id": NATIVE_ID}, "headers": {"origin": "https://evil.example"}},
    ),
    ("POST", "/oauth/token", {"data": {"grant_type": "password", "client_id": NATIVE_ID}}),
    (
        "POST",
        "/oauth/token",
        {
            "json": {
                "grant_type": PASSWORDLESS_OTP_GRANT,
                "client_id": NATIVE_ID,
                "username": "nobody@example.com",
                "otp": "000000",
                "realm": "email",
            }
        },
    ),
    (
        "POST",
        "/oauth/token",
        {
            "data": {"grant_type": PASSWORDLESS_OTP_GRANT},
            "headers": {"authorization": WRONG_SECRET},
        },
    ),
    ("POST", "/oauth/token", {"content": b"[]", "headers": _json()}),
    ("GET", "/oauth/token", {}),  # not a hot route: FastAPI's 405 either way
]


@pytest.fixture
async def apps(
    tmp_path: Path,
) -> AsyncIterator[tuple[httpx.AsyncClient, httpx.AsyncClient, list[str]]]:
    """Two applications, each on a database of its own with the same tenant, on one
    frozen clock."""
    urls = [f"sqlite:///{tmp_path / name}.db" for name in ("hot", "routed")]
    for url in urls:
        await harness.prepare_database(url, tenant_config(ORIGIN))
    clock = FrozenClock()
    hot = create_app(harness.test_settings(urls[0]), clock=clock)
    routed = create_app(harness.test_settings(urls[1]), clock=clock)
    routed.user_middleware = [m for m in routed.user_middleware if not _is_hot(m)]
    called = _record_hot_calls(hot)
    async with LifespanManager(hot) as one, LifespanManager(routed) as two:
        clients = [
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=m.app, client=("203.0.113.7", 50000)),
                base_url=ORIGIN,
            )
            for m in (one, two)
        ]
        try:
            yield clients[0], clients[1], called
        finally:
            for client in clients:
                await client.aclose()


def _is_hot(middleware: Middleware) -> bool:
    return cast(object, middleware.cls) is HotRoutes


def _record_hot_calls(app: FastAPI) -> list[str]:
    """Wraps the hot table's endpoints (behaviour unchanged) to see that they are used."""
    called: list[str] = []
    [middleware] = [m for m in app.user_middleware if _is_hot(m)]
    routes = cast(dict[tuple[str, str], Any], middleware.kwargs["routes"])

    def recording(key: tuple[str, str], endpoint: Any) -> Any:
        async def wrapped(*args: Any) -> Any:
            called.append(key[1])
            return await endpoint(*args)

        return wrapped

    middleware.kwargs["routes"] = {key: recording(key, e) for key, e in routes.items()}
    return called


def _comparable(response: httpx.Response) -> tuple[int, dict[str, str], Any]:
    headers = {k: v for k, v in response.headers.items() if k not in VARYING_HEADERS}
    try:
        body: Any = response.json()
    except ValueError:
        body = response.text
    if isinstance(body, dict) and "_id" in body:
        body["_id"] = "<id>"
    return response.status_code, headers, body


@pytest.mark.parametrize("request_", REQUESTS, ids=lambda r: f"{r[0]} {r[1]} {sorted(r[2])}")
async def test_the_shortcut_answers_as_the_routed_path_does(
    apps: tuple[httpx.AsyncClient, httpx.AsyncClient, list[str]], request_: Request
) -> None:
    hot, routed, called = apps
    method, path, kwargs = request_
    first = await hot.request(method, path, **kwargs)
    second = await routed.request(method, path, **kwargs)
    assert _comparable(first) == _comparable(second)
    tenant_known = kwargs.get("headers", {}).get("host") is None
    assert called == ([path] if method == "POST" and tenant_known else [])


async def test_a_successful_start_takes_the_shortcut(
    apps: tuple[httpx.AsyncClient, httpx.AsyncClient, list[str]],
) -> None:
    hot, _, called = apps
    response = await hot.post(
        "/passwordless/start",
        json={"client_id": NATIVE_ID, "connection": "email", "email": "a@example.com"},
    )
    assert response.status_code == 200, response.text
    assert response.json()["email"] == "a@example.com"
    assert called == ["/passwordless/start"]
