"""The hosted login page in real Chromium (issue 4 "Tests"): email then code, SMS, the magic
link in the same browser and in another one, wrong and too-many-attempts messages. Every run
ends at a local callback server with ``code`` and ``state``, exchanged with the PKCE verifier
for tokens that verify against ``/.well-known/jwks.json``. A screenshot of each page is saved
under ``test-artifacts/browser/``."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import re
import secrets
import shutil
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.async_api import Browser, BrowserContext, Page, ViewportSize, expect

from tests.browser.conftest import ARTIFACTS, Callback
from tests.support.config import NATIVE_ID
from tests.support.live import LiveServer
from tests.support.sms_gateway import Gateway
from tests.support.smtp import SmtpSink
from tests.support.tokens import email_code, jwks_of, mails_to, sms_code, verify_with

pytestmark = pytest.mark.slow

EMAIL = "grace@example.com"
PHONE = "+14155550199"
DOCS_SCREENSHOT = Path(__file__).parents[2] / "docs" / "login-page.png"
LINK = re.compile(r"(http://\S+/passwordless/verify_redirect\?\S+)")
VIEWPORT = ViewportSize(width=640, height=720)
TIMEOUT_MS = 10_000


def pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode()).digest()
    return verifier, base64.urlsafe_b64encode(digest).decode().rstrip("=")


def authorize_url(server: LiveServer, callback: Callback, challenge: str, **extra: str) -> str:
    params = {
        "client_id": NATIVE_ID,
        "redirect_uri": callback.url,
        "response_type": "code",
        "scope": "openid profile email",
        "state": "state-" + secrets.token_hex(4),
        "nonce": "nonce-" + secrets.token_hex(4),
        "code_challenge": challenge,
        "code_challenge_method": "S256",
        **extra,
    }
    return str(httpx.URL(server.url + "/authorize", params=params))


async def new_context(browser: Browser) -> tuple[BrowserContext, Page]:
    context = await browser.new_context(viewport=VIEWPORT)
    context.set_default_timeout(TIMEOUT_MS)
    return context, await context.new_page()


async def screenshot(page: Page, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    await page.screenshot(path=path, full_page=True)
    return path


async def finish_at_callback(
    page: Page, server: LiveServer, callback: Callback, verifier: str, state: str
) -> dict[str, Any]:
    """The browser reached the callback with ``code`` and ``state``: exchange and verify."""
    await page.wait_for_url(callback.url + "?*")
    await expect(page.get_by_role("heading")).to_have_text("Back at the application")
    returned = callback.queries[-1]
    assert returned["state"] == [state]
    assert "error" not in returned
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
        tokens: dict[str, Any] = token.json()
        claims = verify_with(
            tokens["id_token"], await jwks_of(http), audience=NATIVE_ID, issuer=server.url + "/"
        )
        verify_with(tokens["access_token"], await jwks_of(http), audience=server.url + "/userinfo")
    return claims


def state_of(url: str) -> str:
    return httpx.URL(url).params["state"]


async def open_identifier_page(
    page: Page, server: LiveServer, callback: Callback, **extra: str
) -> tuple[str, str]:
    verifier, challenge = pkce()
    url = authorize_url(server, callback, challenge, **extra)
    await page.goto(url)
    return verifier, state_of(url)


async def test_email_then_code(
    browser: Browser, server: LiveServer, callback: Callback, smtp_sink: SmtpSink
) -> None:
    context, page = await new_context(browser)
    verifier, state = await open_identifier_page(page, server, callback)
    await expect(page.get_by_role("heading")).to_have_text("Sign in with your email")
    await expect(page.get_by_text("to continue to Native App")).to_be_visible()
    email = page.get_by_label("Email address")
    await expect(email).to_have_attribute("autocomplete", "email")
    shot = await screenshot(page, "identifier-email")
    if not DOCS_SCREENSHOT.exists() or os.environ.get("NOPASS_UPDATE_SCREENSHOTS") == "1":
        DOCS_SCREENSHOT.parent.mkdir(exist_ok=True)
        shutil.copyfile(shot, DOCS_SCREENSHOT)

    seen = mails_to(smtp_sink, EMAIL)
    await email.fill(EMAIL)
    await page.get_by_role("button", name="Continue").click()
    await expect(page.get_by_role("heading")).to_have_text("Enter your code")
    await expect(page.get_by_text(f"We sent a code to {EMAIL}.")).to_be_visible()
    await screenshot(page, "code-email")
    code = await email_code(smtp_sink, EMAIL, seen)
    await page.get_by_label("Code").fill(code)
    await page.get_by_role("button", name="Sign in").click()
    claims = await finish_at_callback(page, server, callback, verifier, state)
    assert claims["email"] == EMAIL
    await screenshot(page, "callback")
    cookies = {c["name"]: c for c in await context.cookies(server.url)}
    session = cookies["nopass_session"]
    assert session["httpOnly"] and session["sameSite"] == "Lax" and not session["secure"]

    await page.goto(f"{server.url}/v2/logout?client_id={NATIVE_ID}")
    await expect(page.get_by_role("heading")).to_have_text("You are signed out")
    await screenshot(page, "signed-out")
    assert "nopass_session" not in {c["name"] for c in await context.cookies(server.url)}
    await context.close()


async def test_sms_then_code(
    browser: Browser, server: LiveServer, callback: Callback, gateway: Gateway
) -> None:
    context, page = await new_context(browser)
    verifier, state = await open_identifier_page(page, server, callback, connection="sms")
    phone = page.get_by_label("Phone number")
    await expect(phone).to_have_attribute("type", "tel")
    await screenshot(page, "identifier-sms")
    await phone.fill("+1 415 555 0199")
    await page.get_by_role("button", name="Continue").click()
    await expect(
        page.get_by_text(f"We sent a text message with a code to {PHONE}.")
    ).to_be_visible()
    await screenshot(page, "code-sms")
    await page.get_by_label("Code").fill(sms_code(gateway, PHONE))
    await page.get_by_role("button", name="Sign in").click()
    claims = await finish_at_callback(page, server, callback, verifier, state)
    assert claims["sub"].startswith("sms|")
    await context.close()


async def test_wrong_code_then_too_many_attempts(
    browser: Browser, server: LiveServer, callback: Callback, smtp_sink: SmtpSink
) -> None:
    context, page = await new_context(browser)
    await open_identifier_page(page, server, callback, ui_locales="fr")
    await expect(page.locator("html")).to_have_attribute("lang", "fr")
    seen = mails_to(smtp_sink, EMAIL)
    await page.get_by_label("Adresse e-mail").fill(EMAIL)
    await page.get_by_role("button", name="Continuer").click()
    code = await email_code(smtp_sink, EMAIL, seen)
    wrong = "000000" if code != "000000" else "111111"
    alert = page.get_by_role("alert")
    for attempt in range(3):
        await page.get_by_label("Code").fill(wrong)
        await page.get_by_role("button", name="Se connecter").click()
        await expect(alert).to_have_text("Ce code n’est pas le bon. Vérifiez-le et réessayez.")
        if attempt == 0:
            await screenshot(page, "code-wrong")
    await page.get_by_label("Code").fill(code)
    await page.get_by_role("button", name="Se connecter").click()
    await expect(alert).to_have_text(
        "Trop d’essais erronés : ce code ne fonctionne plus. Demandez un nouveau code."
    )
    await screenshot(page, "code-too-many-attempts")
    await page.get_by_role("button", name="Envoyer un nouveau code").click()
    await expect(alert).to_contain_text("secondes avant d’en demander un nouveau")
    await screenshot(page, "resend-too-soon")
    assert callback.queries == []
    await context.close()


async def link_from_email(sink: SmtpSink, seen: int, timeout: float = 10.0) -> str:
    deadline = time.monotonic() + timeout
    while True:
        mails = [m for m in sink.received if EMAIL in m.recipients]
        if len(mails) > seen:
            found = LINK.search(mails[-1].text())
            assert found is not None, mails[-1].text()
            return found.group(1)
        assert time.monotonic() < deadline, "no link arrived"
        await asyncio.sleep(0.05)


async def ask_for_link(
    page: Page, server: LiveServer, callback: Callback, sink: SmtpSink, **extra: str
) -> tuple[str, str, str]:
    """``(link, verifier, state)`` after asking for a link on the hosted page."""
    verifier, state = await open_identifier_page(page, server, callback, send="link", **extra)
    seen = mails_to(sink, EMAIL)
    await page.get_by_label("Email address").fill(EMAIL)
    await page.get_by_role("button", name="Continue").click()
    await expect(page.get_by_role("heading")).to_have_text("Check your email")
    return await link_from_email(sink, seen), verifier, state


async def test_magic_link_same_browser_and_another_browser(
    browser: Browser, server: LiveServer, callback: Callback, smtp_sink: SmtpSink
) -> None:
    context, page = await new_context(browser)
    link, verifier, state = await ask_for_link(page, server, callback, smtp_sink)
    await screenshot(page, "check-email")
    await page.goto(link)  # the transaction cookie is here: no confirmation step
    await finish_at_callback(page, server, callback, verifier, state)

    # Signed in now: a new login in this browser needs prompt=login (else single sign-on).
    link, verifier, state = await ask_for_link(page, server, callback, smtp_sink, prompt="login")
    elsewhere, other = await new_context(browser)
    await other.goto(link)
    await expect(other.get_by_role("heading")).to_have_text("Finish signing in")
    await screenshot(other, "link-confirm")
    assert len(callback.queries) == 1
    await other.get_by_role("button", name="Sign in").click()
    await finish_at_callback(other, server, callback, verifier, state)
    await elsewhere.close()
    await context.close()
