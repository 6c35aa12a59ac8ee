"""Redirect-URI attacks (docs/specs/security.md §4: Keycloak CVE-2023-6291, mod_auth_openidc
CVE-2022-23527, Fosite CVE-2020-15234...): only an exact callback is ever used, at start, at
/authorize and at the magic link; a refusal sends nothing and redirects nowhere."""

from __future__ import annotations

from collections.abc import AsyncIterator
from urllib.parse import quote, urlencode

import pytest

from tests.support.config import CALLBACK, NATIVE_ID, tenant_config
from tests.support.harness import Harness, running_app
from tests.support.smtp import SmtpSink

ORIGIN = "http://127.0.0.1:8123"
ATTACKS = [
    CALLBACK + ".evil.com",
    CALLBACK + "evil",
    CALLBACK + "/../evil",
    CALLBACK + "%2F..%2Fevil",
    CALLBACK + "%252f..%252fevil",
    CALLBACK + "..;/evil",
    "https://app.acme.example@evil.com/callback",
    "https://app@evil.com/callback",
    CALLBACK.upper(),
    CALLBACK.replace("callback", "Callback"),
    CALLBACK.replace("app.acme.example", "APP.acme.example"),
    CALLBACK + "#fragment",
    CALLBACK + "?next=https://evil.com",
    CALLBACK.replace("https:", "http:"),
    "javascript:alert(document.domain)//" + CALLBACK,
    "data:text/html,<script>alert(1)</script>",
    "//evil.com/callback",
    "https://app.acme.example/\tevil",
    "https://app.acme.example\\/evil",
    "\\/evil.com",
    CALLBACK + " ",
    CALLBACK + "/",
]


@pytest.fixture
async def app(database_url: str, smtp_sink: SmtpSink) -> AsyncIterator[Harness]:
    async with running_app(database_url, tenant_config(ORIGIN, smtp_port=smtp_sink.port)) as h:
        yield h


async def test_refused_at_start_and_nothing_is_sent(app: Harness, smtp_sink: SmtpSink) -> None:
    for uri in ATTACKS:
        response = await app.start(
            {
                "client_id": NATIVE_ID,
                "connection": "email",
                "email": "a@example.com",
                "send": "link",
                "authParams": {"redirect_uri": uri},
            }
        )
        assert response.status_code == 400, uri
        assert response.json() == {
            "error": "bad.authParams",
            "error_description": (
                "error in authParams - redirect_uri is not an allowed callback URL"
            ),
        }, uri
    assert await app.count("challenges") == 0
    assert await app.count("outbox_messages") == 0
    assert smtp_sink.received == []


async def test_refused_at_authorize_and_at_the_link(app: Harness) -> None:
    for uri in ATTACKS:
        query = urlencode(
            {
                "client_id": NATIVE_ID,
                "redirect_uri": uri,
                "response_type": "code",
                "state": "s",
                "code_challenge": "x" * 43,
                "code_challenge_method": "S256",
            },
            quote_via=quote,
        )
        for path in ("/authorize", "/passwordless/verify_redirect"):
            link = query + (
                "&verification_code=123456&connection=email&email=a%40example.com"
                if path.endswith("redirect")
                else ""
            )
            response = await app.client.get(f"{path}?{link}")
            assert response.status_code == 400, (path, uri)
            assert "location" not in response.headers, (path, uri)
            assert response.headers["content-type"].startswith("text/html")
            posted = await app.client.post(
                path, content=link, headers={"content-type": "application/x-www-form-urlencoded"}
            )
            assert "location" not in posted.headers, (path, uri)
    assert await app.count("challenges") == 0
