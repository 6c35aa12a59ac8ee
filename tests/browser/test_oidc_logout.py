"""RP-Initiated Logout in real Chromium against a live ``nopass serve``: the application
reads ``end_session_endpoint`` from discovery, as an OIDC client library does, and sends the
browser there with ``id_token_hint``, ``post_logout_redirect_uri`` and ``state``; it lands
back on the application with ``state``, signed out of nopass."""

from __future__ import annotations

import secrets

import httpx
import pytest
from playwright.async_api import Browser, expect

from tests.browser.conftest import Callback
from tests.browser.test_login_page import EMAIL, new_context, open_identifier_page
from tests.support.config import NATIVE_ID
from tests.support.live import LiveServer
from tests.support.smtp import SmtpSink
from tests.support.tokens import email_code, jwks_of, mails_to, verify_with

pytestmark = pytest.mark.slow


async def test_logout_from_discovery_lands_on_the_application_with_state(
    browser: Browser, server: LiveServer, callback: Callback, smtp_sink: SmtpSink
) -> None:
    context, page = await new_context(browser)
    verifier, state = await open_identifier_page(page, server, callback)
    seen = mails_to(smtp_sink, EMAIL)
    await page.get_by_label("Email address").fill(EMAIL)
    await page.get_by_role("button", name="Continue").click()
    await page.get_by_label("Code").fill(await email_code(smtp_sink, EMAIL, seen))
    await page.get_by_role("button", name="Sign in").click()
    await page.wait_for_url(callback.url + "?*")
    returned = callback.queries[-1]
    assert returned["state"] == [state]
    async with httpx.AsyncClient(base_url=server.url) as http:
        token = await http.post(
            "/oauth/token",
            json={
                "grant_type": "authorization_code",
                "client_id": NATIVE_ID,
                "code": returned["code"][0],
                "redirect_uri": callback.url,
                "code_verifier": verifier,
            },
        )
        assert token.status_code == 200, token.text
        id_token = token.json()["id_token"]
        verify_with(id_token, await jwks_of(http), audience=NATIVE_ID, issuer=server.url + "/")
        discovery = (await http.get("/.well-known/openid-configuration")).json()
    assert "nopass_session" in {c["name"] for c in await context.cookies(server.url)}

    logout_state = secrets.token_urlsafe(12)
    logout = httpx.URL(
        discovery["end_session_endpoint"],
        params={
            "id_token_hint": id_token,
            "post_logout_redirect_uri": callback.logout_url,
            "state": logout_state,
        },
    )
    await page.goto(str(logout))
    await page.wait_for_url(callback.logout_url + "?*")
    await expect(page.get_by_role("heading")).to_have_text("Back at the application")
    assert callback.signed_out == [{"state": [logout_state]}]
    assert "nopass_session" not in {c["name"] for c in await context.cookies(server.url)}

    # Signed out of nopass too: a silent authorization now needs a login.
    await page.goto(
        str(
            httpx.URL(
                server.url + "/authorize",
                params={
                    "client_id": NATIVE_ID,
                    "redirect_uri": callback.url,
                    "response_type": "code",
                    "scope": "openid",
                    "state": "silent",
                    "prompt": "none",
                    "code_challenge": "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
                    "code_challenge_method": "S256",
                },
            )
        )
    )
    await page.wait_for_url(callback.url + "?*")
    assert callback.queries[-1]["error"] == ["login_required"]
    await context.close()
