"""auth0.js from npm in real headless Chromium against a live ``nopass serve``.

The npm package is installed once per machine into a temporary cache directory and served,
with a small single-page application, from a local HTTP server on another port of
127.0.0.1: the application origin, registered as the client's web origin and callback.

Without Chromium or npm (or when npm cannot install) these tests skip with a reason, and fail
instead when NOPASS_TEST_REQUIRE_SERVICES=1 (CI), so CI can never skip them silently.
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
from tests.support.config import tenant_config
from tests.support.harness import prepare_database
from tests.support.live import LiveServer, live_server, nopass_env
from tests.support.npm import npm_package
from tests.support.services import free_port
from tests.support.smtp import SmtpSink

AUTH0_JS_VERSION = "9.32.0"  # what `npm install auth0-js@9` resolves to; pinned
SPA_ID = "auth0-js-spa-client"
PAGE = """<!doctype html>
<meta charset="utf-8">
<title>auth0.js test application</title>
<script src="/auth0.min.js"></script>
<script>
  window.outcome = null;
  function failure(err) {
    return {code: err.code, description: err.description, statusCode: err.statusCode || null};
  }
  window.setup = function (domain, clientID, redirectUri, extra) {
    window.webAuth = new auth0.WebAuth(Object.assign({
      domain: domain, clientID: clientID, redirectUri: redirectUri,
      responseType: "code", scope: "openid profile email"
    }, extra || {}));
  };
  // On the callback page: auth0.js reads the fragment and checks the ID token.
  window.parse = function () {
    return new Promise(function (resolve) {
      webAuth.parseHash({}, function (err, res) {
        var error = err && {error: err.error, description: err.errorDescription};
        resolve(err ? {error: error} : {result: res});
      });
    });
  };
  window.start = function (email) {
    return new Promise(function (resolve) {
      webAuth.passwordlessStart({connection: "email", send: "code", email: email},
        function (err, res) { resolve(err ? {error: failure(err)} : {result: res}); });
    });
  };
  // Returns at once: on success auth0.js navigates to /authorize; a failure lands in outcome.
  // With hold, auth0.js' onRedirecting hook waits for resume() before navigating (so the
  // test can read the /co/authenticate response body first).
  window.login = function (email, code, challenge, hold) {
    window.outcome = null;
    var options = {
      connection: "email", email: email, verificationCode: code,
      codeChallenge: challenge, codeChallengeMethod: "S256"
    };
    if (hold) {
      options.onRedirecting = function (done) { window.resume = done; };
    }
    webAuth.passwordlessLogin(options, function (err) { window.outcome = failure(err); });
  };
  window.loginWithoutPkce = function (email, code) {
    var options = {connection: "email", email: email, verificationCode: code};
    webAuth.passwordlessLogin(options, function (err) { window.outcome = failure(err); });
  };
</script>
<h1>Application</h1>
"""


@pytest.fixture(scope="session")
def auth0_js() -> bytes:
    """``dist/auth0.min.js`` of the pinned auth0-js, installed with npm on first use."""
    script = "dist/auth0.min.js"
    return (npm_package("auth0-js", AUTH0_JS_VERSION, script) / script).read_bytes()


@dataclass
class Application:
    """The SPA's origin: serves the page and auth0.js, records what reaches ``/callback``."""

    origin: str = ""
    callbacks: list[dict[str, list[str]]] = field(default_factory=list)

    @property
    def callback(self) -> str:
        return self.origin + "/callback"


def _handler(state: Application, script: bytes) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            parts = urlsplit(self.path)
            if parts.path == "/auth0.min.js":
                self._send(script, "application/javascript")
            elif parts.path == "/callback":
                state.callbacks.append(parse_qs(parts.query))
                self._send(PAGE.encode(), "text/html; charset=utf-8")  # parse() runs here
            else:
                self._send(PAGE.encode(), "text/html; charset=utf-8")

        def _send(self, body: bytes, content_type: str) -> None:
            self.send_response(200)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


@pytest.fixture
def application(auth0_js: bytes) -> Iterator[Application]:
    state = Application()
    with http_server(_handler(state, auth0_js)) as origin:
        state.origin = origin
        yield state


@pytest.fixture
async def server(
    sqlite_url: str, smtp_sink: SmtpSink, application: Application, tmp_path: Path
) -> AsyncIterator[LiveServer]:
    """nopass on ``http://127.0.0.1:PORT`` with an SPA allowed cross-origin login from the
    application's origin."""
    port = free_port()
    config = tenant_config(f"http://127.0.0.1:{port}", smtp_port=smtp_sink.port)
    config["clients"].append(
        {
            "name": "auth0.js SPA",
            "client_id": SPA_ID,
            "app_type": "spa",
            "callbacks": [application.callback],
            "web_origins": [application.origin],
            "allowed_origins": [application.origin],
            "cross_origin_auth": True,
        }
    )
    for connection in config["connections"]:
        if connection["name"] == "email":
            connection["enabled_clients"] = [*connection["enabled_clients"], "auth0.js SPA"]
    await prepare_database(sqlite_url, config)
    with live_server(nopass_env(sqlite_url), tmp_path, port=port) as live:
        yield live


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with chromium() as launched:
        yield launched
