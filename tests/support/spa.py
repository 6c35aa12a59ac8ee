"""A tenant with single-page applications allowed to sign in cross-origin, and helpers for the
auth0.js / Lock endpoint tests (docs/specs/auth0-wire.md §1.5, §5.1-5.3, §5.8)."""

from __future__ import annotations

from typing import Any

import httpx

from nopass.core.models import PASSWORDLESS_OTP_GRANT
from tests.support.config import NATIVE_ID, tenant_config
from tests.support.harness import Harness

ORIGIN = "http://127.0.0.1:8123"
SPA_ID = "spa-app-client-id"
EMAIL_SPA_ID = "email-spa-client-id"  # only the email connection is enabled for it
APP = "https://spa.acme.example"  # the SPA's Allowed Web Origin
CORS_ORIGIN = "https://cors.acme.example"  # its Allowed Origin (CORS)
CALLBACK_ORIGIN = "https://cb.acme.example"  # the origin of its callback
CALLBACK = CALLBACK_ORIGIN + "/callback"
NATIVE_ORIGIN = "https://app.acme.example"  # Native App's callback origin; no cross-origin auth
EVIL = "https://evil.example"
EMAIL = "ada@example.com"
PHONE = "+15557654321"
WRONG_EMAIL = "Wrong email or verification code."
EXPIRED = "The verification code has expired. Please try to login again."
EXHAUSTED = "You've reached the maximum number of attempts. Please try to login again."
CO_BODY = (
    "Invalid request body. All and only of client_id, credential_type, username, otp, realm "
    "are required."
)
CO_BLOCKED = (
    "Your account has been blocked after multiple consecutive login attempts. "
    "We’ve sent you an email with instructions on how to unblock it."
)


def config() -> dict[str, Any]:
    cfg = tenant_config(ORIGIN)
    cfg["tenant"]["domains"].append("https://login.acme.example")
    cfg["tenant"]["rate_limits"] = {
        "start_per_identity_per_10min": 100,
        "start_per_identity_per_day": 100,
        "failures_per_identity_per_15min": 5,
    }
    cfg["clients"].append(
        {
            "name": "SPA",
            "client_id": SPA_ID,
            "app_type": "spa",
            "callbacks": [CALLBACK],
            "web_origins": [APP],
            "allowed_origins": [CORS_ORIGIN],
            "cross_origin_auth": True,
        }
    )
    cfg["clients"].append(
        {
            "name": "Email SPA",
            "client_id": EMAIL_SPA_ID,
            "app_type": "spa",
            "web_origins": [APP],
            "cross_origin_auth": True,
        }
    )
    for connection in cfg["connections"]:  # (tenant_config shares one list among them)
        extra = ["SPA", "Email SPA"] if connection["name"] == "email" else ["SPA"]
        connection["enabled_clients"] = [*connection["enabled_clients"], *extra]
    return cfg


async def send_code(app: Harness, who: str = EMAIL, client_id: str = SPA_ID) -> str:
    field, connection = ("phone_number", "sms") if who.startswith("+") else ("email", "email")
    body = {"client_id": client_id, "connection": connection, field: who, "send": "code"}
    if connection == "sms":
        del body["send"]
    response = await app.start(body)
    assert response.status_code == 200, response.text
    return await app.code_for(who)


def wrong(code: str) -> str:
    return str((int(code) + 1) % 1_000_000).zfill(6)


async def otp_grant(app: Harness, code: str, username: str = EMAIL) -> httpx.Response:
    return await app.client.post(
        "/oauth/token",
        json={
            "grant_type": PASSWORDLESS_OTP_GRANT,
            "client_id": NATIVE_ID,
            "username": username,
            "otp": code,
            "realm": "email",
        },
    )


async def events(app: Harness) -> list[str]:
    return [r["type"] for r in await app.rows("SELECT type FROM audit_events ORDER BY id")]


def error(response: httpx.Response) -> tuple[int, dict[str, Any]]:
    return response.status_code, response.json()


def assert_cors(response: httpx.Response, origin: str = APP) -> None:
    """``/co/authenticate``'s CORS answer: the exact origin, with credentials."""
    assert response.headers["access-control-allow-origin"] == origin
    assert response.headers["access-control-allow-credentials"] == "true"
    assert "Origin" in response.headers["vary"]
