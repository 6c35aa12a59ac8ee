"""SMS fraud controls (docs/specs/security.md §6): allowed countries, per-prefix velocity, the
send→verify conversion breaker and the tenant's daily SMS budget. Each refuses before the
provider is called (the gateway records every call), stores nothing and is audited."""

from __future__ import annotations

import asyncio
import collections
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from nopass.core.models import PASSWORDLESS_OTP_GRANT
from tests.support.clock import MovableClock
from tests.support.config import NATIVE_ID, tenant_config
from tests.support.harness import Harness, running_app
from tests.support.services import REDIS_ENV, required_url
from tests.support.sms_gateway import Gateway

ORIGIN = "http://127.0.0.1:8123"
TOO_MANY = {
    "error": "too_many_requests",
    "error_description": "Too many requests. Try again later.",
}
COUNTRY = {"error": "bad.phone_number", "error_description": "Phone number country is not allowed"}


def config(gateway: Gateway, **options: Any) -> dict[str, Any]:
    sms = {
        "provider": "sms_gateway",
        "gateway_url": gateway.url,
        "template": "@@password@@ is your code",
        **options,
    }
    return tenant_config(ORIGIN, sms=sms)


@pytest.fixture
def clock() -> MovableClock:
    return MovableClock()


@pytest.fixture
async def app(database_url: str, gateway: Gateway, clock: MovableClock) -> AsyncIterator[Harness]:
    async with running_app(database_url, config(gateway), clock=clock) as harness:
        yield harness


async def start(app: Harness, phone: str) -> httpx.Response:
    return await app.start({"client_id": NATIVE_ID, "connection": "sms", "phone_number": phone})


def last_code(gateway: Gateway) -> str:
    return str(gateway.requests[-1].json()["body"]).split()[0]


async def sign_in(app: Harness, phone: str, code: str) -> None:
    response = await app.client.post(
        "/oauth/token",
        json={
            "grant_type": PASSWORDLESS_OTP_GRANT,
            "client_id": NATIVE_ID,
            "username": phone,
            "otp": code,
            "realm": "sms",
        },
    )
    assert response.status_code == 200, response.text


async def sms_events(app: Harness) -> list[dict[str, Any]]:
    rows = await app.rows(
        "SELECT type, user_name, details FROM audit_events "
        "WHERE type IN ('limit_sms', 'api_limit') ORDER BY id"
    )
    for row in rows:
        if isinstance(row["details"], str):
            row["details"] = json.loads(row["details"])
    return rows


async def refused_before_the_provider(
    app: Harness, gateway: Gateway, phone: str, expect: tuple[int, dict[str, str]]
) -> httpx.Response:
    calls, challenges = len(gateway.requests), await app.count("challenges")
    response = await start(app, phone)
    assert (response.status_code, response.json()) == expect
    assert len(gateway.requests) == calls, "the provider was not called"
    assert await app.count("challenges") == challenges, "nothing stored"
    assert await app.count("outbox_messages") == 0
    return response


async def test_allowed_countries(database_url: str, gateway: Gateway) -> None:
    cfg = config(gateway, allowed_countries=["GB", "CA"])
    async with running_app(database_url, cfg) as app:
        await refused_before_the_provider(app, gateway, "+15557654321", (400, COUNTRY))
        await refused_before_the_provider(app, gateway, "+999123456", (400, COUNTRY))
        assert (await start(app, "+447700900123")).status_code == 200
        assert (await start(app, "+16135550123")).status_code == 200  # +1, but Canada
        assert len(gateway.requests) == 2
        events = await sms_events(app)
        assert [(e["type"], e["details"]["control"], e["details"]["country"]) for e in events] == [
            ("limit_sms", "allowed_countries", "US"),
            ("limit_sms", "allowed_countries", "ZZ"),
        ]


async def test_prefix_velocity_30_per_hour(app: Harness, gateway: Gateway) -> None:
    for n in range(30):
        assert (await start(app, f"+1555000{n:04d}")).status_code == 200
        if n % 10 == 0:  # enough conversions to keep the breaker shut
            await sign_in(app, f"+1555000{n:04d}", last_code(gateway))
    refused = await refused_before_the_provider(app, gateway, "+15559999999", (429, TOO_MANY))
    assert refused.headers["x-ratelimit-limit"] == "30"
    assert refused.headers["x-ratelimit-remaining"] == "0"
    assert int(refused.headers["retry-after"]) > 3500
    assert (await start(app, "+16465550000")).status_code == 200, "another prefix is free"
    [event] = await sms_events(app)
    assert (event["type"], event["details"]["control"]) == ("limit_sms", "prefix_velocity")
    assert event["details"]["limit"] == "sms_prefix_per_hour"


async def test_conversion_breaker(app: Harness, gateway: Gateway, clock: MovableClock) -> None:
    for n in range(20):  # 20 codes to the US, none used: toll fraud's signature
        assert (await start(app, f"+1212555{n:04d}")).status_code == 200
    refused = await refused_before_the_provider(app, gateway, "+14155550000", (429, TOO_MANY))
    assert int(refused.headers["retry-after"]) > 3500
    await refused_before_the_provider(app, gateway, "+13105550000", (429, TOO_MANY))
    assert (await start(app, "+447700900123")).status_code == 200, "other countries go on"
    opened, again = await sms_events(app)
    assert opened["details"] == {
        "control": "conversion_breaker",
        "opened": True,
        "sent": 20,
        "verified": 0,
        "country": "US",
    }
    assert again["details"] == {"control": "conversion_breaker", "country": "US"}
    clock.advance(3601)  # closed for an hour, then the hour's statistics start over
    assert (await start(app, "+14155550000")).status_code == 200
    assert len(gateway.requests) == 22


def us_phone(n: int) -> str:
    """60 US numbers over 4 prefixes (15 each: under the prefix velocity of 30)."""
    return f"+1{212 + n % 4}555{n:04d}"


@pytest.mark.parametrize("with_redis", [False, pytest.param(True, marks=pytest.mark.redis)])
async def test_racing_starts_send_exactly_20_sms(
    database_url: str, gateway: Gateway, with_redis: bool
) -> None:
    """Issue 13: the breaker is decided and counted in one atomic step, so 60 starts racing
    to one country send 20 SMS and open it once."""
    cfg = config(gateway)
    cfg["tenant"]["rate_limits"] = {"start_per_ip_per_hour": 0}
    settings: dict[str, Any] = {"redis_url": required_url(REDIS_ENV)} if with_redis else {}
    async with running_app(database_url, cfg, **settings) as app:
        responses = await asyncio.gather(*(start(app, us_phone(n)) for n in range(60)))
        statuses = collections.Counter(r.status_code for r in responses)
        assert statuses == {200: 20, 429: 40}
        assert all(r.json() == TOO_MANY for r in responses if r.status_code == 429)
        assert len(gateway.requests) == 20
        assert await app.count("challenges") == 20
        events = await sms_events(app)
        opened = [e["details"] for e in events if e["details"].get("opened")]
        assert opened == [
            {
                "control": "conversion_breaker",
                "opened": True,
                "sent": 20,
                "verified": 0,
                "country": "US",
            }
        ]
        again = {"control": "conversion_breaker", "country": "US"}
        assert [e["details"] for e in events if not e["details"].get("opened")] == [again] * 39


async def test_starts_refused_by_another_limit_are_not_counted_as_sent(
    app: Harness, gateway: Gateway
) -> None:
    """No SMS sent, nothing counted: 20 starts refused by the per-identity limit leave the
    breaker's 20 sends to others."""
    for n in range(25):  # 5 per identity per 10 minutes: 5 sent, 20 refused
        expected = 200 if n < 5 else 429
        assert (await start(app, "+12125550000")).status_code == expected
    for n in range(15):
        assert (await start(app, us_phone(n + 1))).status_code == 200, n
    await refused_before_the_provider(app, gateway, us_phone(59), (429, TOO_MANY))
    assert len(gateway.requests) == 20
    opened = [e["details"] for e in await sms_events(app) if e["details"].get("opened")]
    assert [(d["sent"], d["verified"]) for d in opened] == [(20, 0)]


async def test_conversions_keep_the_breaker_shut(app: Harness, gateway: Gateway) -> None:
    for n in range(25):
        assert (await start(app, f"+1212555{n:04d}")).status_code == 200, n
        if n in (0, 10, 20):  # 3 of 25 sent were used: 12 % > 10 %
            await sign_in(app, f"+1212555{n:04d}", last_code(gateway))
    assert await sms_events(app) == []


async def test_tenant_daily_budget(database_url: str, gateway: Gateway) -> None:
    cfg = config(gateway)
    cfg["tenant"]["rate_limits"] = {"sms_per_tenant_per_day": 3}
    async with running_app(database_url, cfg) as app:
        for n in range(3):
            assert (await start(app, f"+4477009001{n:02d}")).status_code == 200
        refused = await refused_before_the_provider(app, gateway, "+447700900199", (429, TOO_MANY))
        assert refused.headers["x-ratelimit-limit"] == "3"
        email = {"client_id": NATIVE_ID, "connection": "email", "email": "ada@example.com"}
        assert (await app.start(email)).status_code == 200, "email is not SMS"
        [event] = await sms_events(app)
        assert (event["type"], event["details"]["limit"]) == ("api_limit", "sms_per_tenant_per_day")
