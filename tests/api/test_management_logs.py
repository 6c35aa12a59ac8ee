"""``/api/v2/logs``, ``/logs/{id}``, ``/users/{id}/logs`` and ``/user-blocks`` over HTTP, on
SQLite and PostgreSQL (docs/specs/management-api.md §3.8, §4, §6)."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any

import pytest

from nopass.core.models import PASSWORDLESS_OTP_GRANT
from tests.support.config import NATIVE_ID
from tests.support.management import Api, management_app

EMAIL = "ada@acme.example"


@pytest.fixture
async def api(database_url: str) -> AsyncIterator[Api]:
    async with management_app(database_url) as api:
        yield api


async def otp(api: Api, code: str, email: str = EMAIL) -> int:
    body = {
        "grant_type": PASSWORDLESS_OTP_GRANT,
        "client_id": NATIVE_ID,
        "username": email,
        "otp": code,
        "realm": "email",
    }
    return (await api.harness.client.post("/oauth/token", json=body)).status_code


async def login(api: Api, email: str = EMAIL) -> None:
    start = {"client_id": NATIVE_ID, "connection": "email", "email": email, "send": "code"}
    assert (await api.harness.start(start)).status_code == 200
    assert await otp(api, await api.harness.code_for(email), email) == 200


async def logs(api: Api, path: str = "/logs", **params: Any) -> Any:
    answer = await api.call("GET", path, params=params)
    assert answer.status_code == 200, answer.text
    return answer.json()


async def test_a_login_shows_in_the_logs_in_auth0s_shape(api: Api) -> None:
    await login(api)
    newest = await logs(api)
    success = next(e for e in newest if e["type"] == "s")
    assert success["user_name"] == EMAIL and success["client_id"] == NATIVE_ID
    assert success["strategy"] == "email" and success["strategy_type"] == "passwordless"
    assert success["connection"] == "email"
    assert re.fullmatch(r"con_[A-Za-z0-9]{16}", success["connection_id"])  # Auth0's id shape
    assert success["hostname"] == "127.0.0.1" and success["_id"] == success["log_id"]
    one = await logs(api, f"/logs/{success['log_id']}")
    assert one == success
    dates = [e["date"] for e in newest]
    assert dates == sorted(dates, reverse=True)  # newest first by default
    oldest = await logs(api, sort="date:1")
    assert [e["log_id"] for e in oldest] == [e["log_id"] for e in reversed(newest)]


async def test_q_and_search_find_events(api: Api) -> None:
    await login(api)
    await login(api, "bob@acme.example")
    successes = await logs(api, q="type:s")
    assert len(successes) == 2 and {e["type"] for e in successes} == {"s"}
    assert await logs(api, search='type:"s"') == successes  # the Fern SDKs send search
    bob = await logs(api, q='type:s AND user_name:"bob@acme.example"')
    assert [e["user_name"] for e in bob] == ["bob@acme.example"]
    by_strategy = await logs(api, q="strategy:email AND type:s*", include_totals="true")
    assert by_strategy["total"] >= 2 and all(e["strategy"] == "email" for e in by_strategy["logs"])
    answer = await api.call("GET", "/logs", params={"q": "type:s?"})
    assert (answer.status_code, answer.json()["errorCode"]) == (400, "invalid_query_string")


async def test_pages_totals_and_a_users_own_logs(api: Api) -> None:
    await login(api)
    await login(api, "bob@acme.example")
    page = await logs(api, page=0, per_page=2, include_totals="true")
    assert (page["start"], page["limit"], page["length"]) == (0, 2, 2)
    assert page["total"] >= 4 and len(page["logs"]) == 2
    [user] = (await api.call("GET", "/users-by-email", params={"email": EMAIL})).json()
    own = await logs(api, f"/users/{user['user_id']}/logs", include_totals="true")
    assert own["total"] == len(own["logs"]) >= 1
    assert {e["user_id"] for e in own["logs"]} == {user["user_id"]}


async def test_checkpoints_read_forward_with_a_next_link(api: Api) -> None:
    await login(api)
    first = await api.call("GET", "/logs", params={"from": "", "take": 2})
    assert first.status_code == 200
    events = first.json()
    assert len(events) == 2 and events[0]["log_id"] < events[1]["log_id"]
    link = first.headers["link"]
    assert f"from={events[-1]['log_id']}&take=2" in link and link.endswith('rel="next"')
    rest = await logs(api, **{"from": events[-1]["log_id"], "take": 100})
    assert all(e["log_id"] > events[-1]["log_id"] for e in rest)
    last = await api.call("GET", "/logs", params={"from": rest[-1]["log_id"]})
    assert last.json() == [] and f"from={rest[-1]['log_id']}" in last.headers["link"]


@pytest.mark.parametrize(
    ("path", "params", "status", "code"),
    [
        ("/logs/00000000000000999999", {}, 404, "inexistent_log"),
        ("/logs/not-a-log", {}, 404, "inexistent_log"),
        ("/logs", {"from": "x1"}, 400, "invalid_query_string"),
        ("/logs", {"per_page": "101"}, 400, "invalid_query_string"),
        ("/logs", {"page": "10", "per_page": "100"}, 400, "invalid_query_string"),
        ("/logs", {"sort": "type:1"}, 400, "invalid_query_string"),
    ],
)
async def test_log_refusals(
    api: Api, path: str, params: dict[str, str], status: int, code: str
) -> None:
    answer = await api.call("GET", path, params=params)
    assert (answer.status_code, answer.json()["errorCode"]) == (status, code)


async def test_logs_need_a_log_scope(api: Api) -> None:
    answer = await api.call("GET", "/logs", scopes=["read:users"])
    assert answer.status_code == 403
    assert answer.json()["message"] == (
        "Insufficient scope, expected any of: read:logs, read:logs_users"
    )


# --- user blocks --------------------------------------------------------------------------


async def blocked_for(api: Api, path: str, **params: str) -> list[dict[str, Any]]:
    answer = await api.call("GET", path, params=params)
    assert answer.status_code == 200, answer.text
    found: list[dict[str, Any]] = answer.json()["blocked_for"]
    return found


async def test_a_full_failure_window_is_a_block_that_an_admin_clears(database_url: str) -> None:
    async with management_app(database_url, limits={"start_per_identity_per_10min": 50}) as api:
        await _block_then_clear(api)


async def _block_then_clear(api: Api) -> None:
    await login(api)
    [user] = (await api.call("GET", "/users-by-email", params={"email": EMAIL})).json()
    assert await blocked_for(api, "/user-blocks", identifier=EMAIL) == []
    start = {"client_id": NATIVE_ID, "connection": "email", "email": EMAIL, "send": "code"}
    for n in range(10):  # the default window: 10 failures in 15 minutes
        if n % 3 == 0:  # a code takes 3 guesses: fresh ones keep the failures coming
            assert (await api.harness.start(start)).status_code == 200
        assert await otp(api, "000000") == 403
    assert await otp(api, "000000") == 429  # blocked
    block = [{"identifier": EMAIL, "connection": "email"}]
    assert await blocked_for(api, "/user-blocks", identifier=EMAIL.upper()) == block
    assert await blocked_for(api, f"/user-blocks/{user['user_id']}") == block
    types = [e["type"] for e in await logs(api, per_page=100)]
    assert types.count("limit_wc") == 1

    cleared = await api.call("DELETE", "/user-blocks", params={"identifier": EMAIL})
    assert cleared.status_code == 204
    assert await blocked_for(api, "/user-blocks", identifier=EMAIL) == []
    assert [e["type"] for e in await logs(api)][:2] == ["sapi", "ublkdu"]
    await login(api)  # signs in again at once
    again = await api.call("DELETE", f"/user-blocks/{user['user_id']}")
    assert again.status_code == 204  # nothing to clear is no error


@pytest.mark.parametrize(
    ("method", "path", "params", "status", "code"),
    [
        ("GET", "/user-blocks", {}, 400, "invalid_query_string"),
        ("DELETE", "/user-blocks", {}, 400, "invalid_query_string"),
        ("GET", "/user-blocks/email%7Cnobody", {}, 404, "inexistent_user"),
        ("DELETE", "/user-blocks/email|nobody", {}, 404, "inexistent_user"),
    ],
)
async def test_user_block_refusals(
    api: Api, method: str, path: str, params: dict[str, str], status: int, code: str
) -> None:
    answer = await api.call(method, path, params=params)
    assert (answer.status_code, answer.json()["errorCode"]) == (status, code)


async def test_clearing_blocks_needs_update_users(api: Api) -> None:
    answer = await api.call(
        "DELETE", "/user-blocks", params={"identifier": EMAIL}, scopes=["read:users"]
    )
    assert answer.status_code == 403
    assert answer.json()["message"] == "Insufficient scope, expected any of: update:users"
