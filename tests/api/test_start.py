"""POST /passwordless/start: responses, the error table of docs/specs/auth0-wire.md §2.5/§12,
storage."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.support.config import CALLBACK, NATIVE_ID, WEB_ID, WEB_SECRET, tenant_config
from tests.support.harness import Harness, running_app
from tests.support.smtp import SmtpSink

ORIGIN = "http://127.0.0.1:8123"


@pytest.fixture
async def app(database_url: str, smtp_sink: SmtpSink) -> AsyncIterator[Harness]:
    config = tenant_config(ORIGIN, smtp_port=smtp_sink.port)
    async with running_app(database_url, config) as harness:
        yield harness


def email_body(**extra: Any) -> dict[str, Any]:
    return {"client_id": NATIVE_ID, "connection": "email", "email": "ada@example.com", **extra}


async def test_email_code_answers_auth0_shape_and_is_delivered(
    app: Harness, smtp_sink: SmtpSink
) -> None:
    response = await app.start(email_body(email="Ada@Example.COM", send="code"))
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json; charset=utf-8"
    body = response.json()
    assert set(body) == {"_id", "email", "email_verified"}
    assert re.fullmatch(r"[0-9a-f]{24}", body["_id"])
    assert body["email"] == "ada@example.com"
    assert body["email_verified"] is False
    [mail] = await smtp_sink.wait_for(1)
    assert mail.recipients == ["ada@example.com"]
    assert re.search(r"\b\d{6}\b", mail.text())
    assert mail.html()


async def test_sms_answers_auth0_shape(app: Harness) -> None:
    response = await app.start(
        {"client_id": NATIVE_ID, "connection": "sms", "phone_number": "+15551234567"},
        headers={"x-request-language": "fr-FR"},
    )
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"_id", "phone_number", "phone_verified", "request_language"}
    assert body["phone_number"] == "+15551234567"
    assert body["phone_verified"] is False
    assert body["request_language"] == "fr-FR"


async def test_request_language_falls_back_to_accept_language(app: Harness) -> None:
    response = await app.start(
        {"client_id": NATIVE_ID, "connection": "sms", "phone_number": "+15551234567"},
        headers={"accept-language": "de-DE,de;q=0.9"},
    )
    assert response.json()["request_language"] == "de-DE,de;q=0.9"
    response = await app.start(
        {"client_id": NATIVE_ID, "connection": "sms", "phone_number": "+15551234567"}
    )
    assert response.json()["request_language"] is None


ERRORS: list[tuple[str, Any, int, str, str]] = [
    (
        "unknown property",
        {**email_body(), "type": "x"},
        400,
        "bad.request",
        "the following properties are not allowed: type",
    ),
    (
        "two unknown properties",
        {"zeta": 1, **email_body(), "alpha": 2},
        400,
        "bad.request",
        "the following properties are not allowed: zeta, alpha",
    ),
    (
        "client_id missing",
        {"connection": "email", "email": "a@b.co"},
        400,
        "bad.client_id",
        "Missing required property: client_id",
    ),
    (
        "client_id null",
        {"client_id": None, "connection": "email"},
        400,
        "bad.client_id",
        "Missing required property: client_id",
    ),
    (
        "connection missing",
        {"client_id": NATIVE_ID, "email": "a@b.co"},
        400,
        "bad.connection",
        "Missing required property: connection",
    ),
    (
        "authParams string",
        email_body(authParams="x"),
        400,
        "bad.authParams",
        "error in authParams - invalid type: string (expected object)",
    ),
    (
        "authParams number",
        email_body(authParams=3),
        400,
        "bad.authParams",
        "error in authParams - invalid type: number (expected object)",
    ),
    (
        "authParams array",
        email_body(authParams=[]),
        400,
        "bad.authParams",
        "error in authParams - invalid type: array (expected object)",
    ),
    (
        "authParams boolean",
        email_body(authParams=True),
        400,
        "bad.authParams",
        "error in authParams - invalid type: boolean (expected object)",
    ),
    (
        "authParams null",
        email_body(authParams=None),
        400,
        "bad.authParams",
        "error in authParams - invalid type: null (expected object)",
    ),
    (
        "bad send",
        email_body(send="pigeon"),
        400,
        "bad.send",
        "error in send - no enum match for: pigeon",
    ),
    ("unknown client", email_body(client_id="nope"), 400, "bad.client_id", "Unknown client: nope"),
    (
        "unknown connection",
        email_body(connection="fax"),
        400,
        "bad.connection",
        "Connection does not exist",
    ),
    (
        "not passwordless",
        email_body(connection="legacy-db"),
        400,
        "bad.connection",
        "Invalid connection strategy. It must either be a passwordless connection",
    ),
    (
        "not enabled",
        email_body(client_id="other-app-client-id"),
        400,
        "bad.connection",
        "Connection is disabled",
    ),
    (
        "email missing",
        {"client_id": NATIVE_ID, "connection": "email"},
        400,
        "bad.email",
        "Missing required property: email",
    ),
    (
        "email malformed",
        email_body(email="not-an-email"),
        400,
        "bad.email",
        "error in email - email format validation failed: not-an-email",
    ),
    (
        "phone missing",
        {"client_id": NATIVE_ID, "connection": "sms"},
        400,
        "bad.phone_number",
        "Missing required property: phone_number",
    ),
    (
        "phone malformed",
        {"client_id": NATIVE_ID, "connection": "sms", "phone_number": "+1 555 123"},
        400,
        "bad.phone_number",
        "String does not match pattern: ^\\+[0-9]{1,15}$",
    ),
    (
        "redirect not allowed",
        email_body(authParams={"redirect_uri": "https://evil.example/cb"}),
        400,
        "bad.authParams",
        "error in authParams - redirect_uri is not an allowed callback URL",
    ),
    (
        "confidential without secret",
        email_body(client_id=WEB_ID),
        401,
        "access_denied",
        "Unauthorized",
    ),
    (
        "confidential wrong secret",
        email_body(client_id=WEB_ID, client_secret="wrong"),
        401,
        "access_denied",
        "Unauthorized",
    ),
]


@pytest.mark.parametrize(
    ("case", "body", "status", "error", "description"), ERRORS, ids=[e[0] for e in ERRORS]
)
async def test_error_table(
    app: Harness, case: str, body: Any, status: int, error: str, description: str
) -> None:
    response = await app.start(body)
    assert response.status_code == status, response.text
    assert response.json() == {"error": error, "error_description": description}
    assert await app.count("challenges") == 0
    assert await app.count("outbox_messages") == 0
    assert await app.count("audit_events") == 0


async def test_first_failure_wins_in_house_order(app: Harness) -> None:
    # unknown property beats a missing client_id, which beats everything after it
    response = await app.start({"connection": 5, "x": 1})
    assert response.json()["error_description"] == "the following properties are not allowed: x"
    response = await app.start({"connection": "email"})
    assert response.json()["error"] == "bad.client_id"
    # send enum is checked before the client exists
    response = await app.start({"client_id": "nope", "connection": "email", "send": "x"})
    assert response.json()["error"] == "bad.send"
    # the identifier is checked before client authentication
    response = await app.start({"client_id": WEB_ID, "connection": "email", "email": "bad"})
    assert response.json()["error"] == "bad.email"


async def test_unknown_host_is_bad_tenant(app: Harness) -> None:
    response = await app.client.post(
        "/passwordless/start", json=email_body(), headers={"host": "evil.example"}
    )
    assert response.status_code == 400
    assert response.json() == {
        "error": "bad.tenant",
        "error_description": "error in tenant - tenant validation failed: invalid_tenant",
    }


async def test_unparseable_bodies(app: Harness) -> None:
    for content, ctype in [
        (b"{", "application/json"),
        (b"[1]", "application/json"),
        (b"a=b", "text/plain"),
        (b"\xff\xfe", "application/json"),
    ]:
        response = await app.client.post(
            "/passwordless/start", content=content, headers={"content-type": ctype}
        )
        assert response.status_code == 400
        assert response.json() == {
            "error": "bad.request",
            "error_description": "Invalid request body",
        }


async def test_form_body_with_bracketed_auth_params(app: Harness, smtp_sink: SmtpSink) -> None:
    response = await app.client.post(
        "/passwordless/start",
        data={
            "client_id": NATIVE_ID,
            "connection": "email",
            "email": "form@example.com",
            "send": "link",
            "authParams[redirect_uri]": CALLBACK,
            "authParams[state]": "s 1",
        },
    )
    assert response.status_code == 200, response.text
    [mail] = await smtp_sink.wait_for(1)
    link = re.search(r"http://127\.0\.0\.1:8123/passwordless/verify_redirect\?\S+", mail.text())
    assert link is not None
    assert "redirect_uri=https%3A%2F%2Fapp.acme.example%2Fcallback" in link.group(0)
    assert "state=s%201" in link.group(0)


async def test_form_plain_auth_params_and_repeated_keys_are_refused(app: Harness) -> None:
    response = await app.client.post(
        "/passwordless/start",
        content=f"client_id={NATIVE_ID}&connection=email&email=a@b.co&authParams=x",
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert response.json()["error_description"] == (
        "error in authParams - invalid type: string (expected object)"
    )
    response = await app.client.post(
        "/passwordless/start",
        content=f"client_id={NATIVE_ID}&connection=email&email=a@b.co&email=evil@attacker.example",
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code == 400
    assert response.json()["error"] == "bad.email"
    assert await app.count("outbox_messages") == 0


async def test_confidential_client_secret_in_body_or_basic(app: Harness) -> None:
    response = await app.start(email_body(client_id=WEB_ID, client_secret=WEB_SECRET))
    assert response.status_code == 200
    response = await app.start(email_body(client_id=WEB_ID), auth=(WEB_ID, WEB_SECRET))
    assert response.status_code == 200
    response = await app.start(email_body(client_id=WEB_ID), auth=(WEB_ID, "nope"))
    assert response.status_code == 401


@pytest.mark.parametrize(
    "hostile",
    [
        "victim@example.com\r\nBcc: attacker@evil.example",
        "victim@example.com,attacker@evil.example",
        "victim@example.com@evil.example",
        '"attacker@evil.example"@example.com',
        "a" * 250 + "@example.com",
        " victim@example.com",
        "Victim <victim@example.com>",
    ],
)
async def test_hostile_addresses_are_refused(app: Harness, hostile: str) -> None:
    response = await app.start(email_body(email=hostile))
    assert response.status_code == 400
    assert response.json()["error"] == "bad.email"
    assert await app.count("outbox_messages") == 0


async def test_new_start_voids_previous_code(app: Harness) -> None:
    await app.start(email_body(send="code"))
    await app.start(email_body(send="code"))
    rows = await app.rows("SELECT voided_at FROM challenges ORDER BY created_at")
    assert len(rows) == 2
    assert rows[0]["voided_at"] is not None
    assert rows[1]["voided_at"] is None


async def test_code_is_stored_only_as_hmac(app: Harness, smtp_sink: SmtpSink) -> None:
    await app.start(email_body(send="code"))
    [mail] = await smtp_sink.wait_for(1)
    match = re.search(r"\b(\d{6})\b", mail.text())
    assert match is not None
    code = match.group(1)
    [row] = await app.rows("SELECT * FROM challenges")
    assert re.fullmatch(r"[0-9a-f]{64}", row["code_hmac"])
    for table in ("challenges", "outbox_messages", "audit_events"):
        for stored in await app.rows(f"SELECT * FROM {table}"):  # noqa: S608
            assert code not in repr(stored), table


async def test_audit_event_per_send(app: Harness, smtp_sink: SmtpSink) -> None:
    await app.start(email_body(send="code"), headers={"user-agent": "pytest-agent"})
    await app.start({"client_id": NATIVE_ID, "connection": "sms", "phone_number": "+15550001"})
    events = await app.rows("SELECT * FROM audit_events ORDER BY id")
    assert [e["type"] for e in events] == ["cls", "cs"]
    assert events[0]["user_name"] == "ada@example.com"
    assert events[0]["ip"] == "203.0.113.7"
    assert events[0]["user_agent"] == "pytest-agent"
    assert events[0]["client_id"] == NATIVE_ID
    assert events[0]["connection"] == "email"
    assert events[1]["user_name"] == "+15550001"


async def test_auth0_client_telemetry_is_decoded_leniently(app: Harness) -> None:
    import base64
    import json

    telemetry = {"name": "auth0.js", "version": "10.2.1"}
    raw = json.dumps(telemetry).encode()
    headers = [
        base64.b64encode(raw).decode(),  # auth0-python: standard alphabet
        base64.urlsafe_b64encode(raw).decode(),  # auth0.js: url-safe, padded
        base64.urlsafe_b64encode(raw).decode().rstrip("="),
        "%%% not base64 %%%",
    ]
    for header in headers:
        response = await app.start(email_body(send="code"), headers={"auth0-client": header})
        assert response.status_code == 200
    events = await app.rows("SELECT details FROM audit_events ORDER BY id")
    details = [
        e["details"] if isinstance(e["details"], dict) else json.loads(e["details"]) for e in events
    ]
    assert [d.get("auth0_client") for d in details] == [telemetry, telemetry, telemetry, None]
