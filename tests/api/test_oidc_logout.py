"""OpenID Connect RP-Initiated Logout 1.0 at ``/oidc/logout`` (issue 13 item 5), in-process
over HTTP: a real hosted-page login gives the browser its session cookie and the client its
ID token, then each rule of ``flows/logout.py`` is exercised, open-redirect attempts first."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from tests.api.test_login_page import (
    EMAIL,
    authorize_url,
    callback_params,
    exchange,
    pkce,
    submit_code,
    submit_email,
)
from tests.support.clock import MovableClock
from tests.support.config import NATIVE_ID, WEB_ID, tenant_config
from tests.support.harness import Harness, running_app
from tests.support.tokens import (
    claims_of,
    generate_keypair,
    header_of,
    hs256_token,
    jwks_of,
    public_pem,
    rs256_token,
    unsigned_token,
)

ORIGIN = "http://127.0.0.1:8123"
OTHER_ORIGIN = "http://localhost:8123"  # a second domain of the same tenant: another issuer
ISSUER = ORIGIN + "/"
TARGET = "https://app.acme.example/signed-out"
TARGET_WITH_QUERY = "https://app.acme.example/bye?from=idp"
WEB_TARGET = "https://web.acme.example/signed-out"
ERROR_ALERT = 'role="alert"'


def config() -> dict[str, Any]:
    cfg = tenant_config(ORIGIN)
    cfg["tenant"]["domains"].append(OTHER_ORIGIN)
    cfg["clients"][0]["allowed_logout_urls"] = [TARGET, TARGET_WITH_QUERY]
    cfg["clients"][1]["allowed_logout_urls"] = [WEB_TARGET]
    return cfg


@pytest.fixture
def clock() -> MovableClock:
    return MovableClock()


@pytest.fixture
async def app(database_url: str, clock: MovableClock) -> AsyncIterator[Harness]:
    async with running_app(database_url, config(), clock=clock) as harness:
        yield harness


async def login(app: Harness, host: str | None = None) -> dict[str, Any]:
    """A hosted-page login in ``app.client`` (which keeps the session cookie): the tokens."""
    headers = {"host": host} if host else {}
    verifier, challenge = pkce()
    page = await app.client.get(authorize_url(challenge), headers=headers)
    assert page.status_code == 200, page.text
    sent = await submit_email(app, page.text) if not host else await _post_email(app, page, host)
    assert sent.status_code == 303, sent.text
    code_page = await app.client.get("/login", headers=headers)
    if host:
        done = await app.client.post(
            "/login/code",
            data={"csrf_token": _csrf(code_page.text), "code": await app.code_for(EMAIL)},
            headers=headers,
        )
    else:
        done = await submit_code(app, code_page.text, await app.code_for(EMAIL))
    code = callback_params(done)["code"][0]
    if not host:
        return await exchange(app, code, verifier)
    token = await app.client.post(
        "/oauth/token",
        headers=headers,
        json={
            "grant_type": "authorization_code",
            "client_id": NATIVE_ID,
            "code": code,
            "redirect_uri": "https://app.acme.example/callback",
            "code_verifier": verifier,
        },
    )
    assert token.status_code == 200, token.text
    body: dict[str, Any] = token.json()
    return body


def _csrf(html: str) -> str:
    return html.split('name="csrf_token" value="')[1].split('"')[0]


async def _post_email(app: Harness, page: httpx.Response, host: str) -> httpx.Response:
    return await app.client.post(
        "/login/identifier",
        data={"csrf_token": _csrf(page.text), "email": EMAIL},
        headers={"host": host},
    )


async def revoked(app: Harness) -> int:
    return await app.count("sessions", "revoked_at IS NOT NULL")


async def audit(app: Harness, type_: str) -> list[dict[str, Any]]:
    sql = "SELECT type, client_id, user_id, description FROM audit_events WHERE type = '{}'"
    return await app.rows(sql.format(type_) + " ORDER BY id")


async def still_signed_in(app: Harness) -> bool:
    silent = await app.client.get(authorize_url(pkce()[1], prompt="none"))
    return "code" in callback_params(silent)


def assert_refused(response: httpx.Response, text: str) -> None:
    assert response.status_code == 400, response.text
    assert "location" not in response.headers
    assert "set-cookie" not in response.headers  # the session cookie is kept
    assert ERROR_ALERT in response.text and text in response.text, response.text


# ---------------------------------------------------------------- what works


async def test_discovery_advertises_the_oidc_end_session_endpoint(app: Harness) -> None:
    doc = (await app.client.get("/.well-known/openid-configuration")).json()
    assert doc["end_session_endpoint"] == ISSUER + "oidc/logout"


async def test_hint_redirects_with_state_and_ends_the_session(app: Harness) -> None:
    tokens = await login(app)
    assert await still_signed_in(app)
    out = await app.client.get(
        "/oidc/logout",
        params={
            "id_token_hint": tokens["id_token"],
            "post_logout_redirect_uri": TARGET,
            "state": "af0 ifj&sl=dkj",
            "logout_hint": "someone",
            "ui_locales": "fr",
        },
    )
    assert out.status_code == 302
    location = urlsplit(out.headers["location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == TARGET
    assert parse_qs(location.query) == {"state": ["af0 ifj&sl=dkj"]}
    assert out.headers["cache-control"] == "no-store"
    assert 'nopass_session=""' in out.headers["set-cookie"]
    assert "Max-Age=0" in out.headers["set-cookie"]
    assert await revoked(app) == 1
    assert not await still_signed_in(app)
    [slo] = await audit(app, "slo")
    assert slo["client_id"] == NATIVE_ID
    assert slo["user_id"] == claims_of(tokens["id_token"])["sub"]


async def test_post_form_with_client_id_keeps_the_uris_query(app: Harness) -> None:
    await login(app)
    out = await app.client.post(
        "/oidc/logout",
        data={"client_id": NATIVE_ID, "post_logout_redirect_uri": TARGET_WITH_QUERY, "state": "s"},
    )
    assert (out.status_code, out.headers["location"]) == (302, TARGET_WITH_QUERY + "&state=s")
    assert await revoked(app) == 1
    assert not await still_signed_in(app)


async def test_expired_hint_and_matching_client_id_are_accepted(
    app: Harness, clock: MovableClock
) -> None:
    tokens = await login(app)
    clock.advance(claims_of(tokens["id_token"])["exp"] - claims_of(tokens["id_token"])["iat"] + 60)
    out = await app.client.get(
        "/oidc/logout",
        params={
            "id_token_hint": tokens["id_token"],
            "client_id": NATIVE_ID,
            "post_logout_redirect_uri": TARGET,
        },
    )
    assert (out.status_code, out.headers["location"]) == (302, TARGET)  # no state: none added
    assert await revoked(app) == 1


@pytest.mark.parametrize(
    ("params", "text"),
    [
        ({}, "You are signed out"),
        ({"client_id": NATIVE_ID, "state": "ignored"}, "You are signed out"),
        ({"ui_locales": "fr-CA", "logout_hint": "x"}, "Vous êtes déconnecté"),
    ],
)
async def test_without_a_redirect_the_signed_out_page(
    app: Harness, params: dict[str, str], text: str
) -> None:
    await login(app)
    for method in ("GET", "POST"):
        out = await app.client.request(
            method,
            "/oidc/logout",
            params=params if method == "GET" else None,
            data=params if method == "POST" else None,
        )
        assert out.status_code == 200
        assert "location" not in out.headers
        assert text in out.text
        assert 'nopass_session=""' in out.headers["set-cookie"]
    assert await revoked(app) == 1
    assert len(await audit(app, "slo")) == 1  # the second call had no live session to close
    assert not await still_signed_in(app)


async def test_v2_logout_is_unchanged_and_audits_slo(app: Harness) -> None:
    tokens = await login(app)
    out = await app.client.get("/v2/logout", params={"client_id": NATIVE_ID, "returnTo": TARGET})
    assert (out.status_code, out.headers["location"]) == (302, TARGET)
    assert await revoked(app) == 1
    [slo] = await audit(app, "slo")
    assert slo["client_id"] == NATIVE_ID
    assert slo["user_id"] == claims_of(tokens["id_token"])["sub"]


# ---------------------------------------------------------------- what is refused


def forged(tokens: dict[str, Any], jwks: list[dict[str, Any]]) -> dict[str, str]:
    """Hints the tenant did not issue, each built from the real ID token's claims."""
    header = header_of(tokens["id_token"])
    claims = claims_of(tokens["id_token"])
    stranger = generate_keypair()
    [our_key] = [k for k in jwks if k["kid"] == header["kid"]]
    return {
        "another key, our kid": rs256_token(header, claims, stranger),
        "another key, its kid": rs256_token({**header, "kid": "stranger"}, claims, stranger),
        "alg none": unsigned_token(header, claims),
        "HS256 keyed by our public key": hs256_token(header, claims, public_pem(our_key)),
        "garbage": "not.a.jwt",
        "access token": tokens["access_token"],  # ours, but not an ID token
        "tampered claims": tokens["id_token"].split(".")[0]
        + "."
        + rs256_token(header, {**claims, "aud": WEB_ID}, stranger).split(".")[1]
        + "."
        + tokens["id_token"].split(".")[2],
    }


async def test_hints_not_issued_by_the_tenant_are_refused(app: Harness) -> None:
    tokens = await login(app)
    for name, hint in forged(tokens, await jwks_of(app.client)).items():
        for method in ("GET", "POST"):
            params = {"id_token_hint": hint, "post_logout_redirect_uri": TARGET}
            out = await app.client.request(
                method,
                "/oidc/logout",
                params=params if method == "GET" else None,
                data=params if method == "POST" else None,
            )
            assert out.status_code == 400, name
            assert_refused(out, "The id_token_hint is not a valid ID token of this tenant.")
    assert await revoked(app) == 0
    assert await still_signed_in(app)
    flo = await audit(app, "flo")
    assert len(flo) == 14
    assert {e["description"] for e in flo} == {"Failed Logout: invalid_id_token_hint"}


async def test_hint_of_another_issuer_is_refused(app: Harness) -> None:
    """The same tenant and signing key on another domain: its ``iss`` is not this one's."""
    other = await login(app, host=OTHER_ORIGIN.removeprefix("http://"))
    assert claims_of(other["id_token"])["iss"] == OTHER_ORIGIN + "/"
    out = await app.client.get(
        "/oidc/logout",
        params={"id_token_hint": other["id_token"], "post_logout_redirect_uri": TARGET},
    )
    assert_refused(out, "not a valid ID token of this tenant")
    assert await revoked(app) == 0


@pytest.mark.parametrize(
    ("params", "text"),
    [
        # not exactly an allowed logout URL of the client: prefixes, suffixes, case, other ports
        ({"client_id": NATIVE_ID, "post_logout_redirect_uri": TARGET + "/evil"}, "mismatch"),
        ({"client_id": NATIVE_ID, "post_logout_redirect_uri": TARGET + "?x=1"}, "mismatch"),
        ({"client_id": NATIVE_ID, "post_logout_redirect_uri": TARGET + "#x"}, "mismatch"),
        ({"client_id": NATIVE_ID, "post_logout_redirect_uri": TARGET[:-3]}, "mismatch"),
        ({"client_id": NATIVE_ID, "post_logout_redirect_uri": TARGET.upper()}, "mismatch"),
        ({"client_id": NATIVE_ID, "post_logout_redirect_uri": "https://evil.example/"}, "mismatch"),
        (
            {"client_id": NATIVE_ID, "post_logout_redirect_uri": "https://app.acme.example.evil/"},
            "mismatch",
        ),
        # another client's allowed URL
        ({"client_id": NATIVE_ID, "post_logout_redirect_uri": WEB_TARGET}, "mismatch"),
        ({"client_id": WEB_ID, "post_logout_redirect_uri": TARGET}, "mismatch"),
        # no client named
        ({"post_logout_redirect_uri": TARGET}, "needs an id_token_hint or a client_id"),
        ({"client_id": "nobody", "post_logout_redirect_uri": TARGET}, "Unknown client: nobody"),
        ({"client_id": "nobody"}, "Unknown client: nobody"),
        # each parameter once
        (
            {"client_id": NATIVE_ID, "post_logout_redirect_uri": [TARGET, "https://evil.example/"]},
            "given more than once",
        ),
        ({"client_id": [NATIVE_ID, WEB_ID]}, "given more than once"),
        ({"client_id": NATIVE_ID, "state": ["a", "b"]}, "given more than once"),
    ],
)
async def test_no_redirect_to_anything_but_an_allowed_logout_url(
    app: Harness, params: dict[str, Any], text: str
) -> None:
    await login(app)
    for method in ("GET", "POST"):
        out = await app.client.request(
            method,
            "/oidc/logout",
            params=params if method == "GET" else None,
            data=params if method == "POST" else None,
        )
        assert_refused(out, text)
    assert await revoked(app) == 0
    assert await still_signed_in(app)
    assert len(await audit(app, "flo")) == 2
    assert await audit(app, "slo") == []


async def test_hint_and_client_id_must_agree(app: Harness) -> None:
    tokens = await login(app)
    for params in (
        {"id_token_hint": tokens["id_token"], "client_id": WEB_ID},
        {
            "id_token_hint": tokens["id_token"],
            "client_id": WEB_ID,
            "post_logout_redirect_uri": WEB_TARGET,  # allowed for WEB_ID, but the hint is NATIVE's
        },
    ):
        out = await app.client.get("/oidc/logout", params=params)
        assert_refused(out, "is not the client the id_token_hint was issued to")
    # the hint names the native client: the web client's URL is not one of its own
    out = await app.client.get(
        "/oidc/logout",
        params={"id_token_hint": tokens["id_token"], "post_logout_redirect_uri": WEB_TARGET},
    )
    assert_refused(out, "Logout URL mismatch")
    assert await revoked(app) == 0
    assert await still_signed_in(app)


async def test_unreadable_post_body_is_refused(app: Harness) -> None:
    await login(app)
    for content, content_type in (
        ("[1,", "application/json"),
        ('{"client_id": "native-app-client-id"}', "application/json"),  # a form, not JSON
        ("x", "text/plain"),
        ("client_id=x", ""),
    ):
        out = await app.client.post(
            "/oidc/logout", content=content, headers={"content-type": content_type}
        )
        assert_refused(out, "The request body is not a form.")
    out = await app.client.post(
        "/oidc/logout",
        content=b"post_logout_redirect_uri=\xff",
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert_refused(out, "The request body is not a form.")
    assert await revoked(app) == 0
