"""CORS: the ``/co/authenticate`` pre-flight, and the endpoints browser SDKs call answering the
origins of the tenant's clients (docs/specs/auth0-wire.md §1.5)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.support.harness import Harness, running_app
from tests.support.spa import APP, EVIL, NATIVE_ORIGIN, assert_cors, config, events


@pytest.fixture
async def app(database_url: str) -> AsyncIterator[Harness]:
    async with running_app(database_url, config()) as harness:
        yield harness


async def test_co_preflight(app: Harness) -> None:
    response = await app.client.options(
        "/co/authenticate",
        headers={
            "origin": APP,
            "access-control-request-method": "POST",
            "access-control-request-headers": "content-type,auth0-client",
        },
    )
    assert response.status_code == 204
    assert_cors(response)
    assert response.headers["access-control-allow-methods"] == "POST"
    assert response.headers["access-control-allow-headers"] == "content-type, auth0-client"
    assert response.headers["access-control-max-age"] == "86400"

    odd = await app.client.options(
        "/co/authenticate",
        headers={
            "origin": APP,
            "access-control-request-method": "POST",
            "access-control-request-headers": "content-type,x-evil",
        },
    )
    assert odd.headers["access-control-allow-headers"] == (
        "Content-Type, Auth0-Client, X-Request-Language"
    )

    refused = await app.client.options(
        "/co/authenticate",
        headers={"origin": EVIL, "access-control-request-method": "POST"},
    )
    assert refused.status_code == 403
    assert refused.text == f"Origin {EVIL} is not allowed."
    assert "access-control-allow-origin" not in refused.headers
    assert await events(app) == ["fco"]


@pytest.mark.parametrize(
    ("path", "method"),
    [
        ("/passwordless/start", "POST"),
        ("/passwordless/verify", "POST"),
        ("/oauth/token", "POST"),
        ("/userinfo", "GET"),
        ("/.well-known/jwks.json", "GET"),
    ],
)
async def test_public_endpoints_answer_allowed_origins(
    app: Harness, path: str, method: str
) -> None:
    # Native App's callback origin counts for these (any client of the tenant).
    for origin in (APP, NATIVE_ORIGIN):
        response = await app.client.request(method, path, headers={"origin": origin})
        assert response.headers["access-control-allow-origin"] == origin
        assert "access-control-allow-credentials" not in response.headers
        assert "Origin" in response.headers["vary"]
        pre = await app.client.options(
            path,
            headers={
                "origin": origin,
                "access-control-request-method": method,
                "access-control-request-headers": "authorization, content-type",
            },
        )
        assert pre.status_code == 204
        assert pre.headers["access-control-allow-origin"] == origin
        assert pre.headers["access-control-allow-headers"] == "authorization, content-type"
        assert pre.headers["access-control-max-age"] == "86400"
    other = await app.client.request(method, path, headers={"origin": EVIL})
    assert "access-control-allow-origin" not in other.headers
    refused = await app.client.options(
        path, headers={"origin": EVIL, "access-control-request-method": method}
    )
    assert (refused.status_code, refused.text) == (403, f"Origin {EVIL} is not allowed.")
