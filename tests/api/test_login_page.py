"""The hosted login page (``GET /authorize``, issue 4 item 3), driven like a browser without
JavaScript: plain form posts, cookies, redirects. Markup per docs/specs/interface.md "The hosted
login page"; codes checked with the OTP grant's counters (docs/specs/security.md §6)."""

from __future__ import annotations

import base64
import hashlib
import json
import re
import secrets
import string
from collections.abc import AsyncIterator
from importlib.resources import files
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from nopass.core.keyring import Keyring
from nopass.store.outbox_queue import SqlOutboxQueue
from tests.support.clock import MovableClock
from tests.support.config import CALLBACK, NATIVE_ID, WEB_ID, tenant_config
from tests.support.harness import TEST_SECRET, Harness, running_app
from tests.support.tokens import jwks_of, verify_with

ORIGIN = "http://127.0.0.1:8123"
ISSUER = ORIGIN + "/"
EMAIL = "ada@example.com"
PHONE = "+14155550123"
LOGOUT_TARGET = "https://app.acme.example/signed-out"
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
ALERT = re.compile(r'role="alert"[^>]*>([^<]*)<')


def config() -> dict[str, Any]:
    cfg = tenant_config(ORIGIN)
    cfg["clients"][0]["allowed_logout_urls"] = [LOGOUT_TARGET]
    return cfg


def pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode()).digest()
    return verifier, base64.urlsafe_b64encode(digest).decode().rstrip("=")


@pytest.fixture
def clock() -> MovableClock:
    return MovableClock()


@pytest.fixture
async def app(database_url: str, clock: MovableClock) -> AsyncIterator[Harness]:
    async with running_app(database_url, config(), clock=clock) as harness:
        yield harness


def authorize_url(challenge: str, **extra: str) -> str:
    params = {
        "client_id": NATIVE_ID,
        "redirect_uri": CALLBACK,
        "response_type": "code",
        "scope": "openid profile email",
        "state": "st-1",
        "nonce": "n-1",
        "code_challenge": challenge,
        "code_challenge_method": "S256",
        **extra,
    }
    return str(httpx.URL("/authorize", params=params))


def csrf_of(html: str) -> str:
    found = CSRF.search(html)
    assert found is not None, html
    return found.group(1)


def alert_of(html: str) -> str:
    found = ALERT.search(html)
    assert found is not None, html
    return found.group(1).strip()


async def open_page(app: Harness, **extra: str) -> tuple[str, str]:
    """GET /authorize: ``(page html, PKCE verifier)``."""
    verifier, challenge = pkce()
    got = await app.client.get(authorize_url(challenge, **extra))
    assert got.status_code == 200, got.text
    return got.text, verifier


async def post(app: Harness, path: str, data: dict[str, str]) -> httpx.Response:
    return await app.client.post(path, data=data)


async def submit_email(app: Harness, html: str, email: str = EMAIL) -> httpx.Response:
    return await post(app, "/login/identifier", {"csrf_token": csrf_of(html), "email": email})


async def code_page(app: Harness, **extra: str) -> tuple[str, str]:
    """Up to the code form: ``(its html, PKCE verifier)``."""
    html, verifier = await open_page(app, **extra)
    sent = await submit_email(app, html)
    assert sent.status_code == 303, sent.text
    assert sent.headers["location"] == "/login"
    page = await app.client.get("/login")
    assert page.status_code == 200
    return page.text, verifier


async def submit_code(app: Harness, html: str, code: str) -> httpx.Response:
    return await post(app, "/login/code", {"csrf_token": csrf_of(html), "code": code})


def callback_params(response: httpx.Response) -> dict[str, list[str]]:
    assert response.status_code in (302, 303), response.text
    location = urlsplit(response.headers["location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == CALLBACK
    return parse_qs(location.query)


async def exchange(app: Harness, code: str, verifier: str) -> dict[str, Any]:
    token = await app.client.post(
        "/oauth/token",
        json={
            "grant_type": "authorization_code",
            "client_id": NATIVE_ID,
            "code": code,
            "redirect_uri": CALLBACK,
            "code_verifier": verifier,
        },
    )
    assert token.status_code == 200, token.text
    body: dict[str, Any] = token.json()
    return body


async def sign_in(app: Harness) -> None:
    html, _ = await code_page(app)
    done = await submit_code(app, html, await app.code_for(EMAIL))
    assert "code" in callback_params(done)


async def audit_types(app: Harness) -> list[str]:
    return [r["type"] for r in await app.rows("SELECT type FROM audit_events ORDER BY id")]


# ---------------------------------------------------------------- the whole flow


async def test_email_then_code_ends_at_the_callback_with_tokens(app: Harness) -> None:
    got = await app.client.get(authorize_url(pkce()[1]))
    html = got.text
    assert got.status_code == 200
    assert '<html lang="en">' in html
    assert '<input type="email" name="email" autocomplete="email"' in html
    assert '<label for="identifier">Email address</label>' in html
    assert html.count('type="submit"') == 1
    assert "Native App" in html  # the client's name
    assert 'action="/login/identifier"' in html
    assert "<script" not in html and "http" not in html.split("</style>")[1]  # no assets
    csp = got.headers["content-security-policy"]
    assert "default-src 'none'" in csp and "frame-ancestors 'none'" in csp
    assert "'unsafe-inline'" not in csp
    cookie = got.headers["set-cookie"]
    assert cookie.startswith("nopass_tx=") and "HttpOnly" in cookie
    assert "SameSite=lax" in cookie and "Secure" not in cookie  # the tenant origin is http

    verifier, challenge = pkce()
    html = (await app.client.get(authorize_url(challenge))).text
    sent = await submit_email(app, html, "  Ada@Example.com ")
    assert (sent.status_code, sent.headers["location"]) == (303, "/login")
    page = await app.client.get("/login")
    html = page.text
    assert "We sent a code to ada@example.com." in html
    assert '<input name="code" inputmode="numeric" autocomplete="one-time-code"' in html
    assert '<label for="code">Code</label>' in html
    code_form, resend_form = html.split("<form")[1:3]
    assert 'action="/login/code"' in code_form and code_form.count('type="submit"') == 1
    assert 'action="/login/resend"' in resend_form and "Send a new code" in resend_form
    assert "https://app.acme.example" in page.headers["content-security-policy"]

    done = await submit_code(app, html, await app.code_for(EMAIL))
    assert done.status_code == 303
    returned = callback_params(done)
    assert returned["state"] == ["st-1"]
    assert "nopass_session=" in done.headers["set-cookie"]
    tokens = await exchange(app, returned["code"][0], verifier)
    claims = verify_with(tokens["id_token"], await jwks_of(app.client), audience=NATIVE_ID)
    assert claims["iss"] == ISSUER
    assert claims["email"] == EMAIL
    assert claims["nonce"] == "n-1"
    assert (await audit_types(app))[:3] == ["cls", "ss", "s"]  # then the code exchange's
    [tx] = await app.rows(
        "SELECT identifier, completed_at FROM login_transactions WHERE identifier IS NOT NULL"
    )
    assert tx["identifier"] == EMAIL and tx["completed_at"] is not None


async def test_confidential_client_uses_the_page_without_its_secret(app: Harness) -> None:
    params = {
        "client_id": WEB_ID,
        "redirect_uri": "https://web.acme.example/cb",
        "response_type": "code",
        "state": "w",
    }
    got = await app.client.get(str(httpx.URL("/authorize", params=params)))
    assert got.status_code == 200, got.text
    assert "Web App" in got.text
    sent = await submit_email(app, got.text)
    assert sent.status_code == 303
    html = (await app.client.get("/login")).text
    done = await submit_code(app, html, await app.code_for(EMAIL))
    location = done.headers["location"]
    assert location.startswith("https://web.acme.example/cb?code=")
    # The secret is still required by the API itself.
    direct = await app.start({"client_id": WEB_ID, "connection": "email", "email": EMAIL})
    assert direct.status_code == 401


async def test_sms_connection_asks_for_a_phone_number(app: Harness) -> None:
    html, verifier = await open_page(app, connection="sms")
    assert '<input type="tel" name="phone_number" autocomplete="tel"' in html
    assert '<label for="identifier">Phone number</label>' in html
    assert 'name="email"' not in html
    sent = await post(
        app, "/login/identifier", {"csrf_token": csrf_of(html), "phone_number": "+1 (415) 555-0123"}
    )
    assert sent.status_code == 303, sent.text
    html = (await app.client.get("/login")).text
    assert f"We sent a text message with a code to {PHONE}." in html
    done = await submit_code(app, html, await app.code_for(PHONE))
    tokens = await exchange(app, callback_params(done)["code"][0], verifier)
    claims = verify_with(tokens["id_token"], await jwks_of(app.client), audience=NATIVE_ID)
    assert claims["sub"].startswith("sms|")


# ---------------------------------------------------------------- refusals


async def test_bad_identifiers_are_explained_and_nothing_is_sent(app: Harness) -> None:
    html, _ = await open_page(app)
    for typed in ("not-an-email", "", "a@b@c.example"):
        bad = await submit_email(app, html, typed)
        assert bad.status_code == 400
        assert alert_of(bad.text) == "Enter a valid email address, like name@example.com."
        assert 'aria-invalid="true"' in bad.text
    html, _ = await open_page(app, connection="sms")
    bad = await post(app, "/login/identifier", {"csrf_token": csrf_of(html), "phone_number": "12"})
    assert bad.status_code == 400
    assert alert_of(bad.text).startswith("Enter your phone number with its country code")
    assert await app.count("challenges") == 0
    assert await app.count("outbox_messages") == 0


async def test_missing_or_wrong_csrf_token_is_refused(app: Harness) -> None:
    html, _ = await open_page(app)
    other = httpx.AsyncClient(transport=app.client._transport, base_url=ORIGIN)
    async with other:
        foreign = csrf_of((await other.get(authorize_url(pkce()[1]))).text)
    for data in (
        {"email": EMAIL},
        {"email": EMAIL, "csrf_token": "x" * 43},
        {"email": EMAIL, "csrf_token": "é"},
        {"email": EMAIL, "csrf_token": foreign},  # another browser's transaction
        {"email": EMAIL, "csrf_token": [csrf_of(html), csrf_of(html)]},
    ):
        refused = await app.client.post("/login/identifier", data=data)
        assert refused.status_code == 403
        assert refused.headers["content-type"].startswith("text/html")
        assert 'role="alert"' in refused.text
    assert await app.count("challenges") == 0
    assert await app.count("outbox_messages") == 0

    sent = await submit_email(app, html)
    assert sent.status_code == 303
    for path in ("/login/code", "/login/resend"):
        refused = await post(app, path, {"code": "000000"})
        assert refused.status_code == 403
    [row] = await app.rows("SELECT attempts FROM challenges")
    assert row["attempts"] == 0
    assert await app.count("challenges") == 1


async def test_no_transaction_cookie_gets_an_expired_page(
    app: Harness, clock: MovableClock
) -> None:
    html, _ = await open_page(app)
    clock.advance(31 * 60)
    late = await submit_email(app, html)
    assert late.status_code == 400
    assert "Your sign-in has expired" in late.text
    assert await app.count("challenges") == 0
    app.client.cookies.clear()
    assert (await app.client.get("/login")).status_code == 400


async def test_wrong_code_then_too_many_attempts_then_resend(
    app: Harness, clock: MovableClock
) -> None:
    html, verifier = await code_page(app)
    code = await app.code_for(EMAIL)
    wrong = "000000" if code != "000000" else "111111"
    for _ in range(3):
        failed = await submit_code(app, html, wrong)
        assert failed.status_code == 400
        assert alert_of(failed.text) == "That code is not right. Check it and try again."
    dead = await submit_code(app, html, code)  # right, but the code already failed 3 times
    assert dead.status_code == 400
    assert alert_of(dead.text) == (
        "Too many wrong tries: this code no longer works. Send a new code."
    )
    assert 'action="/login/resend"' in dead.text
    assert await audit_types(app) == ["cls", "f", "f", "f", "f"]

    clock.advance(31)
    resent = await post(app, "/login/resend", {"csrf_token": csrf_of(html)})
    assert (resent.status_code, resent.headers["location"]) == (303, "/login?sent=1")
    html = (await app.client.get("/login?sent=1")).text
    assert 'role="status">We sent you a new code.' in html
    new_code = await app.code_for(EMAIL)
    done = await submit_code(app, html, new_code)
    await exchange(app, callback_params(done)["code"][0], verifier)


async def test_expired_code(app: Harness, clock: MovableClock) -> None:
    html, _ = await code_page(app)
    code = await app.code_for(EMAIL)
    clock.advance(181)
    expired = await submit_code(app, html, code)
    assert expired.status_code == 400
    assert alert_of(expired.text) == "This code has expired. Send a new code and try again."


async def test_blocked_identity_gets_429_with_retry_after(app: Harness) -> None:
    html, _ = await code_page(app)
    for _ in range(10):
        assert (await submit_code(app, html, "999999x")).status_code == 400
    blocked = await submit_code(app, html, await app.code_for(EMAIL))
    assert blocked.status_code == 429
    assert int(blocked.headers["retry-after"]) > 0
    assert alert_of(blocked.text) == "Too many failed attempts. Try again in 15 minutes."


async def test_empty_code_is_not_a_guess(app: Harness) -> None:
    html, _ = await code_page(app)
    empty = await submit_code(app, html, "  ")
    assert empty.status_code == 400
    [row] = await app.rows("SELECT attempts FROM challenges")
    assert row["attempts"] == 0


async def test_resend_waits_for_the_cooldown(app: Harness, clock: MovableClock) -> None:
    html, _ = await code_page(app)
    first = await app.code_for(EMAIL)
    early = await post(app, "/login/resend", {"csrf_token": csrf_of(html)})
    assert early.status_code == 429
    assert 25 <= int(early.headers["retry-after"]) <= 30
    assert re.fullmatch(r"Wait \d+ seconds before asking for a new one\.", alert_of(early.text))
    assert await app.count("challenges") == 1

    clock.advance(20)
    assert (await post(app, "/login/resend", {"csrf_token": csrf_of(html)})).status_code == 429
    clock.advance(11)
    resent = await post(app, "/login/resend", {"csrf_token": csrf_of(html)})
    assert resent.status_code == 303
    assert await app.count("challenges") == 2
    again = await post(app, "/login/resend", {"csrf_token": csrf_of(html)})
    assert again.status_code == 429  # the cooldown starts over
    if first != await app.code_for(EMAIL):
        old = await submit_code(app, html, first)  # voided by the new send
        assert alert_of(old.text) == "That code is not right. Check it and try again."


# ---------------------------------------------------------------- sessions


async def test_prompt_none_without_a_session_answers_login_required(app: Harness) -> None:
    got = await app.client.get(authorize_url(pkce()[1], prompt="none"))
    assert got.status_code == 302
    returned = callback_params(got)
    assert returned["error"] == ["login_required"]
    assert returned["error_description"] == ["Login required"]
    assert returned["state"] == ["st-1"]
    assert await app.count("login_transactions") == 0
    assert await audit_types(app) == ["fsa"]


async def test_prompt_none_with_a_session_issues_silently(app: Harness) -> None:
    await sign_in(app)
    verifier, challenge = pkce()
    got = await app.client.get(authorize_url(challenge, prompt="none", state="silent"))
    returned = callback_params(got)
    assert got.status_code == 302
    assert returned["state"] == ["silent"]
    tokens = await exchange(app, returned["code"][0], verifier)
    assert "id_token" in tokens
    assert "ssa" in await audit_types(app)


async def test_single_sign_on_and_prompt_login(app: Harness) -> None:
    await sign_in(app)
    transactions = await app.count("login_transactions")
    verifier, challenge = pkce()
    sso = await app.client.get(authorize_url(challenge))
    assert sso.status_code == 302
    await exchange(app, callback_params(sso)["code"][0], verifier)
    assert await app.count("login_transactions") == transactions
    forced = await app.client.get(authorize_url(challenge, prompt="login"))
    assert forced.status_code == 200
    assert 'name="email"' in forced.text
    other_connection = await app.client.get(authorize_url(challenge, connection="sms"))
    assert other_connection.status_code == 200  # the session is of the email connection
    assert 'name="phone_number"' in other_connection.text


async def test_logout_redirects_only_to_allowed_urls(app: Harness) -> None:
    await sign_in(app)
    out = await app.client.get(
        "/v2/logout", params={"client_id": NATIVE_ID, "returnTo": LOGOUT_TARGET}
    )
    assert (out.status_code, out.headers["location"]) == (302, LOGOUT_TARGET)
    assert 'nopass_session=""' in out.headers["set-cookie"]
    assert "Max-Age=0" in out.headers["set-cookie"]
    assert await app.count("sessions", "revoked_at IS NOT NULL") == 1
    silent = await app.client.get(authorize_url(pkce()[1], prompt="none"))
    assert callback_params(silent)["error"] == ["login_required"]

    for params in (
        {"client_id": NATIVE_ID, "returnTo": "https://evil.example/"},
        {"client_id": NATIVE_ID, "returnTo": LOGOUT_TARGET + "/.."},
        {"client_id": WEB_ID, "returnTo": LOGOUT_TARGET},
        {"returnTo": LOGOUT_TARGET},
        {},
    ):
        page = await app.client.get("/v2/logout", params=params)
        assert page.status_code == 200
        assert "location" not in page.headers
        assert "You are signed out" in page.text


# ---------------------------------------------------------------- links, languages, errors


async def newest_link(app: Harness) -> str:
    queue = SqlOutboxQueue(app.engine, Keyring([TEST_SECRET.encode()]))
    [tenant] = await app.rows("SELECT id FROM tenants")
    entry = (await queue.list_recent(tenant["id"], limit=1))[0]
    assert entry.link is not None
    return entry.link.removeprefix(ORIGIN)


async def test_link_in_the_same_browser_continues_at_once(app: Harness) -> None:
    html, verifier = await open_page(app, send="link")
    assert "We will email you a sign-in link." in html
    sent = await submit_email(app, html)
    assert sent.status_code == 303
    check = await app.client.get("/login")
    assert "Check your email" in check.text and "Send a new link" in check.text
    link = await newest_link(app)
    query = parse_qs(urlsplit(link).query)
    assert query["state"] == ["st-1"] and query["code_challenge_method"] == ["S256"]

    async with httpx.AsyncClient(transport=app.client._transport, base_url=ORIGIN) as fresh:
        confirm = await fresh.get(link)  # another browser (or a scanner): confirm first
        assert confirm.status_code == 200 and "<form" in confirm.text
    continued = await app.client.get(link)
    returned = callback_params(continued)
    assert returned["state"] == ["st-1"]
    await exchange(app, returned["code"][0], verifier)


@pytest.mark.parametrize(
    ("extra", "headers", "lang", "text"),
    [
        ({"ui_locales": "fr-CA en"}, {}, "fr", "Adresse e-mail"),
        ({}, {"accept-language": "de-DE,de;q=0.9,en;q=0.5"}, "de", "E-Mail-Adresse"),
        ({"ui_locales": "ja es"}, {"accept-language": "fr"}, "es", "Correo electrónico"),
        ({}, {"accept-language": "ja, *;q=0.1"}, "en", "Email address"),
    ],
)
async def test_language_from_ui_locales_then_accept_language(
    app: Harness, extra: dict[str, str], headers: dict[str, str], lang: str, text: str
) -> None:
    got = await app.client.get(authorize_url(pkce()[1], **extra), headers=headers)
    assert f'<html lang="{lang}">' in got.text
    assert text in got.text
    sent = await submit_email(app, got.text)
    html = (await app.client.get("/login", headers=headers)).text
    assert sent.status_code == 303 and f'<html lang="{lang}">' in html


def test_translation_files_have_the_same_keys_and_placeholders() -> None:
    folder = files("nopass.api.i18n")
    loaded = {
        lang: json.loads(folder.joinpath(f"{lang}.json").read_text("utf-8"))
        for lang in ("en", "fr", "de", "es")
    }
    english = loaded["en"]

    def fields(text: str) -> set[str | None]:
        return {name for _, name, _, _ in string.Formatter().parse(text) if name}

    for lang, messages in loaded.items():
        assert set(messages) == set(english), lang
        for key, text in messages.items():
            assert fields(text) == fields(english[key]), (lang, key)


async def test_request_errors(app: Harness) -> None:
    unknown = await app.client.get("/authorize?client_id=nope&response_type=code")
    assert unknown.status_code == 400 and "Unknown client: nope." in unknown.text
    bad_type = await app.client.get(authorize_url(pkce()[1], response_type="password"))
    fragment = parse_qs(urlsplit(bad_type.headers["location"]).fragment)
    assert fragment["error"] == ["unsupported_response_type"]  # not `code`: fragment
    no_pkce = await app.client.get(
        str(
            httpx.URL(
                "/authorize",
                params={"client_id": NATIVE_ID, "redirect_uri": CALLBACK, "response_type": "code"},
            )
        )
    )
    assert callback_params(no_pkce)["error"] == ["invalid_request"]
    ticket = await app.client.get(authorize_url(pkce()[1], login_ticket="t"))
    assert callback_params(ticket)["error"] == ["access_denied"]  # unknown login ticket
    assert await app.count("login_transactions") == 0


async def test_tokens_are_never_asked_for_in_the_query(app: Harness) -> None:
    """Multiple Response Types §5: an implicit request with ``response_mode=query`` is
    refused, in the fragment, before any login transaction exists."""
    params = {
        "client_id": WEB_ID,
        "redirect_uri": "https://web.acme.example/cb",
        "response_type": "id_token token",
        "response_mode": "query",
        "nonce": "n-3",
        "state": "q",
    }
    refused = await app.client.get(str(httpx.URL("/authorize", params=params)))
    location = urlsplit(refused.headers["location"])
    assert location.query == ""
    assert parse_qs(location.fragment) == {
        "error": ["invalid_request"],
        "error_description": ["Unsupported response mode: query"],
        "state": ["q"],
    }
    assert await app.count("login_transactions") == 0


async def test_form_post_and_implicit_answers(app: Harness) -> None:
    html, _ = await code_page(app, response_mode="form_post")
    posted = await submit_code(app, html, await app.code_for(EMAIL))
    assert posted.status_code == 200
    assert f'action="{CALLBACK}"' in posted.text and 'name="state" value="st-1"' in posted.text
    assert "nopass_session=" in posted.headers["set-cookie"]

    app.client.cookies.clear()
    params = {
        "client_id": WEB_ID,
        "redirect_uri": "https://web.acme.example/cb",
        "response_type": "id_token",
        "nonce": "n-2",
        "state": "imp",
    }
    got = await app.client.get(str(httpx.URL("/authorize", params=params)))
    await submit_email(app, got.text)
    html = (await app.client.get("/login")).text
    done = await submit_code(app, html, await app.code_for(EMAIL))
    location = urlsplit(done.headers["location"])
    assert done.status_code == 303 and location.query == ""
    fragment = parse_qs(location.fragment)
    claims = verify_with(fragment["id_token"][0], await jwks_of(app.client), audience=WEB_ID)
    assert claims["nonce"] == "n-2" and fragment["state"] == ["imp"]


async def test_cookies_are_secure_on_an_https_origin(sqlite_url: str) -> None:
    origin = "https://login.acme.example"
    async with running_app(sqlite_url, tenant_config(origin), base_url=origin) as https:
        got = await https.client.get(authorize_url(pkce()[1]))
        assert got.status_code == 200
        cookie = got.headers["set-cookie"]
        assert "Secure" in cookie and "HttpOnly" in cookie and "SameSite=lax" in cookie


def test_csrf_tokens_survive_key_rotation() -> None:
    old = Keyring([b"a" * 32])
    rotated = Keyring([b"b" * 32, b"a" * 32])
    token = old.form_token("tx-1")
    assert rotated.form_token_matches("tx-1", token)
    assert rotated.form_token("tx-1") != token  # the new key signs
    assert not rotated.form_token_matches("tx-2", token)
    assert not Keyring([b"b" * 32]).form_token_matches("tx-1", token)
