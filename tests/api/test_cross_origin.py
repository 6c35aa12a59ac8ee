"""``POST /co/authenticate`` and its login tickets (docs/specs/auth0-wire.md §5.2, §5.3, §12.11)."""

from __future__ import annotations

import hashlib
import re
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

import httpx
import pytest

from nopass.core.errors import AuthorizeInvalid, AuthorizeProblem
from nopass.core.keyring import Keyring
from nopass.core.models import PASSWORDLESS_OTP_GRANT, TenantConfig, User
from nopass.flows.authorization_request import AuthorizeRequest
from nopass.flows.cross_origin import redeem_ticket, verifier_cookie_name
from nopass.store.config import ConfigCache
from nopass.store.unit_of_work import SqlUnitOfWork
from tests.support.clock import MovableClock
from tests.support.config import NATIVE_ID
from tests.support.harness import TEST_SECRET, Harness, running_app
from tests.support.spa import (
    APP,
    CALLBACK,
    CALLBACK_ORIGIN,
    CO_BLOCKED,
    CO_BODY,
    CORS_ORIGIN,
    EMAIL,
    EMAIL_SPA_ID,
    EVIL,
    EXHAUSTED,
    EXPIRED,
    NATIVE_ORIGIN,
    PHONE,
    SPA_ID,
    WRONG_EMAIL,
    assert_cors,
    config,
    error,
    events,
    otp_grant,
    send_code,
    wrong,
)

URLSAFE = re.compile(r"[A-Za-z0-9_-]{22,}")  # ≥ 128 bits


@pytest.fixture
def clock() -> MovableClock:
    return MovableClock()


@pytest.fixture
async def app(database_url: str, clock: MovableClock) -> AsyncIterator[Harness]:
    async with running_app(database_url, config(), clock=clock) as harness:
        yield harness


def moment(value: object) -> datetime:
    """A timestamp column read with raw SQL (a string on SQLite, a datetime on PostgreSQL)."""
    return datetime.fromisoformat(str(value))


async def co(
    app: Harness, code: str, *, origin: str | None = APP, **overrides: Any
) -> httpx.Response:
    body: dict[str, Any] = {
        "client_id": SPA_ID,
        "username": EMAIL,
        "otp": code,
        "realm": "email",
        "credential_type": PASSWORDLESS_OTP_GRANT,
    }
    body.update(overrides)
    headers = {"origin": origin} if origin is not None else {}
    return await app.client.post(
        "/co/authenticate", json={k: v for k, v in body.items() if v is not ...}, headers=headers
    )


# --- /co/authenticate ---------------------------------------------------------------------


async def test_login_ticket_issued_with_cookie_cors_and_audit(app: Harness) -> None:
    response = await co(app, await send_code(app))
    assert response.status_code == 200, response.text
    assert_cors(response)
    body = response.json()
    assert set(body) == {"login_ticket", "co_verifier", "co_id"}
    assert all(URLSAFE.fullmatch(v) for v in body.values())
    assert len(set(body.values())) == 3
    cookie = response.headers["set-cookie"]
    assert cookie.startswith(f"nopass_co_{body['co_id']}={body['co_verifier']};")
    assert "HttpOnly" in cookie and "Path=/" in cookie and "Max-Age=300" in cookie
    assert "SameSite=lax" in cookie and "Secure" not in cookie
    assert verifier_cookie_name(body["login_ticket"]) == f"nopass_co_{body['co_id']}"

    [row] = await app.rows("SELECT * FROM login_tickets")
    assert row["ticket_hash"] == hashlib.sha256(body["login_ticket"].encode()).hexdigest()
    assert row["co_verifier_hash"] == hashlib.sha256(body["co_verifier"].encode()).hexdigest()
    assert (row["client_id"], row["realm"], row["co_id"]) == (SPA_ID, "email", body["co_id"])
    lifetime = moment(row["expires_at"]) - moment(row["created_at"])
    assert lifetime.total_seconds() == 300
    [user] = await app.rows("SELECT user_id, identifier FROM users")
    assert (row["user_id"], user["identifier"]) == (user["user_id"], EMAIL)
    assert await events(app) == ["cls", "ss", "scoa"]


async def test_the_code_is_consumed(app: Harness) -> None:
    code = await send_code(app)
    assert (await co(app, code)).status_code == 200
    assert error(await co(app, code)) == (
        403,
        {"error": "access_denied", "error_description": WRONG_EMAIL},
    )
    assert (await otp_grant(app, code)).json()["error_description"] == WRONG_EMAIL


async def test_every_allowed_origin_kind_and_form_bodies(app: Harness) -> None:
    for origin in (APP, CORS_ORIGIN, CALLBACK_ORIGIN):
        response = await co(app, await send_code(app), origin=origin)
        assert response.status_code == 200, (origin, response.text)
        assert_cors(response, origin)
    form = {
        "client_id": SPA_ID,
        "username": EMAIL,
        "otp": await send_code(app),
        "realm": "email",
        "credential_type": PASSWORDLESS_OTP_GRANT,
    }
    response = await app.client.post("/co/authenticate", data=form, headers={"origin": APP})
    assert response.status_code == 200, response.text


async def test_https_tenant_sets_a_cross_site_cookie(app: Harness) -> None:
    code = await send_code(app)
    response = await app.client.post(
        "https://login.acme.example/co/authenticate",
        json={
            "client_id": SPA_ID,
            "username": EMAIL,
            "otp": code,
            "realm": "email",
            "credential_type": PASSWORDLESS_OTP_GRANT,
        },
        headers={"origin": APP},
    )
    assert response.status_code == 200, response.text
    cookie = response.headers["set-cookie"]
    assert "SameSite=none" in cookie and "Secure" in cookie and "HttpOnly" in cookie


@pytest.mark.parametrize(
    "change",
    [
        {"scope": "openid"},
        {"otp": ...},
        {"client_id": ...},
        {"credential_type": ...},
        {"username": 5},
        {"realm": ""},
    ],
    ids=["extra key", "no otp", "no client_id", "no credential_type", "not a string", "empty"],
)
async def test_body_must_have_all_and_only_five_keys(app: Harness, change: dict[str, Any]) -> None:
    response = await co(app, "123456", **change)
    assert error(response) == (400, {"error": "invalid_request", "error_description": CO_BODY})
    assert_cors(response)
    assert await events(app) == ["fcoa"]


async def test_unreadable_body(app: Harness) -> None:
    response = await app.client.post(
        "/co/authenticate",
        content=b"{nope",
        headers={"content-type": "application/json", "origin": APP},
    )
    assert error(response) == (400, {"error": "invalid_request", "error_description": CO_BODY})
    assert_cors(response)


async def test_client_refusals(app: Harness) -> None:
    disabled = {
        "error": "unauthorized_client",
        "error_description": "Cross origin login not allowed.",
    }
    response = await co(app, "123456", client_id=NATIVE_ID, origin=NATIVE_ORIGIN)
    assert error(response) == (401, disabled)
    assert_cors(response, NATIVE_ORIGIN)
    # An unknown client: the origin is judged against every client of the tenant.
    assert error(await co(app, "123456", client_id="no-such-client")) == (401, disabled)

    response = await co(app, "123456", credential_type="password")
    assert error(response) == (
        400,
        {
            "error": "unsupported_credential_type",
            "error_description": "Unknown credential type parameter.",
        },
    )
    assert_cors(response)
    for realm in ("nope", "legacy-db"):
        response = await co(app, "123456", realm=realm)
        assert error(response) == (
            400,
            {"error": "invalid_request", "error_description": f"Unknown realm {realm}."},
        )
    assert await events(app) == ["fcoa"] * 5


async def test_realm_must_be_enabled_for_the_client(app: Harness) -> None:
    response = await co(app, "123456", client_id=EMAIL_SPA_ID, realm="sms", username=PHONE)
    assert error(response) == (
        400,
        {"error": "invalid_request", "error_description": "Unknown realm sms."},
    )
    code = await send_code(app, client_id=EMAIL_SPA_ID)
    assert (await co(app, code, client_id=EMAIL_SPA_ID)).status_code == 200


@pytest.mark.parametrize("origin", [EVIL, NATIVE_ORIGIN, APP + "/path", "null", None])
async def test_disallowed_origin_is_plain_text_403_and_fco(
    app: Harness, origin: str | None
) -> None:
    response = await co(app, "123456", origin=origin)
    assert response.status_code == 403
    assert response.headers["content-type"].startswith("text/plain")
    assert response.text == f"Origin {origin or 'null'} is not allowed."
    assert "access-control-allow-origin" not in response.headers
    [row] = await app.rows("SELECT type, client_id, description FROM audit_events")
    assert (row["type"], row["client_id"]) == ("fco", SPA_ID)
    assert row["description"] == response.text


async def test_wrong_expired_and_exhausted_codes(app: Harness, clock: MovableClock) -> None:
    code = await send_code(app)
    response = await co(app, wrong(code))
    assert error(response) == (403, {"error": "access_denied", "error_description": WRONG_EMAIL})
    assert_cors(response)
    assert await events(app) == ["cls", "fp", "fcoa"]
    for _ in range(2):
        await co(app, wrong(code))
    assert error(await co(app, code)) == (
        403,
        {"error": "access_denied", "error_description": EXHAUSTED},
    )

    clock.advance(900)  # a fresh failure window
    code = await send_code(app)
    clock.advance(181)
    assert error(await co(app, code)) == (
        403,
        {"error": "access_denied", "error_description": EXPIRED},
    )

    code = await send_code(app, PHONE)
    assert error(await co(app, wrong(code), username=PHONE, realm="sms")) == (
        403,
        {
            "error": "access_denied",
            "error_description": "Wrong phone number or verification code.",
        },
    )
    assert await app.count("login_tickets") == 0


async def test_identity_window_answers_429(app: Harness) -> None:
    for _ in range(2):
        code = await send_code(app)
        for _ in range(3):
            await co(app, wrong(code))
    code = await send_code(app)
    response = await co(app, code)
    assert error(response) == (
        429,
        {"error": "too_many_attempts", "error_description": CO_BLOCKED},
    )
    assert int(response.headers["retry-after"]) > 0
    assert_cors(response)


# --- login tickets (§5.3, §12.11) ---------------------------------------------------------


async def tenant_config_of(app: Harness) -> TenantConfig:
    resolved = await ConfigCache(app.engine).resolve("127.0.0.1:8123")
    assert resolved is not None
    return resolved.config


def authorize_request(client_id: str = SPA_ID) -> AuthorizeRequest:
    return AuthorizeRequest(
        client_id=client_id, redirect_uri=CALLBACK, response_type="code", response_mode="query"
    )


async def redeem(
    app: Harness,
    clock: MovableClock,
    ticket: str,
    verifier: str | None = None,
    client_id: str = SPA_ID,
) -> User:
    config = await tenant_config_of(app)
    async with SqlUnitOfWork(app.engine, Keyring([TEST_SECRET.encode()])) as uow:
        try:
            return await redeem_ticket(
                uow, config, authorize_request(client_id), ticket, verifier, clock.now()
            )
        finally:
            await uow.commit()  # as the caller must: a refused ticket stays consumed


async def issue(app: Harness) -> dict[str, str]:
    response = await co(app, await send_code(app))
    assert response.status_code == 200, response.text
    body: dict[str, str] = response.json()
    return body


def assert_invalid(exc: pytest.ExceptionInfo[AuthorizeInvalid]) -> None:
    assert exc.value.problem is AuthorizeProblem.INVALID_TICKET


async def test_ticket_works_once_for_its_client(app: Harness, clock: MovableClock) -> None:
    ticket = await issue(app)
    with pytest.raises(AuthorizeInvalid) as other:
        await redeem(app, clock, ticket["login_ticket"], client_id=NATIVE_ID)
    assert_invalid(other)
    user = await redeem(app, clock, ticket["login_ticket"], ticket["co_verifier"])
    [row] = await app.rows("SELECT user_id FROM users")
    assert (user.user_id, user.identifier) == (row["user_id"], EMAIL)
    with pytest.raises(AuthorizeInvalid) as again:
        await redeem(app, clock, ticket["login_ticket"], ticket["co_verifier"])
    assert_invalid(again)
    with pytest.raises(AuthorizeInvalid):
        await redeem(app, clock, "not-a-ticket")


async def test_ticket_without_cookie_is_accepted(app: Harness, clock: MovableClock) -> None:
    ticket = await issue(app)
    assert (await redeem(app, clock, ticket["login_ticket"], None)).identifier == EMAIL


async def test_ticket_expires_after_five_minutes(app: Harness, clock: MovableClock) -> None:
    early, late = await issue(app), await issue(app)
    clock.advance(299)
    assert (await redeem(app, clock, early["login_ticket"])).identifier == EMAIL
    clock.advance(2)
    with pytest.raises(AuthorizeInvalid):
        await redeem(app, clock, late["login_ticket"], late["co_verifier"])


async def test_verifier_mismatch_refuses_and_burns(app: Harness, clock: MovableClock) -> None:
    ticket, other = await issue(app), await issue(app)
    with pytest.raises(AuthorizeInvalid) as caught:
        await redeem(app, clock, ticket["login_ticket"], other["co_verifier"])
    assert_invalid(caught)
    with pytest.raises(AuthorizeInvalid):
        await redeem(app, clock, ticket["login_ticket"], ticket["co_verifier"])
