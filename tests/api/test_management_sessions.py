"""Sessions and refresh tokens by id, and revoking a user's access, through real sign-ins
(docs/specs/management-api.md §3.9): the hosted page's session cookie and the OTP grant's
refresh token stop working once deleted; unknown ids are 404s that write nothing; every
deletion is audited ``sapi``. On SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.api.test_login_page import authorize_url, callback_params, pkce, sign_in
from tests.api.test_refresh import INVALID, config, login, refresh
from tests.support.harness import running_app
from tests.support.management import Api, tenant_key

NOT_FOUND = {
    "session": {
        "statusCode": 404,
        "error": "Not Found",
        "message": "The session does not exist.",
        "errorCode": "inexistent_session",
    },
    "refresh-token": {
        "statusCode": 404,
        "error": "Not Found",
        "message": "The refresh token does not exist.",
        "errorCode": "inexistent_refresh_token",
    },
}


@pytest.fixture
async def api(database_url: str) -> AsyncIterator[Api]:
    async with running_app(database_url, config("rotating")) as harness:
        yield Api(harness, await tenant_key(harness))


async def user_id(api: Api) -> str:
    [row] = await api.harness.rows("SELECT user_id FROM users")
    return str(row["user_id"])


async def sessions_of(api: Api, user: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = (await api.call("GET", f"/users/{user}/sessions")).json()[
        "sessions"
    ]
    return found


async def tokens_of(api: Api, user: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = (await api.call("GET", f"/users/{user}/refresh-tokens")).json()[
        "tokens"
    ]
    return found


async def silent_login_works(api: Api) -> bool:
    """Does ``/authorize?prompt=none`` answer from the browser's session?"""
    got = await api.harness.client.get(authorize_url(pkce()[1], prompt="none"))
    return "code" in callback_params(got)


async def written(api: Api) -> dict[str, Any]:
    return {
        "sessions": await api.harness.rows("SELECT id, revoked_at FROM sessions ORDER BY id"),
        "tokens": await api.harness.rows("SELECT id, revoked_at FROM refresh_tokens ORDER BY id"),
        "audit": await api.harness.count("audit_events"),
    }


async def sapi(api: Api) -> dict[str, Any]:
    rows = await api.harness.rows(
        "SELECT description, user_id FROM audit_events WHERE type = 'sapi' ORDER BY id"
    )
    return rows[-1]


async def test_a_deleted_session_no_longer_signs_in(api: Api) -> None:
    await sign_in(api.harness)
    assert await silent_login_works(api)
    user = await user_id(api)
    [listed] = await sessions_of(api, user)
    got = await api.call("GET", f"/sessions/{listed['id']}")
    assert got.status_code == 200 and got.json() == listed
    deleted = await api.call("DELETE", f"/sessions/{listed['id']}")
    assert deleted.status_code == 204 and deleted.content == b""
    assert await sapi(api) == {"description": "Delete a session", "user_id": user}
    assert not await silent_login_works(api)
    before = await written(api)
    for method in ("GET", "DELETE"):
        again = await api.call(method, f"/sessions/{listed['id']}")
        assert (again.status_code, again.json()) == (404, NOT_FOUND["session"])
    assert await written(api) == before


async def test_a_deleted_refresh_token_no_longer_refreshes(api: Api) -> None:
    tokens = await login(api.harness)
    user = await user_id(api)
    [listed] = await tokens_of(api, user)
    got = await api.call("GET", f"/refresh-tokens/{listed['id']}")
    assert got.status_code == 200 and got.json() == listed
    assert got.json()["client_id"] and "token" not in got.json()
    deleted = await api.call("DELETE", f"/refresh-tokens/{listed['id']}")
    assert deleted.status_code == 204 and deleted.content == b""
    assert await sapi(api) == {"description": "Delete a refresh token", "user_id": user}
    refused = await refresh(api.harness, tokens["refresh_token"])
    assert (refused.status_code, refused.json()) == (403, INVALID)
    before = await written(api)
    for method in ("GET", "DELETE"):
        again = await api.call(method, f"/refresh-tokens/{listed['id']}")
        assert (again.status_code, again.json()) == (404, NOT_FOUND["refresh-token"])
    assert await written(api) == before


async def test_a_rotated_refresh_token_is_not_found_by_id(api: Api) -> None:
    tokens = await login(api.harness)
    [first] = await tokens_of(api, await user_id(api))
    assert (await refresh(api.harness, tokens["refresh_token"])).status_code == 200
    got = await api.call("GET", f"/refresh-tokens/{first['id']}")
    assert (got.status_code, got.json()) == (404, NOT_FOUND["refresh-token"])


async def test_revoke_access_ends_every_session_and_refresh_token(api: Api) -> None:
    await sign_in(api.harness)
    tokens = await login(api.harness)
    user = await user_id(api)
    response = await api.call("POST", f"/users/{user}/revoke-access", json={})
    assert response.status_code == 202 and response.content == b""
    assert await sapi(api) == {"description": "Revoke a user's access", "user_id": user}
    assert await sessions_of(api, user) == [] and await tokens_of(api, user) == []
    assert not await silent_login_works(api)
    refused = await refresh(api.harness, tokens["refresh_token"])
    assert (refused.status_code, refused.json()) == (403, INVALID)


async def test_revoke_access_may_keep_the_refresh_tokens(api: Api) -> None:
    await sign_in(api.harness)
    tokens = await login(api.harness)
    user = await user_id(api)
    body = {"session_id": None, "preserve_refresh_tokens": True}  # as the Fern SDKs send
    response = await api.call("POST", f"/users/{user}/revoke-access", json=body)
    assert response.status_code == 202
    assert await sessions_of(api, user) == [] and len(await tokens_of(api, user)) == 1
    assert (await refresh(api.harness, tokens["refresh_token"])).status_code == 200


async def test_revoke_access_to_one_session(api: Api) -> None:
    await sign_in(api.harness)
    await login(api.harness)
    user = await user_id(api)
    [session] = await sessions_of(api, user)
    path = f"/users/{user}/revoke-access"
    before = await written(api)
    for unknown in ("nosuchsession", "x" * 128):
        refused = await api.call("POST", path, json={"session_id": unknown})
        assert (refused.status_code, refused.json()) == (404, NOT_FOUND["session"])
    assert await written(api) == before
    response = await api.call("POST", path, json={"session_id": session["id"]})
    assert response.status_code == 202
    assert await sessions_of(api, user) == []
    assert len(await tokens_of(api, user)) == 1  # no refresh token is bound to a session
    assert not await silent_login_works(api)


async def test_revoke_access_refusals_write_nothing(api: Api) -> None:
    await sign_in(api.harness)
    user = await user_id(api)
    path = f"/users/{user}/revoke-access"
    [session] = await sessions_of(api, user)
    before = await written(api)
    cases: list[tuple[str, Any, int, str]] = [
        ("/users/email%7Cnobody/revoke-access", {}, 404, "inexistent_user"),
        (path, {"session_id": 7}, 400, "invalid_body"),
        (path, {"session_id": ""}, 400, "invalid_body"),
        (path, {"preserve_refresh_tokens": "yes"}, 400, "invalid_body"),
        (path, {"everything": True}, 400, "invalid_body"),
        (path, ["session_id"], 400, "invalid_body"),
    ]
    for target, body, status, code in cases:
        response = await api.call("POST", target, json=body)
        assert response.status_code == status, (body, response.text)
        assert response.json()["errorCode"] == code
    assert await written(api) == before
    # another user's session is not this user's to revoke
    other = await api.call("POST", "/users", json={"connection": "email", "email": "b@x.example"})
    other_path = f"/users/{other.json()['user_id']}/revoke-access"
    before = await written(api)
    refused = await api.call("POST", other_path, json={"session_id": session["id"]})
    assert (refused.status_code, refused.json()) == (404, NOT_FOUND["session"])
    assert await written(api) == before


@pytest.mark.parametrize(
    ("method", "path", "expected"),
    [
        ("GET", "/sessions/s1", "read:sessions"),
        ("DELETE", "/sessions/s1", "delete:sessions"),
        ("GET", "/refresh-tokens/r1", "read:refresh_tokens"),
        ("DELETE", "/refresh-tokens/r1", "delete:refresh_tokens"),
        ("POST", "/users/u1/revoke-access", "delete:sessions, delete:refresh_tokens"),
    ],
)
async def test_scopes(api: Api, method: str, path: str, expected: str) -> None:
    response = await api.call(method, path, scopes=["read:users", "delete:users"], json={})
    assert response.status_code == 403
    assert response.json()["message"] == f"Insufficient scope, expected any of: {expected}"
    for scope in expected.split(", "):
        allowed = await api.call(method, path, scopes=[scope], json={})
        assert allowed.status_code == 404, allowed.text
