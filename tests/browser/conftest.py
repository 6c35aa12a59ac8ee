"""Real headless Chromium (Debian's ``/usr/bin/chromium``, driven by Playwright) against a
live ``nopass serve``, with a local HTTP server standing in for the client's callback.

Without Chromium these tests skip with a reason, and fail instead when
NOPASS_TEST_REQUIRE_SERVICES=1 (CI installs it: ``.ci/run``), so CI can never skip them.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from playwright.async_api import Browser

from tests.support.browser import chromium, http_server
from tests.support.config import NATIVE_ID
from tests.support.harness import prepare_database
from tests.support.live import LiveServer, live_server, nopass_env
from tests.support.services import free_port
from tests.support.sms_gateway import Gateway
from tests.support.smtp import SmtpSink
from tests.support.tokens import login_config

ARTIFACTS = Path(__file__).parents[2] / "test-artifacts" / "browser"


@dataclass
class Callback:
    """The client application's redirect target: records every query it receives."""

    url: str = ""
    queries: list[dict[str, list[str]]] = field(default_factory=list)
    signed_out: list[dict[str, list[str]]] = field(default_factory=list)

    @property
    def logout_url(self) -> str:
        """The client's one allowed logout URL (``post_logout_redirect_uri``)."""
        return self.url.removesuffix("/callback") + "/signed-out"


def _callback_handler(state: Callback) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            parts = urlsplit(self.path)
            if parts.path == "/callback":
                state.queries.append(parse_qs(parts.query))
            elif parts.path == "/signed-out":
                state.signed_out.append(parse_qs(parts.query))
            body = b"<!doctype html><title>App</title><h1>Back at the application</h1>"
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


@pytest.fixture
def callback() -> Iterator[Callback]:
    state = Callback()
    with http_server(_callback_handler(state)) as origin:
        state.url = f"{origin}/callback"
        yield state


@pytest.fixture
async def server(
    sqlite_url: str, smtp_sink: SmtpSink, gateway: Gateway, callback: Callback, tmp_path: Path
) -> AsyncIterator[LiveServer]:
    """nopass on ``http://127.0.0.1:PORT`` (so cookies are not ``Secure``), its Native App
    calling back to the local callback server."""
    port = free_port()
    config = login_config(
        f"http://127.0.0.1:{port}", smtp_port=smtp_sink.port, gateway_url=gateway.url
    )
    for client in config["clients"]:
        if client["client_id"] == NATIVE_ID:
            client["callbacks"] = [callback.url]
            client["allowed_logout_urls"] = [callback.logout_url]
    await prepare_database(sqlite_url, config)
    with live_server(nopass_env(sqlite_url), tmp_path, port=port) as live:
        yield live


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with chromium() as launched:
        yield launched
