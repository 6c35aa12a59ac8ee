"""Magic links: scanner-safe GET/HEAD, POST consumes once, authorization code + PKCE."""

from __future__ import annotations

import base64
import hashlib
import secrets
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest

from nopass.core.models import PASSWORDLESS_OTP_GRANT
from tests.support.clock import MovableClock
from tests.support.config import CALLBACK, NATIVE_ID, tenant_config
from tests.support.harness import Harness, running_app

ORIGIN = "http://127.0.0.1:8123"
EMAIL = "ada@example.com"


def pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode()).digest()
    return verifier, base64.urlsafe_b64encode(digest).decode().rstrip("=")


@pytest.fixture
def clock() -> MovableClock:
    return MovableClock()


@pytest.fixture
async def app(database_url: str, clock: MovableClock) -> AsyncIterator[Harness]:
    async with running_app(database_url, tenant_config(ORIGIN), clock=clock) as harness:
        yield harness


async def send_link(app: Harness, **auth_params: str) -> str:
    params = {"redirect_uri": CALLBACK, "response_type": "code", "state": "st 1", **auth_params}
    body = {
        "client_id": NATIVE_ID,
        "connection": "email",
        "email": EMAIL,
        "send": "link",
        "authParams": params,
    }
    response = await app.start(body)
    assert response.status_code == 200, response.text
    [row] = await app.rows("SELECT id FROM tenants")
    from nopass.core.keyring import Keyring
    from nopass.store.outbox_queue import SqlOutboxQueue
    from tests.support.harness import TEST_SECRET

    queue = SqlOutboxQueue(app.engine, Keyring([TEST_SECRET.encode()]))
    entry = (await queue.list_recent(row["id"], limit=1))[0]
    assert entry.link is not None
    return entry.link.removeprefix(ORIGIN)


async def test_scanners_burn_nothing_then_post_works_once(app: Harness) -> None:
    verifier, challenge = pkce()
    link = await send_link(app, code_challenge=challenge, code_challenge_method="S256")
    for _ in range(5):
        got = await app.client.get(link)
        assert got.status_code == 200
        assert got.headers["referrer-policy"] == "no-referrer"
        assert got.headers["cache-control"] == "no-store"
        assert '<form method="post"' in got.text
        assert (await app.client.head(link)).status_code == 200
    [row] = await app.rows("SELECT attempts, consumed_at FROM challenges")
    assert (row["attempts"], row["consumed_at"]) == (0, None)

    query = urlsplit(link).query
    posted = await app.client.post(
        "/passwordless/verify_redirect",
        content=query,
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert posted.status_code == 303
    location = urlsplit(posted.headers["location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == CALLBACK
    returned = parse_qs(location.query)
    assert returned["state"] == ["st 1"]
    assert "nopass_session" in posted.headers.get("set-cookie", "")

    token = await app.client.post(
        "/oauth/token",
        json={
            "grant_type": "authorization_code",
            "client_id": NATIVE_ID,
            "code": returned["code"][0],
            "redirect_uri": CALLBACK,
            "code_verifier": verifier,
        },
    )
    assert token.status_code == 200, token.text
    assert "id_token" in token.json()

    again = await app.client.post(
        "/passwordless/verify_redirect",
        content=query,
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert again.status_code == 303
    error = parse_qs(urlsplit(again.headers["location"]).query)
    assert error["error"] == ["access_denied"]
    assert error["error_description"] == ["Wrong email or verification code."]
    assert error["state"] == ["st 1"]


async def test_expired_link_redirects_with_auth0_text(app: Harness, clock: MovableClock) -> None:
    _, challenge = pkce()
    link = await send_link(app, code_challenge=challenge, code_challenge_method="S256")
    clock.advance(181)
    posted = await app.client.post(
        "/passwordless/verify_redirect",
        content=urlsplit(link).query,
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    error = parse_qs(urlsplit(posted.headers["location"]).query)
    assert error["error"] == ["unauthorized"]
    assert error["error_description"] == [
        "The verification code has expired. Please try to login again."
    ]


async def test_code_grant_refusals(app: Harness) -> None:
    verifier, challenge = pkce()
    link = await send_link(app, code_challenge=challenge, code_challenge_method="S256")
    posted = await app.client.post(
        "/passwordless/verify_redirect",
        content=urlsplit(link).query,
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    code = parse_qs(urlsplit(posted.headers["location"]).query)["code"][0]

    async def redeem(**body: Any) -> httpx.Response:
        base = {
            "grant_type": "authorization_code",
            "client_id": NATIVE_ID,
            "code": code,
            "redirect_uri": CALLBACK,
            "code_verifier": verifier,
        }
        base.update(body)
        return await app.client.post(
            "/oauth/token", json={k: v for k, v in base.items() if v is not None}
        )

    wrong_verifier = await redeem(code_verifier="x" * 43)
    assert wrong_verifier.json() == {
        "error": "invalid_grant",
        "error_description": "Failed to verify code verifier",
    }
    reused = await redeem()
    assert reused.json() == {
        "error": "invalid_grant",
        "error_description": "Invalid authorization code",
    }


async def test_public_client_needs_s256(app: Harness) -> None:
    for params in ({}, {"code_challenge": "abc", "code_challenge_method": "plain"}):
        link = await send_link(app, **params)
        got = await app.client.get(link)
        assert got.status_code == 302
        error = parse_qs(urlsplit(got.headers["location"]).query)
        assert error["error"] == ["invalid_request"]
        assert error["state"] == ["st 1"]


async def test_unknown_client_or_callback_gets_an_html_page(app: Harness) -> None:
    _, challenge = pkce()
    link = await send_link(app, code_challenge=challenge, code_challenge_method="S256")
    for before, after in (
        (f"client_id={NATIVE_ID}", "client_id=nope"),
        (
            "redirect_uri=https%3A%2F%2Fapp.acme.example%2Fcallback",
            "redirect_uri=https%3A%2F%2Fevil.example%2Fcallback",
        ),
    ):
        tampered = link.replace(before, after)
        assert tampered != link
        got = await app.client.get(tampered)
        assert got.status_code == 400
        assert got.headers["content-type"].startswith("text/html")
        assert "location" not in got.headers


async def test_otp_grant_still_works_for_a_link_code(app: Harness) -> None:
    link = await send_link(app)
    code = parse_qs(urlsplit(link).query)["verification_code"][0]
    response = await app.client.post(
        "/oauth/token",
        json={
            "grant_type": PASSWORDLESS_OTP_GRANT,
            "client_id": NATIVE_ID,
            "username": EMAIL,
            "otp": code,
            "realm": "email",
        },
    )
    assert response.status_code == 200


@pytest.mark.parametrize("repeated", ["connection", "verification_code", "email", "redirect_uri"])
async def test_a_repeated_link_parameter_gets_an_html_page_and_burns_nothing(
    app: Harness, repeated: str
) -> None:
    _, challenge = pkce()
    link = await send_link(app, code_challenge=challenge, code_challenge_method="S256")
    query = urlsplit(link).query
    value = parse_qs(query)[repeated][0]
    polluted = f"{query}&{urlencode({repeated: value})}"
    got = await app.client.get(f"/passwordless/verify_redirect?{polluted}")
    posted = await app.client.post(
        "/passwordless/verify_redirect",
        content=polluted,
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    for answer in (got, posted):
        assert answer.status_code == 400
        assert answer.headers["content-type"].startswith("text/html")
        assert "location" not in answer.headers
        assert "given more than once" in answer.text
    [row] = await app.rows("SELECT attempts, consumed_at FROM challenges")
    assert (row["attempts"], row["consumed_at"]) == (0, None)


async def test_a_confirmation_post_over_64_kib_is_refused_and_burns_nothing(app: Harness) -> None:
    _, challenge = pkce()
    link = await send_link(app, code_challenge=challenge, code_challenge_method="S256")
    padded = urlsplit(link).query + "&pad=" + "x" * (64 * 1024)
    posted = await app.client.post(
        "/passwordless/verify_redirect",
        content=padded,
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert posted.status_code == 400
    assert "The form could not be read." in posted.text
    [row] = await app.rows("SELECT attempts, consumed_at FROM challenges")
    assert (row["attempts"], row["consumed_at"]) == (0, None)
