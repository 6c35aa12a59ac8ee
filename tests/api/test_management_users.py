"""The users endpoints of the Management API (docs/specs/management-api.md §3.1-§3.7, §3.9):
the user object, create, read, update, delete, users-by-email, the list and a user's
sessions and refresh tokens; every refusal writes nothing. On SQLite and PostgreSQL."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
import pytest
from sqlalchemy import text

from nopass.core.models import PASSWORDLESS_OTP_GRANT
from tests.support.config import NATIVE_ID
from tests.support.management import Api, management_app

ISO_MS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
EMAIL = "ada@acme.example"
PHONE = "+15005550006"


@pytest.fixture
async def api(database_url: str) -> AsyncIterator[Api]:
    async with management_app(database_url) as api:
        yield api


async def create(api: Api, **body: Any) -> dict[str, Any]:
    response = await api.call("POST", "/users", json={"connection": "email", **body})
    assert response.status_code == 201, response.text
    result: dict[str, Any] = response.json()
    return result


async def refused(api: Api, method: str, path: str, body: Any, status: int, code: str) -> str:
    """The refusal's message, after checking that it changed nothing."""
    before = await api.harness.rows("SELECT user_id, profile, app_metadata, updated_at FROM users")
    audits = await api.harness.count("audit_events")
    response = await api.call(method, path, json=body)
    assert response.status_code == status, response.text
    answer = response.json()
    assert answer["statusCode"] == status and answer["errorCode"] == code, answer
    after = await api.harness.rows("SELECT user_id, profile, app_metadata, updated_at FROM users")
    assert after == before
    assert await api.harness.count("audit_events") == audits
    message: str = answer["message"]
    return message


# --- create and the user object ---------------------------------------------------------


async def test_create_an_email_user(api: Api) -> None:
    user = await create(
        api,
        email="Ada@ACME.example",
        given_name="Ada",
        family_name="Lovelace",
        app_metadata={"plan": "gold"},
    )
    local = user["user_id"].removeprefix("email|")
    assert re.fullmatch(r"[0-9a-f]{24}", local)
    assert user["email"] == EMAIL and user["email_verified"] is False
    assert user["name"] == EMAIL and user["nickname"] == "ada"
    assert user["given_name"] == "Ada" and user["family_name"] == "Lovelace"
    assert user["identities"] == [
        {"connection": "email", "user_id": local, "provider": "email", "isSocial": False}
    ]
    assert ISO_MS.match(user["created_at"]) and user["updated_at"] == user["created_at"]
    assert user["blocked"] is False
    assert user["app_metadata"] == {"plan": "gold"}
    for absent in ("user_metadata", "last_login", "logins_count", "last_ip", "phone_number"):
        assert absent not in user
    assert None not in user.values()
    # the same object comes back from GET, by the raw id and percent-encoded
    for path in (f"/users/{user['user_id']}", f"/users/email%7C{local}"):
        response = await api.call("GET", path)
        assert response.status_code == 200
        assert response.json() == user


async def test_create_an_sms_user_with_a_kept_user_id(api: Api) -> None:
    user = await create(
        api, connection="sms", phone_number=PHONE, user_id="legacy-42", phone_verified=True
    )
    assert user["user_id"] == "sms|legacy-42"
    assert user["phone_number"] == PHONE and user["phone_verified"] is True
    assert user["identities"][0] == {
        "connection": "sms",
        "user_id": "legacy-42",
        "provider": "sms",
        "isSocial": False,
    }
    body = {"connection": "sms", "phone_number": "+15005550007", "user_id": "legacy-42"}
    message = await refused(api, "POST", "/users", body, 409, "auth0_idp_error")
    assert message == "The user already exists."


async def test_create_conflicts_stay_the_same(api: Api) -> None:
    await create(api, email=EMAIL)
    for _ in range(2):  # Python v6 retries a 409: the answer must not change
        message = await refused(
            api,
            "POST",
            "/users",
            {"connection": "email", "email": "ADA@acme.example"},
            409,
            "auth0_idp_error",
        )
        assert message == "The user already exists."


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"connection": "nope", "email": EMAIL}, "inexistent_connection"),
        ({"connection": "legacy-db", "email": EMAIL}, "invalid_body"),
        ({"email": EMAIL}, "invalid_body"),
        ({"connection": "email"}, "invalid_body"),
        ({"connection": "email", "email": "not-an-address"}, "invalid_body"),
        ({"connection": "email", "email": EMAIL, "phone_number": PHONE}, "invalid_body"),
        ({"connection": "email", "email": EMAIL, "password": "hunter22"}, "invalid_body"),
        ({"connection": "email", "email": EMAIL, "username": "ada"}, "invalid_body"),
        ({"connection": "email", "email": EMAIL, "verify_email": True}, "invalid_body"),
        ({"connection": "email", "email": EMAIL, "favourite": 1}, "invalid_body"),
        ({"connection": "email", "email": EMAIL, "blocked": "yes"}, "invalid_body"),
        ({"connection": "email", "email": EMAIL, "app_metadata": []}, "invalid_body"),
        ({"connection": "email", "email": EMAIL, "name": ""}, "invalid_body"),
        ({"connection": "email", "email": EMAIL, "name": "n" * 151}, "invalid_body"),
        ({"connection": 7, "email": EMAIL}, "invalid_body"),
        ({"connection": "sms", "phone_number": "5550006"}, "invalid_body"),
        ({"connection": "sms", "phone_number": PHONE, "email": EMAIL}, "invalid_body"),
        ({"connection": "sms", "phone_number": PHONE, "email_verified": True}, "invalid_body"),
        ({"connection": "sms"}, "invalid_body"),
        ({"connection": "email", "email": EMAIL, "user_id": "x" * 70}, "invalid_body"),
    ],
)
async def test_create_refusals(api: Api, body: dict[str, Any], code: str) -> None:
    await refused(api, "POST", "/users", body, 400, code)
    assert await api.harness.count("users") == 0


async def test_unknown_user_is_404(api: Api) -> None:
    response = await api.call("GET", "/users/email|0123456789abcdef01234567")
    assert response.status_code == 404
    assert response.json() == {
        "statusCode": 404,
        "error": "Not Found",
        "message": "The user does not exist.",
        "errorCode": "inexistent_user",
    }


async def test_fields_and_include_fields(api: Api) -> None:
    user = await create(api, email=EMAIL)
    path = f"/users/{user['user_id']}"
    only = (await api.call("GET", f"{path}?fields=user_id,email&include_fields=true")).json()
    assert only == {"user_id": user["user_id"], "email": EMAIL}
    rest = (await api.call("GET", f"{path}?fields=identities,picture&include_fields=false")).json()
    assert "identities" not in rest and "picture" not in rest and rest["email"] == EMAIL


# --- update -----------------------------------------------------------------------------


async def test_patch_replaces_attributes_and_merges_metadata(api: Api) -> None:
    user = await create(
        api, email=EMAIL, name="Ada", user_metadata={"profileCode": 1479, "color": "red"}
    )
    path = f"/users/{user['user_id']}"
    response = await api.call(
        "PATCH",
        path,
        json={
            "user_metadata": {"addresses": {"work": "100 Industrial Way"}, "color": None},
            "app_metadata": {"plan": "gold"},
            "nickname": "countess",
            "name": None,
            "blocked": True,
        },
    )
    assert response.status_code == 200, response.text
    patched = response.json()
    assert patched["user_metadata"] == {
        "profileCode": 1479,
        "addresses": {"work": "100 Industrial Way"},
    }
    assert patched["app_metadata"] == {"plan": "gold"}
    assert patched["nickname"] == "countess" and "name" not in patched
    assert patched["blocked"] is True
    assert patched["updated_at"] >= user["updated_at"]
    assert patched["user_id"] == user["user_id"]
    # a nested object is replaced, not merged
    patched = (
        await api.call("PATCH", path, json={"user_metadata": {"addresses": {"home": "1 Lane"}}})
    ).json()
    assert patched["user_metadata"]["addresses"] == {"home": "1 Lane"}
    # {} and null clear the metadata
    cleared = await api.call("PATCH", path, json={"user_metadata": {}, "app_metadata": None})
    assert cleared.status_code == 200
    assert "user_metadata" not in cleared.json() and "app_metadata" not in cleared.json()
    assert (await api.call("GET", path)).json() == cleared.json()


async def test_patch_bumps_updated_at(api: Api) -> None:
    user = await create(api, email=EMAIL)
    path = f"/users/{user['user_id']}"
    async with api.harness.engine.begin() as conn:
        await conn.execute(
            text("UPDATE users SET updated_at = :t"),
            {"t": datetime.now(UTC) - timedelta(hours=1)},
        )
    patched = (await api.call("PATCH", path, json={"given_name": "Ada"})).json()
    updated = datetime.fromisoformat(patched["updated_at"].replace("Z", "+00:00"))
    assert updated > datetime.now(UTC) - timedelta(minutes=5)


async def test_email_change_keeps_user_id_and_clashes_409(api: Api) -> None:
    ada = await create(api, email=EMAIL, email_verified=True)
    await create(api, email="grace@acme.example")
    path = f"/users/{ada['user_id']}"
    response = await api.call("PATCH", path, json={"email": "Countess@acme.example"})
    assert response.status_code == 200
    changed = response.json()
    assert changed["user_id"] == ada["user_id"]
    assert changed["email"] == "countess@acme.example" and changed["email_verified"] is False
    assert changed["name"] == EMAIL  # name is an attribute of its own
    by_email = await api.call("GET", "/users-by-email?email=countess@acme.example")
    assert [u["user_id"] for u in by_email.json()] == [ada["user_id"]]
    message = await refused(api, "PATCH", path, {"email": "grace@acme.example"}, 409, "user_exists")
    assert message == "The specified new email already exists"


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({}, 400, "invalid_body"),
        ({"password": "x"}, 400, "invalid_body"),
        ({"username": "ada"}, 400, "invalid_body"),
        ({"verify_email": True}, 400, "invalid_body"),
        ({"phone_number": PHONE}, 400, "invalid_body"),
        ({"email": None}, 400, "invalid_body"),
        ({"email": "nope"}, 400, "invalid_body"),
        ({"blocked": None}, 400, "invalid_body"),
        ({"name": 5}, 400, "invalid_body"),
        ({"connection": "sms"}, 400, "invalid_body"),
        ({"shoe_size": 9}, 400, "invalid_body"),
    ],
)
async def test_patch_refusals(api: Api, body: dict[str, Any], status: int, code: str) -> None:
    user = await create(api, email=EMAIL)
    await refused(api, "PATCH", f"/users/{user['user_id']}", body, status, code)


async def test_patch_refusals_of_sms_users_and_unknown_users(api: Api) -> None:
    user = await create(api, connection="sms", phone_number=PHONE)
    path = f"/users/{user['user_id']}"
    await refused(api, "PATCH", path, {"email_verified": True}, 400, "invalid_body")
    await refused(api, "PATCH", path, {"email": EMAIL}, 400, "invalid_body")
    await refused(api, "PATCH", "/users/sms|nobody", {"name": "x"}, 404, "inexistent_user")


async def test_metadata_scope_changes_metadata_only(api: Api) -> None:
    user = await create(api, email=EMAIL)
    path = f"/users/{user['user_id']}"
    scopes = ["update:users_app_metadata"]
    response = await api.call("PATCH", path, scopes=scopes, json={"app_metadata": {"a": 1}})
    assert response.status_code == 200
    response = await api.call("PATCH", path, scopes=scopes, json={"name": "x"})
    assert response.status_code == 403
    assert response.json()["message"] == "Insufficient scope, expected any of: update:users"
    assert (await api.call("GET", path)).json()["name"] == EMAIL


# --- delete, sessions, refresh tokens ---------------------------------------------------


async def seed_grants(api: Api, user_id: str) -> None:
    """A session, a refresh token and a failure window of the user, as sign-ins leave them."""
    [tenant] = await api.harness.rows("SELECT id FROM tenants")
    [connection] = await api.harness.rows("SELECT id FROM connections WHERE name = 'email'")
    now = datetime.now(UTC)
    params = {"t": tenant["id"], "u": user_id, "now": now, "later": now + timedelta(days=1)}
    async with api.harness.engine.begin() as conn:
        for n in range(2):
            await conn.execute(
                text(
                    "INSERT INTO sessions (id, tenant_id, token_hash, user_id, created_at,"
                    " expires_at) VALUES (:id, :t, :h, :u, :now, :later)"
                ),
                {**params, "id": f"s{n}{user_id[-6:]}", "h": f"h{n}{user_id}"},
            )
            await conn.execute(
                text(
                    "INSERT INTO refresh_tokens (id, tenant_id, token_hash, family_id, client_id,"
                    " user_id, scope, created_at) VALUES (:id, :t, :h, :id, 'c', :u,"
                    " 'openid', :now)"
                ),
                {**params, "id": f"r{n}{user_id[-6:]}", "h": f"rh{n}{user_id}"},
            )
        await conn.execute(
            text(
                "INSERT INTO failure_windows (tenant_id, connection_id, identifier,"
                " window_start, failures) VALUES (:t, :c, :i, :now, 3)"
            ),
            {**params, "c": connection["id"], "i": EMAIL},
        )


async def test_delete_removes_the_user_and_everything_it_holds(api: Api) -> None:
    ada = await create(api, email=EMAIL)
    await create(api, email="grace@acme.example")
    await seed_grants(api, ada["user_id"])
    response = await api.call("DELETE", f"/users/{ada['user_id']}")
    assert response.status_code == 204 and response.content == b""
    assert (await api.call("GET", f"/users/{ada['user_id']}")).status_code == 404
    for table in ("sessions", "refresh_tokens", "failure_windows"):
        assert await api.harness.count(table) == 0, table
    assert await api.harness.count("users") == 1  # grace stays
    [sdu] = await api.harness.rows("SELECT * FROM audit_events WHERE type = 'sdu'")
    assert sdu["user_id"] == ada["user_id"] and sdu["connection"] == "email"
    # an unknown user: 204 all the same
    again = await api.call("DELETE", f"/users/{ada['user_id']}")
    assert again.status_code == 204
    assert await api.harness.count("audit_events", "type = 'sdu'") == 1


async def test_delete_sessions_and_refresh_tokens(api: Api) -> None:
    ada = await create(api, email=EMAIL)
    await seed_grants(api, ada["user_id"])
    path = f"/users/{ada['user_id']}"
    response = await api.call("DELETE", f"{path}/sessions")
    assert response.status_code == 202
    assert await api.harness.count("sessions") == 0
    assert await api.harness.count("refresh_tokens") == 2
    response = await api.call("DELETE", f"{path}/refresh-tokens")
    assert response.status_code == 202
    assert await api.harness.count("refresh_tokens") == 0
    for tail in ("sessions", "refresh-tokens"):
        response = await api.call("DELETE", f"/users/email|nobody/{tail}")
        assert response.status_code == 404
        assert response.json()["errorCode"] == "inexistent_user"
    response = await api.call("DELETE", f"{path}/sessions", scopes=["delete:users"])
    assert response.json()["message"] == "Insufficient scope, expected any of: delete:sessions"


async def test_blocking_a_user_ends_its_sessions_and_refresh_tokens(api: Api) -> None:
    ada = await create(api, email=EMAIL)
    await seed_grants(api, ada["user_id"])
    response = await api.call("PATCH", f"/users/{ada['user_id']}", json={"blocked": True})
    assert response.status_code == 200
    assert await api.harness.count("sessions") == 0
    assert await api.harness.count("refresh_tokens") == 0


# --- users-by-email and the list --------------------------------------------------------


async def test_users_by_email(api: Api) -> None:
    ada = await create(api, email=EMAIL)
    await create(api, email="grace@acme.example")
    response = await api.call("GET", "/users-by-email?email=ADA@acme.example&fields=user_id")
    assert response.json() == [{"user_id": ada["user_id"]}]
    assert (await api.call("GET", "/users-by-email?email=nobody@acme.example")).json() == []
    response = await api.call("GET", "/users-by-email")
    assert response.status_code == 400
    assert response.json()["errorCode"] == "invalid_query_string"


async def test_list_pages_sorts_and_counts(api: Api) -> None:
    made = [await create(api, email=f"user{n}@acme.example", name=f"n{9 - n}") for n in range(5)]
    ids = [u["user_id"] for u in made]
    plain = (await api.call("GET", "/users")).json()
    assert [u["user_id"] for u in plain] == ids  # created_at, then user_id
    page = (await api.call("GET", "/users?page=1&per_page=2&include_totals=true")).json()
    assert {k: v for k, v in page.items() if k != "users"} == {
        "start": 2,
        "limit": 2,
        "length": 2,
        "total": 5,
    }
    assert [u["user_id"] for u in page["users"]] == ids[2:4]
    past = (await api.call("GET", "/users?page=9&per_page=2&include_totals=true")).json()
    assert past["users"] == [] and past["total"] == 5 and past["length"] == 0
    by_name = (await api.call("GET", "/users?sort=name:1&fields=name")).json()
    assert by_name == [{"name": f"n{n}"} for n in range(5, 10)]
    newest = (await api.call("GET", "/users?sort=created_at:-1&per_page=1")).json()
    assert [u["user_id"] for u in newest] == ids[-1:]
    full = (await api.call("GET", "/users?page=9&per_page=100")).status_code
    assert full == 200  # (9+1)*100 = 1000: still within the cap


async def test_list_searches_with_q_as_the_sdks_send_it(api: Api) -> None:
    ada = await create(api, email=EMAIL, name="Ada Lovelace", app_metadata={"roles": ["admin"]})
    await create(api, email="bob@other.example", name="Bob")
    query = {"q": 'email:"ada@acme.example"', "search_engine": "v3", "include_totals": "true"}
    found = (await api.call("GET", "/users", params=query)).json()
    assert found["total"] == 1 and [u["user_id"] for u in found["users"]] == [ada["user_id"]]
    for q in ("app_metadata.roles:admin", "email.domain:acme.example", r"name:Ada\ Lovelace"):
        got = (await api.call("GET", "/users", params={"q": q})).json()
        assert [u["user_id"] for u in got] == [ada["user_id"]], q
    everyone = (await api.call("GET", "/users", params={"q": "NOT blocked:true"})).json()
    assert len(everyone) == 2


@pytest.mark.parametrize(
    ("params", "needle"),
    [
        ({"q": "name:ada~"}, "~"),
        ({"q": "shoe_size:9"}, "shoe_size"),
        ({"sort": "app_metadata.roles:1"}, "app_metadata"),
        ({"sort": "shoe_size:1"}, "shoe_size"),
    ],
)
async def test_list_refuses_what_the_search_cannot_do(
    api: Api, params: dict[str, str], needle: str
) -> None:
    answer = await api.call("GET", "/users", params=params)
    assert answer.status_code == 400
    body = answer.json()
    assert body["errorCode"] == "invalid_query_string" and needle in body["message"]


# --- the Authentication API shows what the Management API set ---------------------------


async def test_id_tokens_show_the_profile_and_a_login_verifies(api: Api) -> None:
    user = await create(api, email=EMAIL, given_name="Ada", nickname="countess")
    client = api.harness.client
    start = {"client_id": NATIVE_ID, "connection": "email", "email": EMAIL, "send": "code"}
    assert (await api.harness.start(start)).status_code == 200
    code = await api.harness.code_for(EMAIL)
    response = await client.post(
        "/oauth/token",
        json={
            "grant_type": PASSWORDLESS_OTP_GRANT,
            "client_id": NATIVE_ID,
            "username": EMAIL,
            "otp": code,
            "realm": "email",
            "scope": "openid profile email",
        },
    )
    assert response.status_code == 200, response.text
    claims = jwt.decode(response.json()["id_token"], options={"verify_signature": False})
    assert claims["sub"] == user["user_id"]
    assert claims["given_name"] == "Ada" and claims["nickname"] == "countess"
    assert claims["email_verified"] is True
    after = (await api.call("GET", f"/users/{user['user_id']}")).json()
    assert after["email_verified"] is True and after["logins_count"] == 1
    assert ISO_MS.match(after["last_login"]) and after["last_ip"] == "203.0.113.7"


async def test_list_a_users_sessions_and_refresh_tokens_by_checkpoint(api: Api) -> None:
    ada = await create(api, email=EMAIL)
    await seed_grants(api, ada["user_id"])
    path = f"/users/{ada['user_id']}"
    first = (await api.call("GET", f"{path}/sessions?take=1&include_totals=true")).json()
    assert set(first) == {"sessions", "next"}
    [session] = first["sessions"]
    assert session["user_id"] == ada["user_id"]
    assert ISO_MS.match(session["created_at"]) and ISO_MS.match(session["expires_at"])
    last = (await api.call("GET", f"{path}/sessions?take=1&from={first['next']}")).json()
    assert "next" not in last and len(last["sessions"]) == 1
    assert last["sessions"][0]["id"] != session["id"]
    tokens = (await api.call("GET", f"{path}/refresh-tokens")).json()
    assert set(tokens) == {"tokens"} and len(tokens["tokens"]) == 2
    assert {t["client_id"] for t in tokens["tokens"]} == {"c"}
    assert all("token_hash" not in t for t in tokens["tokens"])
    for tail in ("sessions", "refresh-tokens"):
        response = await api.call("GET", f"/users/email|nobody/{tail}")
        assert response.status_code == 404
        response = await api.call("GET", f"{path}/{tail}?take=101")
        assert response.json()["errorCode"] == "invalid_query_string"
    response = await api.call("GET", f"{path}/sessions", scopes=["read:users"])
    assert response.json()["message"] == "Insufficient scope, expected any of: read:sessions"
