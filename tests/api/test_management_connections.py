"""The connections endpoints of the Management API (docs/specs/management-api.md §5.0, §5.2):
the connection object, filters and both pagings, create, options replaced wholesale and
validated, opaque option keys kept, enabled clients both ways, delete with its users, and
that the result is the tenant's ``nopass apply`` configuration. Every refusal writes
nothing. On SQLite and PostgreSQL."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest

from nopass.config_file import parse_config
from nopass.core.models import PASSWORDLESS_OTP_GRANT
from nopass.store.apply import apply_config
from nopass.store.config_document import read_document
from tests.support import management
from tests.support.config import NATIVE_ID, WEB_ID
from tests.support.management import Api, management_app, management_config

EMAIL = "ada@acme.example"
CON_ID = re.compile(r"^con_[A-Za-z0-9]{16}$")
ISO_MS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


@pytest.fixture
async def api(database_url: str) -> AsyncIterator[Api]:
    async with management_app(database_url) as api:
        yield api


async def create(api: Api, **body: Any) -> dict[str, Any]:
    response = await api.call("POST", "/connections", json=body)
    assert response.status_code == 201, response.text
    result: dict[str, Any] = response.json()
    return result


async def by_name(api: Api, name: str) -> dict[str, Any]:
    [found] = (await api.call("GET", "/connections", params={"name": name})).json()
    assert isinstance(found, dict)
    return found


async def stored(api: Api) -> list[dict[str, Any]]:
    return await api.harness.rows(
        "SELECT id, name, strategy, options, settings FROM connections ORDER BY name"
    )


UNCHANGED = (
    "SELECT id, name, strategy, options, settings FROM connections ORDER BY name",
    "SELECT * FROM connection_clients ORDER BY 1, 2, 3",
)


async def refused(api: Api, method: str, path: str, body: Any, status: int, code: str) -> str:
    return await management.refused(api, method, path, body, status, code, unchanged=UNCHANGED)


# --- the object and the lists -------------------------------------------------------------


async def test_the_tenants_connections_in_auth0s_shape(api: Api) -> None:
    answer = await api.call("GET", "/connections")
    assert answer.status_code == 200
    listed = answer.json()
    assert [c["name"] for c in listed] == ["email", "legacy-db", "sms"]
    email = listed[0]
    assert list(email) == [
        "id",
        "name",
        "strategy",
        "options",
        "enabled_clients",
        "is_domain_connection",
        "realms",
    ]
    assert CON_ID.match(email["id"]) and email["strategy"] == "email"
    assert (
        email["enabled_clients"] == sorted([NATIVE_ID, WEB_ID])
        and email["is_domain_connection"] is False
    )
    assert email["realms"] == ["email"]
    assert email["options"]["totp"] == {"length": 6, "time_step": 180}
    one = await api.call("GET", f"/connections/{email['id']}")
    assert one.json() == email
    only = await api.call("GET", f"/connections/{email['id']}?fields=id,name")
    assert only.json() == {"id": email["id"], "name": "email"}
    but = await api.call("GET", f"/connections/{email['id']}?fields=options&include_fields=false")
    assert "options" not in but.json() and but.json()["name"] == "email"
    missing = await api.call("GET", "/connections/con_AAAAAAAAAAAAAAAA")
    assert missing.status_code == 404
    assert missing.json()["errorCode"] == "inexistent_connection"


async def test_filters_by_strategy_and_name(api: Api) -> None:
    async def names(params: Any) -> list[str]:
        answer = await api.call("GET", "/connections", params=params)
        assert answer.status_code == 200, answer.text
        return [c["name"] for c in answer.json()]

    assert await names({"strategy": "sms"}) == ["sms"]
    assert await names({"strategy": "email,sms"}) == ["email", "sms"]
    assert await names([("strategy", "email"), ("strategy", "auth0")]) == ["email", "legacy-db"]
    assert await names({"name": "sms"}) == ["sms"]
    assert await names({"name": "SMS"}) == []  # exact
    assert await names({"name": "sms", "strategy": "email"}) == []


async def test_offset_pages(api: Api) -> None:
    for n in range(3):
        await create(api, name=f"extra-{n}", strategy="email")
    first = (await api.call("GET", "/connections?per_page=2&include_totals=true")).json()
    assert set(first) == {"total", "start", "limit", "connections"}  # no length (§1.4)
    assert (first["total"], first["start"], first["limit"]) == (6, 0, 2)
    second = (await api.call("GET", "/connections?page=1&per_page=2&include_totals=true")).json()
    assert second["start"] == 2
    seen = [c["name"] for c in first["connections"] + second["connections"]]
    assert seen == ["email", "extra-0", "extra-1", "extra-2"]
    past = (await api.call("GET", "/connections?page=9&per_page=2&include_totals=true")).json()
    assert past["connections"] == [] and past["total"] == 6
    bad = await api.call("GET", "/connections?per_page=101")
    assert bad.status_code == 400 and bad.json()["errorCode"] == "invalid_query_string"


async def test_checkpoint_pages_win_over_include_totals(api: Api) -> None:
    names: list[str] = []
    params: dict[str, Any] = {"take": 2, "include_totals": "true"}  # as Node v6/v7 send it
    for _ in range(3):
        page = (await api.call("GET", "/connections", params=params)).json()
        assert set(page) <= {"connections", "next"}
        names += [c["name"] for c in page["connections"]]
        if "next" not in page:
            break
        params = {"take": 2, "from": page["next"]}
    assert names == ["email", "legacy-db", "sms"] and "next" not in page
    # deploy-cli's look-up of a connection it created
    found = await api.call("GET", "/connections?name=sms&take=1&include_fields=true")
    assert [c["name"] for c in found.json()["connections"]] == ["sms"]
    bad = await api.call("GET", "/connections?take=2&from=%%%")
    assert bad.status_code == 400 and bad.json()["errorCode"] == "invalid_query_string"


async def test_directory_provisionings_are_none(api: Api) -> None:
    answer = await api.call("GET", "/connections-directory-provisionings?take=50")
    assert answer.status_code == 200 and answer.json() == {"directory_provisionings": []}


# --- create, change, validation -----------------------------------------------------------


SMS_OPTIONS = {
    "name": "text-me",  # Auth0's own keys nopass does not interpret: kept as given
    "upstream_params": {"screen_name": {"alias": "login_hint"}},
    "from": "+15550001234",
    "syntax": "md_with_macros",
    "template": "Your code is @@password@@",
    "totp": {"length": 8, "time_step": 300},
    "provider": "sms_gateway",
    "gateway_url": "https://sms.acme.example/send",
    "gateway_authentication": {
        "method": "bearer",
        "subject": "acme:sms",
        "audience": "sms.acme.example",
        "secret": "gateway-secret-value",
        "secret_base64_encoded": False,
    },
    "forward_req_info": True,
    "disable_signup": True,
    "brute_force_protection": True,
}


async def test_create_an_sms_connection(api: Api) -> None:
    created = await create(
        api,
        name="text-me",
        strategy="sms",
        options=SMS_OPTIONS,
        enabled_clients=[NATIVE_ID],
        display_name="Text me",
        metadata={"team": "growth"},
    )
    assert CON_ID.match(created["id"])
    assert created["name"] == "text-me" and created["strategy"] == "sms"
    assert created["display_name"] == "Text me" and created["metadata"] == {"team": "growth"}
    assert created["realms"] == ["text-me"] and created["is_domain_connection"] is False
    assert created["enabled_clients"] == [NATIVE_ID]
    assert created["options"] == SMS_OPTIONS
    assert (await api.call("GET", f"/connections/{created['id']}")).json() == created
    # the secret is stored (the server sends with it) but never in the audit event
    [event] = await api.harness.rows(
        "SELECT description, details, connection FROM audit_events WHERE type = 'sapi'"
    )
    assert event["description"] == "Create a connection" and event["connection"] == "text-me"
    assert "gateway-secret-value" not in json.dumps(event, default=str)
    [link] = await api.harness.rows(
        f"SELECT client_id FROM connection_clients WHERE connection_id = '{created['id']}'"  # noqa: S608
    )
    assert link["client_id"] == NATIVE_ID


async def test_options_are_replaced_wholesale(api: Api) -> None:
    created = await create(api, name="text-me", strategy="sms", options=SMS_OPTIONS)
    path = f"/connections/{created['id']}"
    new = {"provider": "outbox", "totp": {"length": 7}, "custom_flag": "kept"}
    answer = await api.call("PATCH", path, json={"options": new, "is_domain_connection": True})
    assert answer.status_code == 200, answer.text
    options = answer.json()["options"]
    assert options["provider"] == "outbox" and options["custom_flag"] == "kept"
    assert options["totp"] == {"length": 7, "time_step": 180}  # the default, not the old 300
    for gone in ("gateway_url", "gateway_authentication", "name", "upstream_params", "from"):
        assert gone not in options
    assert options["disable_signup"] is False  # back to the default: nothing was merged
    assert answer.json()["is_domain_connection"] is True
    # name and strategy may be repeated, not changed; realms and metadata are kept
    same = {"name": "text-me", "strategy": "sms", "realms": ["texts"]}
    again = await api.call("PATCH", path, json=same)
    assert again.status_code == 200 and again.json()["realms"] == ["texts"]
    assert again.json()["options"] == options


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ({"options": {"totp": {"length": 2}}}, "options.totp.length"),
        ({"options": {"totp": {"length": 6, "digits": 6}}}, "options.totp.digits: unknown key"),
        ({"options": {"provider": "carrier-pigeon"}}, "options.provider"),
        ({"options": {"provider": "sms_gateway"}}, "options.gateway_url"),
        ({"options": {"provider": "twilio", "twilio_sid": "AC1"}}, "options.twilio_token"),
        ({"options": {"template": "{% if %}"}}, "options.template"),
        ({"options": "fast"}, "options: must be an object"),
        ({"enabled_clients": ["nobody"]}, "enabled_clients: unknown client 'nobody'"),
        ({"enabled_clients": ["Native App"]}, "unknown client 'Native App'"),  # ids only
        ({"name": "renamed"}, "name: a connection's name cannot change"),
        ({"strategy": "email"}, "strategy: a connection's strategy cannot change"),
        ({"is_domain_connection": "maybe"}, "is_domain_connection"),
        ({"colour": "blue"}, "Additional properties not allowed: colour"),
    ],
)
async def test_a_bad_change_writes_nothing(api: Api, body: dict[str, Any], needle: str) -> None:
    sms = await by_name(api, "sms")
    message = await refused(api, "PATCH", f"/connections/{sms['id']}", body, 400, "invalid_body")
    assert message.startswith("Payload validation error: ") and needle in message, message
    assert "connections[" not in message


@pytest.mark.parametrize(
    ("body", "status", "code", "needle"),
    [
        ({"strategy": "email"}, 400, "invalid_body", "Missing required property: name"),
        ({"name": "x"}, 400, "invalid_body", "Missing required property: strategy"),
        ({"name": "db", "strategy": "auth0"}, 400, "invalid_body", "'auth0' is not supported"),
        ({"name": "g", "strategy": "google-oauth2"}, 400, "invalid_body", "email, sms"),
        ({"name": "bad name", "strategy": "email"}, 400, "invalid_body", "name"),
        ({"name": "email", "strategy": "email"}, 409, "conflict", "same name already exists"),
        ({"name": "m", "strategy": "email", "realms": "m"}, 400, "invalid_body", "realms"),
        ({"name": "m", "strategy": "email", "metadata": {"a": 1}}, 400, "invalid_body", "metadata"),
        (
            {"name": "m", "strategy": "email", "display_name": 5},
            400,
            "invalid_body",
            "display_name",
        ),
        ({"name": "m", "strategy": "email", "enabled_clients": "x"}, 400, "invalid_body", "array"),
        ({"name": "m", "strategy": "sms", "options": {"totp": "six"}}, 400, "invalid_body", "totp"),
        (
            {"name": "m", "strategy": "email", "options": {"authParams": "{oops"}},
            400,
            "invalid_body",
            "options.authParams",
        ),
        (
            {"name": "m", "strategy": "email", "options": {"authParams": "[1]"}},
            400,
            "invalid_body",
            "options.authParams",
        ),
        (
            {"name": "mail", "strategy": "email", "options": {"email": {"syntax": "md"}}},
            400,
            "invalid_body",
            "options.email.syntax",
        ),
    ],
)
async def test_a_bad_create_writes_nothing(
    api: Api, body: dict[str, Any], status: int, code: str, needle: str
) -> None:
    for _ in range(2):  # a conflict stays the same on repeat (Python v6 retries 409)
        message = await refused(api, "POST", "/connections", body, status, code)
        assert needle in message, message


async def test_scopes(api: Api) -> None:
    sms = await by_name(api, "sms")
    calls: list[tuple[str, str, Any, str]] = [
        ("GET", "/connections", None, "read:connections"),
        ("GET", f"/connections/{sms['id']}/clients", None, "read:connections"),
        ("POST", "/connections", {"name": "x", "strategy": "email"}, "create:connections"),
        ("PATCH", f"/connections/{sms['id']}", {}, "update:connections"),
        ("PATCH", f"/connections/{sms['id']}/clients", [], "update:connections"),
        ("DELETE", f"/connections/{sms['id']}", None, "delete:connections"),
    ]
    for method, path, body, scope in calls:
        answer = await api.call(method, path, json=body, scopes=["read:users"])
        assert answer.status_code == 403, (method, path)
        assert answer.json()["message"] == f"Insufficient scope, expected any of: {scope}"
    assert len(await stored(api)) == 3


# --- enabled clients ----------------------------------------------------------------------


async def test_enabled_clients_both_ways(api: Api) -> None:
    sms = await by_name(api, "sms")
    path = f"/connections/{sms['id']}/clients"
    first = (await api.call("GET", f"{path}?take=1")).json()
    assert first["clients"] == [{"client_id": NATIVE_ID}] and "next" in first
    rest = (await api.call("GET", f"{path}?take=1&from={first['next']}")).json()
    assert rest == {"clients": [{"client_id": WEB_ID}]}
    changes = [
        {"client_id": "other-app-client-id", "status": True},
        {"client_id": WEB_ID, "status": False},
    ]
    answer = await api.call("PATCH", path, json=changes)
    assert answer.status_code == 204 and answer.content == b""
    after = (await api.call("GET", path)).json()
    assert after == {"clients": [{"client_id": NATIVE_ID}, {"client_id": "other-app-client-id"}]}
    # the connection object shows the same
    assert (await by_name(api, "sms"))["enabled_clients"] == [NATIVE_ID, "other-app-client-id"]
    # and so does the connection's own PATCH, the other way round
    await api.call("PATCH", f"/connections/{sms['id']}", json={"enabled_clients": [WEB_ID]})
    assert (await api.call("GET", path)).json() == {"clients": [{"client_id": WEB_ID}]}


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ([{"client_id": "nobody", "status": True}], "unknown client 'nobody'"),
        ({"client_id": NATIVE_ID, "status": True}, "array"),
        ([{"client_id": NATIVE_ID, "status": "yes"}], "status a boolean"),
        ([{"client_id": NATIVE_ID}], "client_id and status"),
        ([{"client_id": NATIVE_ID, "status": True}] * 51, "at most 50"),
    ],
)
async def test_a_bad_enabled_clients_change_writes_nothing(
    api: Api, body: Any, needle: str
) -> None:
    sms = await by_name(api, "sms")
    path = f"/connections/{sms['id']}/clients"
    message = await refused(api, "PATCH", path, body, 400, "invalid_body")
    assert needle in message, message


async def test_unknown_connections_are_404(api: Api) -> None:
    path = "/connections/con_AAAAAAAAAAAAAAAA"
    calls: list[tuple[str, str, Any]] = [
        ("GET", "/clients", None),
        ("PATCH", "/clients", []),
        ("PATCH", "", {}),
        ("DELETE", "", None),
    ]
    for method, tail, body in calls:
        answer = await api.call(method, path + tail, json=body)
        assert answer.status_code == 404, (method, tail)
        assert answer.json()["errorCode"] == "inexistent_connection"


# --- what a connection does: log in, delete with its users, apply -------------------------


async def login(api: Api, connection: str, email: str) -> dict[str, Any]:
    start = {"client_id": NATIVE_ID, "connection": connection, "email": email, "send": "code"}
    started = await api.harness.start(start)
    assert started.status_code == 200, started.text
    code = await api.harness.code_for(email)
    response = await api.harness.client.post(
        "/oauth/token",
        json={
            "grant_type": PASSWORDLESS_OTP_GRANT,
            "client_id": NATIVE_ID,
            "username": email,
            "otp": code,
            "realm": connection,
            "scope": "openid offline_access",
        },
    )
    assert response.status_code == 200, response.text
    tokens: dict[str, Any] = response.json()
    return tokens


async def test_a_created_connection_sends_a_code_and_logs_in(api: Api) -> None:
    options = {"totp": {"length": 8, "time_step": 300}}
    await create(
        api, name="work-email", strategy="email", options=options, enabled_clients=[NATIVE_ID]
    )
    await login(api, "work-email", EMAIL)
    [user] = await api.harness.rows("SELECT user_id, connection_id FROM users")
    assert user["user_id"].startswith("email|")
    code = await api.harness.code_for(EMAIL)
    assert re.fullmatch(r"[0-9]{8}", code)


async def test_delete_takes_the_connections_users_sessions_and_refresh_tokens(api: Api) -> None:
    created = await create(api, name="work-email", strategy="email", enabled_clients=[NATIVE_ID])
    await login(api, "work-email", EMAIL)
    await login(api, "email", EMAIL)  # the same person on another connection stays
    users = {r["user_id"] for r in await api.harness.rows("SELECT user_id FROM users")}
    assert len(users) == 2
    [gone] = await api.harness.rows(
        f"SELECT user_id FROM users WHERE connection_id = '{created['id']}'"  # noqa: S608
    )
    gone_id = gone["user_id"]
    [kept] = users - {gone_id}
    for table in ("sessions", "refresh_tokens"):
        rows = await api.harness.rows(f"SELECT user_id FROM {table}")  # noqa: S608
        assert {r["user_id"] for r in rows} <= users
    answer = await api.call("DELETE", f"/connections/{created['id']}")
    assert answer.status_code == 202
    assert ISO_MS.match(answer.json()["deleted_at"])
    assert (await api.call("GET", f"/connections/{created['id']}")).status_code == 404
    assert [r["user_id"] for r in await api.harness.rows("SELECT user_id FROM users")] == [kept]
    assert (await api.call("GET", f"/users/{gone_id}")).status_code == 404
    for table in ("sessions", "refresh_tokens"):
        rows = await api.harness.rows(f"SELECT user_id FROM {table}")  # noqa: S608
        assert gone_id not in {r["user_id"] for r in rows}
    assert await api.harness.count("connection_clients", f"connection_id = '{created['id']}'") == 0
    [event] = await api.harness.rows(
        "SELECT description FROM audit_events WHERE description = 'Delete a connection'"
    )
    assert event


async def test_apply_afterwards_keeps_what_the_api_made(api: Api) -> None:
    created = await create(
        api,
        name="text-me",
        strategy="sms",
        options=SMS_OPTIONS,
        enabled_clients=[NATIVE_ID],
        realms=["texts"],
    )
    engine = api.harness.engine
    # apply of the original file, without --prune, leaves the API's connection alone
    await apply_config(engine, parse_config(management_config()), now=datetime.now(UTC))
    assert (await api.call("GET", f"/connections/{created['id']}")).json() == created
    # the tenant's document (as an export) applies with --prune and changes nothing
    async with engine.connect() as conn:
        [tenant] = await api.harness.rows("SELECT id FROM tenants")
        document = await read_document(conn, tenant["id"], lock=False)
    assert [c for c in document["connections"] if c["name"] == "text-me"] == [
        {
            "id": created["id"],
            "name": "text-me",
            "strategy": "sms",
            "enabled_clients": [NATIVE_ID],
            "options": created["options"],
            "realms": ["texts"],
        }
    ]
    before = await stored(api)
    await apply_config(engine, parse_config(document), now=datetime.now(UTC), prune=True)
    assert await stored(api) == before
    assert parse_config(document).document() == document


async def test_an_empty_email_template_part_is_the_default(api: Api) -> None:
    # deploy-cli imports a missing body as "" (it exports it as an empty file)
    options = {"email": {"body": "", "subject": "", "syntax": "liquid"}}
    created = await create(api, name="mail", strategy="email", options=options)
    assert "email" not in created["options"]  # the built-in template, as without one


async def test_authparams_may_be_auth0s_json_string(api: Api) -> None:
    options = {"authParams": '{"scope": "openid email"}'}
    created = await create(api, name="mail", strategy="email", options=options)
    assert created["options"]["authParams"] == {"scope": "openid email"}
