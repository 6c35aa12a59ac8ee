"""The Management API's frame (docs/specs/management-api.md §1, §2.2, §9): bearer tokens,
scopes, Auth0's error envelope on every refusal, query-string and body rules, the per-client
rate limit and its headers, and the ``sapi`` audit of writes. On SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import jwt
import pytest

from nopass.core.management import management_audience
from tests.support.clock import FrozenClock
from tests.support.management import ORIGIN, Api, management_app, token

RATE_HEADERS = ("x-ratelimit-limit", "x-ratelimit-remaining", "x-ratelimit-reset")


@pytest.fixture
async def api(database_url: str) -> AsyncIterator[Api]:
    async with management_app(database_url) as api:
        yield api


def envelope(status: int, error: str, message: str, code: str) -> dict[str, object]:
    return {"statusCode": status, "error": error, "message": message, "errorCode": code}


async def nothing_written(api: Api) -> None:
    assert await api.harness.count("users") == 0
    assert await api.harness.count("audit_events", "type = 'sapi'") == 0


# --- bearer tokens ----------------------------------------------------------------------


async def test_no_token_is_401_with_a_challenge_and_rate_headers(api: Api) -> None:
    response = await api.harness.client.get("/api/v2/users")
    assert response.status_code == 401
    assert response.json() == envelope(401, "Unauthorized", "Invalid token", "invalid_token")
    assert response.headers["www-authenticate"] == "Bearer"
    assert all(name in response.headers for name in RATE_HEADERS)


@pytest.mark.parametrize(
    "authorization", ["Bearer", "Bearer not-a-jwt", "Basic dXNlcjpwYXNz", "bearer a.b.c"]
)
async def test_malformed_tokens_are_invalid(api: Api, authorization: str) -> None:
    response = await api.harness.client.get(
        "/api/v2/users", headers={"Authorization": authorization}
    )
    assert response.status_code == 401
    assert response.json()["message"] == "Invalid token"


async def test_a_wrong_audience_is_named(api: Api) -> None:
    other = "https://elsewhere.example/api/v2/"
    response = await api.harness.client.get(
        "/api/v2/users", headers={"Authorization": f"Bearer {token(api.key, aud=other)}"}
    )
    assert response.status_code == 401
    assert response.json() == envelope(
        401, "Unauthorized", f"Bad audience: {other}", "invalid_token"
    )
    assert 'error="invalid_token"' in response.headers["www-authenticate"]


async def test_an_expired_token(api: Api) -> None:
    stale = token(api.key, exp=int(time.time()) - 10)
    response = await api.harness.client.get(
        "/api/v2/users", headers={"Authorization": f"Bearer {stale}"}
    )
    assert response.status_code == 401
    assert response.json()["message"] == "Expired token received for JSON Web Token validation"


@pytest.mark.parametrize(
    "claims",
    [
        {"iss": "https://evil.example/"},
        {"gty": None},  # not a client-credentials token
        {"sub": "email|0123456789abcdef01234567"},  # a user's token
        {"aud": management_audience(ORIGIN), "scope": 42},
    ],
)
async def test_tokens_that_are_not_management_tokens(api: Api, claims: dict[str, Any]) -> None:
    response = await api.harness.client.get(
        "/api/v2/users", headers={"Authorization": f"Bearer {token(api.key, **claims)}"}
    )
    assert response.status_code == 401
    assert response.json()["message"] == "Invalid token"


async def test_tokens_not_signed_with_the_tenant_key(api: Api) -> None:
    now = int(time.time())
    claims = {
        "iss": ORIGIN + "/",
        "aud": management_audience(ORIGIN),
        "sub": "x@clients",
        "gty": "client-credentials",
        "scope": "read:users",
        "iat": now,
        "exp": now + 60,
    }
    kid = api.key.kid
    forged = [
        jwt.encode(claims, "s" * 32, algorithm="HS256", headers={"kid": kid, "typ": "at+jwt"}),
        jwt.encode(claims, "", algorithm="none", headers={"kid": kid, "typ": "at+jwt"}),
    ]
    for bad in forged:
        response = await api.harness.client.get(
            "/api/v2/users", headers={"Authorization": f"Bearer {bad}"}
        )
        assert response.status_code == 401, bad


# --- scopes -----------------------------------------------------------------------------


async def test_insufficient_scope_lists_what_the_endpoint_accepts(api: Api) -> None:
    response = await api.call("GET", "/users", scopes=["create:users"])
    assert response.status_code == 403
    assert response.json() == envelope(
        403, "Forbidden", "Insufficient scope, expected any of: read:users", "insufficient_scope"
    )
    response = await api.call("PATCH", "/users/email|x", scopes=["read:users"], json={})
    assert response.json()["message"] == (
        "Insufficient scope, expected any of: update:users, update:users_app_metadata"
    )
    response = await api.call(
        "POST", "/users", scopes=["read:users"], json={"connection": "email", "email": "a@b.co"}
    )
    assert response.status_code == 403
    await nothing_written(api)


async def test_any_one_accepted_scope_suffices(api: Api) -> None:
    response = await api.call("GET", "/users", scopes=["read:clients", "read:users"])
    assert response.status_code == 200


# --- envelope on every non-2xx ----------------------------------------------------------


async def test_unknown_paths_and_wrong_methods(api: Api) -> None:
    response = await api.call("GET", "/no-such-thing")
    assert response.status_code == 404
    assert response.json() == envelope(404, "Not Found", "Not Found", "not_found")
    response = await api.call("PUT", "/users/email|abc")
    assert response.status_code == 405
    assert response.json()["statusCode"] == 405
    assert response.json()["error"] == "Method Not Allowed"
    for answer in (response,):
        assert all(name in answer.headers for name in RATE_HEADERS)


@pytest.mark.parametrize(
    ("content", "content_type"),
    [
        (b"not json", "application/json"),
        (b"[1, 2]", "application/json"),
        (b'"text"', "application/json"),
        (b"", "application/json"),
        (b'{"a": "\\ud800"}', "application/json"),
    ],
)
async def test_bodies_that_are_not_json_objects(
    api: Api, content: bytes, content_type: str
) -> None:
    response = await api.call(
        "POST", "/users", content=content, headers={"Content-Type": content_type}
    )
    assert response.status_code == 400
    assert response.json()["errorCode"] == "invalid_body"
    await nothing_written(api)


async def test_bodies_up_to_one_mebibyte_and_413_beyond(api: Api) -> None:
    filler = "x" * (1024 * 1024 - 200)
    body = {"connection": "email", "email": "big@acme.example", "user_metadata": {"f": filler}}
    response = await api.call("POST", "/users", json=body)
    assert response.status_code == 201, response.text

    body = {
        "connection": "email",
        "email": "bigger@acme.example",
        "user_metadata": {"f": filler * 2},
    }
    response = await api.call("POST", "/users", json=body)
    assert response.status_code == 413
    assert response.json() == envelope(
        413, "Payload Too Large", "Request payload is larger than 1 MiB", "payload_too_large"
    )
    assert await api.harness.count("users") == 1


async def test_unknown_query_parameters_are_ignored(api: Api) -> None:
    response = await api.call("GET", "/users?search_engine=v3&connection=email&whatever=1")
    assert response.status_code == 200
    assert response.json() == []


@pytest.mark.parametrize(
    ("value", "envelope_expected"),
    [("true", True), ("TRUE", True), ("1", True), ("false", False), ("False", False), ("0", False)],
)
async def test_booleans(api: Api, value: str, envelope_expected: bool) -> None:
    response = await api.call("GET", f"/users?include_totals={value}")
    assert response.status_code == 200
    assert isinstance(response.json(), dict) is envelope_expected


@pytest.mark.parametrize(
    "query",
    [
        "include_totals=yes",
        "per_page=0",
        "per_page=101",
        "per_page=ten",
        "page=-1",
        "include_fields=maybe",
        "sort=app_metadata.plan:1",
        "sort=password:1",
        "sort=created_at:2",
        "q=email:%22a@b.co%22~",  # fuzzy search is outside the supported subset
        "page=10&per_page=100",  # past the first 1000 results
    ],
)
async def test_bad_query_strings(api: Api, query: str) -> None:
    response = await api.call("GET", f"/users?{query}")
    assert response.status_code == 400, query
    body = response.json()
    assert body["errorCode"] == "invalid_query_string"
    assert set(body) == {"statusCode", "error", "message", "errorCode"}


# --- rate limit -------------------------------------------------------------------------


async def test_rate_limit_per_client_with_headers_and_429(database_url: str) -> None:
    clock = FrozenClock(datetime.now(UTC))
    limits = {"management_per_client_per_second": 3}
    async with management_app(database_url, limits=limits, clock=clock) as api:
        remaining = []
        for _ in range(3):
            response = await api.call("GET", "/users")
            assert response.status_code == 200
            assert response.headers["x-ratelimit-limit"] == "3"
            remaining.append(response.headers["x-ratelimit-remaining"])
        assert remaining == ["2", "1", "0"]
        response = await api.call("GET", "/users")
        assert response.status_code == 429
        assert response.json() == envelope(
            429, "Too Many Requests", "Global limit has been reached", "too_many_requests"
        )
        assert response.headers["retry-after"] == "1"
        assert response.headers["x-ratelimit-remaining"] == "0"
        # another client has its own budget
        other = token(api.key, client_id="another-machine")
        response = await api.harness.client.get(
            "/api/v2/users", headers={"Authorization": f"Bearer {other}"}
        )
        assert response.status_code == 200


# --- audit ------------------------------------------------------------------------------


async def test_writes_are_audited_sapi_with_the_correlation_id(api: Api) -> None:
    response = await api.call(
        "POST",
        "/users",
        json={"connection": "email", "email": "ada@acme.example"},
        headers={"X-Correlation-ID": "c" * 80},
    )
    assert response.status_code == 201
    [event] = await api.harness.rows("SELECT * FROM audit_events WHERE type = 'sapi'")
    assert event["client_id"] == "machine-client-id"
    assert event["user_id"] == response.json()["user_id"]
    details = event["details"]
    if isinstance(details, str):
        details = json.loads(details)
    assert details["references"] == {"correlation_id": "c" * 64}
    assert details["request"] == {"method": "POST", "path": "/api/v2/users"}
    assert api.bearer not in str(event)
    # reads are not audited
    await api.call("GET", "/users")
    assert await api.harness.count("audit_events", "type = 'sapi'") == 1


async def test_a_body_that_does_not_arrive_in_time_is_408_in_the_envelope(
    database_url: str,
) -> None:
    async with management_app(database_url, request_body_timeout_seconds=0.3) as api:

        async def slow() -> AsyncIterator[bytes]:
            yield b'{"connection": "email", '
            await asyncio.sleep(1.5)
            yield b'"email": "late@acme.example"}'

        response = await api.call(
            "POST", "/users", content=slow(), headers={"Content-Type": "application/json"}
        )
        assert response.status_code == 408
        assert response.json() == envelope(
            408, "Request Timeout", "The request body did not arrive in time", "request_timeout"
        )
        await nothing_written(api)
