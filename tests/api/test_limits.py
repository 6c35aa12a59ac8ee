"""Rate limits (docs/specs/security.md §6) over HTTP: the defaults, the tenant's ``rate_limits``,
the 429 of docs/specs/auth0-wire.md §12.12 with its ``x-ratelimit-*`` headers, the allowlist, which
IP counts (socket peer, trusted proxy, ``auth0-forwarded-for``), and ``api_limit`` audit events.

Requests come from a trusted proxy (the harness' peer) so ``X-Forwarded-For`` picks the IP.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from dataclasses import asdict
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from nopass.config_file import RateLimits
from nopass.core.models import PASSWORDLESS_OTP_GRANT
from nopass.core.options import RateLimits as DomainRateLimits
from tests.api.test_disable_signup import add_user
from tests.api.test_login_page import (
    alert_of,
    code_page,
    csrf_of,
    open_page,
    post,
    submit_code,
    submit_email,
)
from tests.api.test_magic_link import pkce
from tests.support.clock import MovableClock
from tests.support.config import CALLBACK, NATIVE_ID, WEB_ID, WEB_SECRET, tenant_config
from tests.support.harness import Harness, running_app
from tests.support.spa import APP, SPA_ID

ORIGIN = "http://127.0.0.1:8123"
PROXY = "203.0.113.7/32"  # the harness' socket peer
TOO_MANY = {
    "error": "too_many_requests",
    "error_description": "Too many requests. Try again later.",
}
UNTRUSTED_ID = "untrusted-web-client-id"
UNTRUSTED_SECRET = "untrusted-secret-0123456789abcdef"


def config(**rate_limits: Any) -> dict[str, Any]:
    cfg = tenant_config(ORIGIN)
    cfg["tenant"]["rate_limits"] = rate_limits
    web = cfg["clients"][1]
    web["is_token_endpoint_ip_header_trusted"] = True
    web["grant_types"] = [PASSWORDLESS_OTP_GRANT]
    cfg["clients"] += [
        {
            "name": "Untrusted Web",
            "client_id": UNTRUSTED_ID,
            "app_type": "regular_web",
            "token_endpoint_auth_method": "client_secret_post",
            "client_secret": UNTRUSTED_SECRET,
            "grant_types": [PASSWORDLESS_OTP_GRANT],
        },
        {
            "name": "SPA",
            "client_id": SPA_ID,
            "app_type": "spa",
            "callbacks": [CALLBACK],
            "web_origins": [APP],
            "cross_origin_auth": True,
        },
    ]
    for connection in cfg["connections"]:  # (tenant_config shares one list among them)
        connection["enabled_clients"] = [*connection["enabled_clients"], "Untrusted Web", "SPA"]
    return cfg


@pytest.fixture
def clock() -> MovableClock:
    return MovableClock()


@pytest.fixture
async def app(database_url: str, clock: MovableClock) -> AsyncIterator[Harness]:
    async with running_app(database_url, config(), clock=clock, trusted_proxies=PROXY) as h:
        yield h


def email(n: int | str) -> dict[str, Any]:
    return {"client_id": NATIVE_ID, "connection": "email", "email": f"u{n}@example.com"}


def sms(phone: str) -> dict[str, Any]:
    return {"client_id": NATIVE_ID, "connection": "sms", "phone_number": phone}


def from_ip(ip: str) -> dict[str, str]:
    return {"x-forwarded-for": ip}


def limit_headers(response: httpx.Response) -> tuple[int, int, int]:
    h = response.headers
    return int(h["x-ratelimit-limit"]), int(h["x-ratelimit-remaining"]), int(h["x-ratelimit-reset"])


def assert_too_many(response: httpx.Response, limit: int, now: float | None = None) -> None:
    """§12.12 exactly: body, the three headers (remaining 0, reset in epoch seconds) and
    Retry-After agreeing with the reset."""
    assert response.status_code == 429, response.text
    assert response.json() == TOO_MANY
    got_limit, remaining, reset = limit_headers(response)
    assert (got_limit, remaining) == (limit, 0)
    retry_after = int(response.headers["retry-after"])
    assert retry_after >= 1
    assert abs(reset - ((now or time.time()) + retry_after)) <= 5


async def stored(app: Harness) -> tuple[int, int]:
    return await app.count("challenges"), await app.count("outbox_messages")


async def limit_events(app: Harness) -> list[dict[str, Any]]:
    return await app.rows(
        "SELECT type, ip, user_name, details FROM audit_events "
        "WHERE type IN ('api_limit', 'limit_sms') ORDER BY id"
    )


def details(event: dict[str, Any]) -> dict[str, Any]:
    value = event["details"]
    if isinstance(value, str):  # SQLite hands JSON back as text to raw SQL
        parsed: dict[str, Any] = json.loads(value)
        return parsed
    return dict(value)


def test_defaults_are_the_binding_ones() -> None:
    """docs/specs/security.md §6, as the configuration file documents them
    (docs/specs/interface.md): the file's defaults are the domain's (core.options), and these are
    the numbers."""
    documented = RateLimits().model_dump()
    domain = asdict(DomainRateLimits())
    assert documented == {**domain, "allowlist": list(domain["allowlist"])}
    assert domain == {
        "start_per_ip_per_hour": 50,
        "start_per_identity_per_10min": 5,
        "start_per_identity_per_day": 20,
        "failures_per_identity_per_15min": 10,
        "failures_per_ip_per_hour": 100,
        "sms_per_tenant_per_day": 1000,
        "management_per_client_per_second": 50,
        "allowlist": (),
    }


# --- starts per IP ------------------------------------------------------------------------


async def test_starts_per_ip_default_50_per_hour(app: Harness) -> None:
    resets = set()
    for n in range(50):
        response = await app.start(email(n), headers=from_ip("198.51.100.1"))
        assert response.status_code == 200, response.text
        limit, remaining, reset = limit_headers(response)
        assert (limit, remaining) == (50, 49 - n)
        resets.add(reset)
    [first_reset] = resets
    assert abs(first_reset - (time.time() + 3600)) <= 5
    before = await stored(app)
    refused = await app.start(email("x"), headers=from_ip("198.51.100.1"))
    assert_too_many(refused, 50)
    assert int(refused.headers["x-ratelimit-reset"]) == first_reset
    assert await stored(app) == before, "a refusal stores nothing"
    [event] = await limit_events(app)
    assert (event["type"], event["ip"], event["user_name"]) == (
        "api_limit",
        "198.51.100.1",
        "ux@example.com",
    )
    assert details(event)["limit"] == "start_per_ip_per_hour"
    assert "code" not in str(details(event))
    other = await app.start(email("y"), headers=from_ip("198.51.100.2"))
    assert other.status_code == 200
    assert limit_headers(other)[:2] == (50, 49)


async def test_allowlist_and_zero_exempt_from_the_per_ip_limit(database_url: str) -> None:
    cfg = config(start_per_ip_per_hour=2, allowlist=["198.51.100.0/24"])
    async with running_app(database_url, cfg, trusted_proxies=PROXY) as app:
        for n in range(4):
            response = await app.start(email(n), headers=from_ip("198.51.100.9"))
            assert response.status_code == 200
            assert "x-ratelimit-limit" not in response.headers
        outside = [await app.start(email(f"o{n}"), headers=from_ip("192.0.2.1")) for n in range(3)]
        assert [r.status_code for r in outside] == [200, 200, 429]
    async with running_app(database_url, config(start_per_ip_per_hour=0)) as app:
        for n in range(3):
            response = await app.start(email(f"z{n}"))
            assert response.status_code == 200
            assert "x-ratelimit-limit" not in response.headers


# --- which IP counts ----------------------------------------------------------------------


async def test_auth0_forwarded_for_only_from_an_authenticated_trusted_confidential_client(
    database_url: str,
) -> None:
    cfg = config(start_per_ip_per_hour=2)
    async with running_app(database_url, cfg) as app:  # no trusted proxy: the peer counts

        async def start(n: str, client: str, secret: str | None, end_user: str) -> int:
            body = {**email(n), "client_id": client}
            if secret is not None:
                body["client_secret"] = secret
            headers = {"auth0-forwarded-for": end_user}
            return (await app.start(body, headers=headers)).status_code

        # The trusted confidential client: each end user has a budget of their own.
        assert [await start(f"a{n}", WEB_ID, WEB_SECRET, "198.51.100.1") for n in range(3)] == [
            200,
            200,
            429,
        ]
        assert await start("b", WEB_ID, WEB_SECRET, "198.51.100.2") == 200
        events = await limit_events(app)
        assert [e["ip"] for e in events] == ["198.51.100.1"]
        # Without valid credentials nothing is believed (and nothing is counted).
        assert await start("c", WEB_ID, "wrong-secret", "198.51.100.3") == 401
        # A public client, or a confidential one not trusted for the header: the peer counts.
        codes = [await start(f"d{n}", NATIVE_ID, None, f"198.51.100.{10 + n}") for n in range(3)]
        assert codes == [200, 200, 429]
        untrusted = await start("e", UNTRUSTED_ID, UNTRUSTED_SECRET, "198.51.100.20")
        assert untrusted == 429
        assert [e["ip"] for e in await limit_events(app)][1:] == ["203.0.113.7"] * 2


# --- sends per identity -------------------------------------------------------------------


async def test_sends_per_identity_5_per_10_minutes_and_20_per_day(
    app: Harness, clock: MovableClock
) -> None:
    ada = email("ada")
    for _ in range(4):
        for _ in range(5):
            assert (await app.start(ada)).status_code == 200
        before = await stored(app)
        assert_too_many(await app.start(ada), 5, clock.now().timestamp())
        assert await stored(app) == before
        assert (await app.start(email("bob"))).status_code == 200, "another identity is free"
        clock.advance(601)
    assert_too_many(await app.start(ada), 20, clock.now().timestamp())
    assert [details(e)["limit"] for e in await limit_events(app)] == [
        *["start_per_identity_per_10min"] * 4,
        "start_per_identity_per_day",
    ]
    assert (await app.start(sms("+15551230000"))).status_code == 200, "per identity"


async def test_refusals_are_the_same_for_known_and_unknown_identities(database_url: str) -> None:
    cfg = config(start_per_identity_per_10min=2)
    cfg["connections"][0]["options"] = {"disable_signup": True}
    async with running_app(database_url, cfg) as app:
        await add_user(app, "email", "known@example.com", "email|000000000000000000000001")
        answers = []
        for who in ("known", "unknown"):
            body = {**email(who), "email": f"{who}@example.com"}
            codes = [(await app.start(body)).status_code for _ in range(2)]
            assert codes == [200, 200]
            refused = await app.start(body)
            answers.append(
                (
                    refused.status_code,
                    refused.json(),
                    sorted(refused.headers),
                    limit_headers(refused)[:2],
                )
            )
        assert answers[0] == answers[1]
        assert await app.count("outbox_messages") == 2, "only the known user got messages"


async def test_sms_per_tenant_per_day_stops_sms_only(database_url: str) -> None:
    async with running_app(database_url, config(sms_per_tenant_per_day=2)) as app:
        for n in range(2):
            assert (await app.start(sms(f"+1555000000{n}"))).status_code == 200
        before = await stored(app)
        assert_too_many(await app.start(sms("+15550000009")), 2)
        assert await stored(app) == before
        assert (await app.start(email("mail"))).status_code == 200, "email is unaffected"
        [event] = await limit_events(app)
        assert (event["type"], details(event)["limit"]) == ("api_limit", "sms_per_tenant_per_day")


async def test_the_hosted_page_explains_refusals(database_url: str) -> None:
    cfg = config(start_per_identity_per_10min=1)
    cfg["connections"][1]["options"] = {"provider": "outbox", "allowed_countries": ["GB"]}
    async with running_app(database_url, cfg) as app:
        html, _ = await open_page(app)
        assert (await submit_email(app, html)).status_code == 303
        html, _ = await open_page(app)
        refused = await submit_email(app, html)
        assert refused.status_code == 429
        assert int(refused.headers["retry-after"]) > 590
        assert alert_of(refused.text) == "Too many requests. Try again in 10 minutes."
        html, _ = await open_page(app, connection="sms")
        phone = {"csrf_token": csrf_of(html), "phone_number": "+15557654321"}
        country = await post(app, "/login/identifier", phone)
        assert country.status_code == 400
        assert alert_of(country.text) == "We cannot send text messages to this country."
        assert await app.count("challenges") == 1


# --- verification failures per IP ---------------------------------------------------------


async def code_for(app: Harness, who: str) -> str:
    assert (await app.start({**email(who), "send": "code"})).status_code == 200
    return await app.code_for(f"u{who}@example.com")


def wrong(code: str) -> str:
    return str((int(code) + 1) % 1_000_000).zfill(6)


async def otp(
    app: Harness, who: str, code: str, *, client: str = NATIVE_ID, **extra: str
) -> httpx.Response:
    body = {
        "grant_type": PASSWORDLESS_OTP_GRANT,
        "client_id": client,
        "username": f"u{who}@example.com",
        "otp": code,
        "realm": "email",
        **extra,
    }
    headers = {"auth0-forwarded-for": "198.51.100.77"}
    return await app.client.post("/oauth/token", json=body, headers=headers)


async def test_failed_code_checks_per_ip_on_every_endpoint(database_url: str) -> None:
    """Each failed check counts, wherever it happens; a right code costs nothing; the
    fifth failure of a budget of 5 gets a 429 on every endpoint."""
    async with running_app(database_url, config(failures_per_ip_per_hour=5)) as app:
        a = await code_for(app, "a")
        assert (await otp(app, "a", wrong(a))).status_code == 403  # 1
        assert (await otp(app, "a", a)).status_code == 200  # right: given back
        b = await code_for(app, "b")
        verify = {"connection": "email", "email": "ub@example.com", "client_id": NATIVE_ID}
        response = await app.client.post(
            "/passwordless/verify", json={**verify, "verification_code": wrong(b)}
        )
        assert response.status_code == 401  # 2
        co_body = {
            "client_id": SPA_ID,
            "credential_type": PASSWORDLESS_OTP_GRANT,
            "username": "ub@example.com",
            "otp": wrong(b),
            "realm": "email",
        }
        co = await app.client.post("/co/authenticate", json=co_body, headers={"origin": APP})
        assert co.status_code == 403  # 3
        _, challenge = pkce()
        link = {
            "client_id": NATIVE_ID,
            "connection": "email",
            "email": "ub@example.com",
            "verification_code": "000000",
            "redirect_uri": CALLBACK,
            "response_type": "code",
            "code_challenge": challenge,
            "code_challenge_method": "S256",
        }
        posted = await app.client.post("/passwordless/verify_redirect", data=link)
        returned = parse_qs(urlsplit(posted.headers["location"]).query)
        assert returned["error"] == ["access_denied"]  # 4
        html, _ = await code_page(app)  # (the page sends a code to ada@example.com)
        assert (await submit_code(app, html, "000000")).status_code == 400  # 5

        refused = await otp(app, "b", b)  # even the right code: the budget is spent
        assert_too_many(refused, 5)
        assert refused.headers["cache-control"] == "no-store"
        assert_too_many(
            await app.client.post("/passwordless/verify", json={**verify, "verification_code": b}),
            5,
        )
        co_refused = await app.client.post(
            "/co/authenticate", json={**co_body, "otp": b}, headers={"origin": APP}
        )
        assert_too_many(co_refused, 5)
        assert co_refused.headers["access-control-allow-origin"] == APP
        posted = await app.client.post("/passwordless/verify_redirect", data=link)
        returned = parse_qs(urlsplit(posted.headers["location"]).query)
        assert returned["error"] == ["too_many_requests"]
        page = await submit_code(app, html, "000000")
        assert page.status_code == 429 and int(page.headers["retry-after"]) >= 1
        assert await app.count("challenges", "consumed_at IS NOT NULL") == 1, "only a's code"
        events = [details(e)["limit"] for e in await limit_events(app)]
        assert events == ["failures_per_ip_per_hour"] * 5


async def test_failures_per_ip_use_the_trusted_clients_end_user_ip(database_url: str) -> None:
    async with running_app(database_url, config(failures_per_ip_per_hour=2)) as app:
        a = await code_for(app, "a")
        web = {"client": WEB_ID, "client_secret": WEB_SECRET}
        for _ in range(2):
            assert (await otp(app, "a", wrong(a), **web)).status_code == 403
        assert (await otp(app, "a", a, **web)).status_code == 429
        # The same peer, for a public client (the header is not believed): a budget of its own.
        assert (await otp(app, "a", a)).status_code == 200
        [event] = await limit_events(app)
        assert event["ip"] == "198.51.100.77"
