"""auth0.js (npm, unmodified) in headless Chromium on an application origin, against nopass:
``passwordlessStart`` then ``passwordlessLogin``, which POSTs ``/co/authenticate`` with
credentials, cross-origin, then navigates to ``/authorize?…&login_ticket=…&realm=email``
(docs/specs/auth0-wire.md §0, §1.5, §5.2, §5.3)."""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import jwt
import pytest
from playwright.async_api import Browser, Page, Request, Response

from tests.browser_js.conftest import SPA_ID, Application
from tests.support.live import LiveServer
from tests.support.smtp import SmtpSink

pytestmark = pytest.mark.slow
EMAIL = "ada@example.com"


@dataclass
class Login:
    co_response: Response
    co_body: dict[str, Any]  # read only when the navigation was held
    authorize: dict[str, list[str]]  # the query of the /authorize navigation
    verifier: str  # the PKCE verifier of the authorization request


async def open_application(browser: Browser, app: Application, server: LiveServer) -> Page:
    page = await browser.new_page()
    await page.goto(app.origin + "/")
    await page.evaluate(
        "([domain, id, callback]) => setup(domain, id, callback)",
        [server.url, SPA_ID, app.callback],
    )
    return page


async def start(page: Page, smtp_sink: SmtpSink) -> str:
    """``webAuth.passwordlessStart`` from the page; the code as the SMTP server got it."""
    outcome = await page.evaluate("(email) => start(email)", EMAIL)
    assert "error" not in outcome, outcome
    assert outcome["result"]["email"] == EMAIL
    [mail] = await smtp_sink.wait_for(1)
    found = re.search(r"\b\d{6}\b", mail.text())
    assert found is not None
    return found.group(0)


def pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode()).digest()
    return verifier, base64.urlsafe_b64encode(digest).decode().rstrip("=")


async def passwordless_login(page: Page, server: LiveServer, code: str, *, hold: bool) -> Login:
    """``webAuth.passwordlessLogin`` with the right code, observed on the network. With
    ``hold`` the navigation waits (auth0.js ``onRedirecting``) until the test has read the
    ``/co/authenticate`` body, which a navigation would discard."""
    verifier, challenge = pkce()

    def is_co(response: Response) -> bool:
        return response.url == server.url + "/co/authenticate"

    def is_authorize(request: Request) -> bool:
        return request.url.startswith(server.url + "/authorize?")

    co_body: dict[str, Any] = {}
    async with page.expect_request(is_authorize) as authorize_info:
        async with page.expect_response(is_co) as co_info:
            await page.evaluate(
                "([email, code, challenge, hold]) => login(email, code, challenge, hold)",
                [EMAIL, code, challenge, hold],
            )
        co_response = await co_info.value
        if hold:
            co_body = await co_response.json()
            await page.wait_for_function("typeof window.resume === 'function'")
            await page.evaluate("window.resume()")
    authorize = await authorize_info.value
    return Login(co_response, co_body, parse_qs(urlsplit(authorize.url).query), verifier)


async def test_passwordless_login_gets_a_ticket_and_goes_to_authorize(
    browser: Browser, application: Application, server: LiveServer, smtp_sink: SmtpSink
) -> None:
    page = await open_application(browser, application, server)
    login = await passwordless_login(page, server, await start(page, smtp_sink), hold=True)

    assert login.co_response.status == 200
    assert login.co_response.request.method == "POST"
    sent = login.co_response.request.post_data_json
    assert sent is not None
    assert set(sent) == {"client_id", "username", "otp", "realm", "credential_type"}
    assert sent["credential_type"] == "http://auth0.com/oauth/grant-type/passwordless/otp"
    headers = await login.co_response.all_headers()
    assert headers["access-control-allow-origin"] == application.origin
    assert headers["access-control-allow-credentials"] == "true"
    assert set(login.co_body) == {"login_ticket", "co_verifier", "co_id"}
    # The verifier cookie was stored: the request went with credentials and CORS allowed it.
    cookies = {c["name"]: c["value"] for c in await page.context.cookies(server.url)}
    assert cookies[f"nopass_co_{login.co_body['co_id']}"] == login.co_body["co_verifier"]

    query = login.authorize
    assert query["login_ticket"] == [login.co_body["login_ticket"]]
    assert query["realm"] == ["email"]
    assert query["client_id"] == [SPA_ID]
    assert query["redirect_uri"] == [application.callback]
    assert query["response_type"] == ["code"]
    assert query["code_challenge_method"] == ["S256"]
    assert "state" in query and "username" not in query and "otp" not in query


async def test_passwordless_login_ends_at_the_callback(
    browser: Browser, application: Application, server: LiveServer, smtp_sink: SmtpSink
) -> None:
    page = await open_application(browser, application, server)
    login = await passwordless_login(page, server, await start(page, smtp_sink), hold=False)
    assert login.co_response.status == 200
    # Wait for the navigation to commit wherever /authorize sends the browser.
    await page.wait_for_url(lambda url: url != application.origin + "/")
    await page.wait_for_load_state()
    [reached] = [
        q
        for q in application.callbacks
        if q.get("state") == login.authorize["state"] and len(q.get("code", [])) == 1
    ]
    # The application redeems the code with its PKCE verifier: tokens that verify.
    async with httpx.AsyncClient(base_url=server.url) as http:
        exchanged = await http.post(
            "/oauth/token",
            json={
                "grant_type": "authorization_code",
                "client_id": SPA_ID,
                "code": reached["code"][0],
                "redirect_uri": application.callback,
                "code_verifier": login.verifier,
            },
        )
        assert exchanged.status_code == 200, exchanged.text
        tokens = exchanged.json()
        jwks = (await http.get("/.well-known/jwks.json")).json()
    key = jwt.PyJWK(jwks["keys"][0]).key
    claims = jwt.decode(
        tokens["id_token"], key, algorithms=["RS256"], audience=SPA_ID, issuer=server.url + "/"
    )
    assert claims["email"] == EMAIL


async def test_wrong_code_reaches_the_callback_as_auth0_error(
    browser: Browser, application: Application, server: LiveServer, smtp_sink: SmtpSink
) -> None:
    page = await open_application(browser, application, server)
    code = await start(page, smtp_sink)
    wrong = str((int(code) + 1) % 1_000_000).zfill(6)
    await page.evaluate("([email, code]) => login(email, code, 'x', false)", [EMAIL, wrong])
    await page.wait_for_function("window.outcome !== null")
    outcome = await page.evaluate("window.outcome")
    assert outcome["code"] == "access_denied"
    assert outcome["description"] == "Wrong email or verification code."
    assert page.url.startswith(application.origin)


@pytest.mark.parametrize("override", [True, False], ids=["token_issuer", "no_override"])
async def test_implicit_login_on_an_http_domain_needs_the_token_issuer_override(
    browser: Browser,
    application: Application,
    server: LiveServer,
    smtp_sink: SmtpSink,
    override: bool,
) -> None:
    """The README's auth0.js snippet for an http domain: with ``overrides.__token_issuer``
    ``parseHash`` accepts nopass's ID token; without it auth0.js expects the issuer
    ``https://<domain>/`` and refuses it."""
    extra: dict[str, Any] = {"responseType": "token id_token"}
    if override:
        extra["overrides"] = {"__token_issuer": server.url + "/"}
    setup = "([domain, id, callback, extra]) => setup(domain, id, callback, extra)"
    page = await browser.new_page()
    await page.goto(application.origin + "/")
    await page.evaluate(setup, [server.url, SPA_ID, application.callback, extra])
    code = await start(page, smtp_sink)
    await page.evaluate("([email, code]) => loginWithoutPkce(email, code)", [EMAIL, code])
    await page.wait_for_url(lambda url: url.startswith(application.callback + "#"))
    await page.wait_for_load_state()
    await page.evaluate(setup, [server.url, SPA_ID, application.callback, extra])
    parsed = await page.evaluate("parse()")
    if override:
        assert "error" not in parsed, parsed
        assert parsed["result"]["idTokenPayload"]["email"] == EMAIL
        assert parsed["result"]["idTokenPayload"]["iss"] == server.url + "/"
        assert parsed["result"]["accessToken"]
    else:
        assert parsed["error"]["error"] == "invalid_token", parsed
        assert "https://" + server.url + "/" in parsed["error"]["description"]
