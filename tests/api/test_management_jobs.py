"""Users import and export jobs of the Management API (docs/specs/management-api.md §7): the
import file's rows, upsert, duplicates, size and concurrency limits, job status and errors,
exports in NDJSON and CSV with fields, and their once-only download. On SQLite and
PostgreSQL, with the app's own background runner."""

from __future__ import annotations

import asyncio
import csv
import gzip
import io
import json
import re
from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.support.clock import MovableClock
from tests.support.management import Api, management_app, token

FAST: dict[str, Any] = {"job_poll_seconds": 0.05}
JOB_ID = re.compile(r"^job_[A-Za-z0-9]{16}$")
AUTH0_ID = "5f1c8e2a9b3d4c0012345678"


@pytest.fixture
async def api(database_url: str) -> AsyncIterator[Api]:
    async with management_app(database_url, **FAST) as api:
        yield api


async def connection_id(api: Api, name: str) -> str:
    rows = await api.harness.rows(f"SELECT id FROM connections WHERE name = '{name}'")  # noqa: S608
    return str(rows[0]["id"])


async def submit(
    api: Api, users: Any, *, connection: str = "email", scopes: Any = None, **parts: str
) -> Any:
    raw = users if isinstance(users, bytes) else json.dumps(users).encode()
    data = {"connection_id": await connection_id(api, connection), **parts}
    files = {"users": ("users.json", raw, "application/json")}
    return await api.call("POST", "/jobs/users-imports", data=data, files=files, scopes=scopes)


async def finished(api: Api, job_id: str) -> dict[str, Any]:
    for _ in range(400):
        response = await api.call("GET", f"/jobs/{job_id}")
        assert response.status_code == 200, response.text
        job: dict[str, Any] = response.json()
        if job["status"] in ("completed", "failed"):
            return job
        await asyncio.sleep(0.025)
    raise AssertionError(f"job {job_id} did not finish")


async def imported(api: Api, users: Any, **parts: str) -> tuple[dict[str, Any], list[Any]]:
    response = await submit(api, users, **parts)
    assert response.status_code == 202, response.text
    job = await finished(api, response.json()["id"])
    errors = await api.call("GET", f"/jobs/{job['id']}/errors")
    assert errors.status_code == 200, errors.text
    return job, errors.json()


async def user(api: Api, user_id: str) -> dict[str, Any]:
    response = await api.call("GET", f"/users/{user_id}")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


# --- imports ------------------------------------------------------------------------------


async def test_import_keeps_an_auth0_user_id(api: Api) -> None:
    users = [
        {
            "user_id": AUTH0_ID,  # exported from Auth0 as email|5f1c..., prefix removed
            "email": "Ada@Acme.example",
            "email_verified": True,
            "given_name": "Ada",
            "app_metadata": {"plan": "gold"},
        },
        {"email": "bob@acme.example", "blocked": True},
    ]
    response = await submit(
        api, users, upsert="false", external_id="", send_completion_email="false"
    )
    assert response.status_code == 202, response.text
    accepted = response.json()
    assert JOB_ID.match(accepted["id"])
    assert accepted["type"] == "users_import" and accepted["status"] == "pending"
    assert accepted["connection_id"] == await connection_id(api, "email")
    assert accepted["connection"] == "email"
    assert accepted["upsert"] is False and accepted["send_completion_email"] is False
    assert "external_id" not in accepted  # an empty part is no external_id
    job = await finished(api, accepted["id"])
    assert job["status"] == "completed"
    assert job["summary"] == {"failed": 0, "updated": 0, "inserted": 2, "total": 2}
    ada = await user(api, f"email|{AUTH0_ID}")
    assert ada["email"] == "ada@acme.example" and ada["email_verified"] is True
    assert ada["given_name"] == "Ada" and ada["app_metadata"] == {"plan": "gold"}
    assert ada["identities"][0]["user_id"] == AUTH0_ID
    bob = (await api.call("GET", "/users-by-email?email=bob@acme.example")).json()
    assert bob[0]["blocked"] is True and bob[0]["email_verified"] is False
    assert (await api.call("GET", f"/jobs/{job['id']}/errors")).json() == []
    # one sapi event for the submit and one for the finished job, without user data
    events = await api.harness.rows(
        "SELECT description, details FROM audit_events WHERE type = 'sapi'"
    )
    described = [e["description"] for e in events]
    assert "Create an import users job" in described and "Users import job completed" in described
    assert "ada@acme.example" not in json.dumps([e["details"] for e in events], default=str)


async def test_external_id_is_echoed(api: Api) -> None:
    response = await submit(api, [{"email": "x@acme.example"}], external_id="batch-7")
    assert response.status_code == 202 and response.json()["external_id"] == "batch-7"


async def test_a_bad_row_does_not_fail_the_job(api: Api) -> None:
    users: list[Any] = [
        {"email": "good@acme.example"},
        {"email": "named@acme.example", "username": "named"},
        {"given_name": "No Email"},
        {"email": "not-an-address"},
        {"email": "extra@acme.example", "favourite": "tea"},
        {"email": "typed@acme.example", "email_verified": "yes", "name": ""},
        {"email": "phone@acme.example", "phone_number": "+15005550006"},
        "not an object",
    ]
    job, errors = await imported(api, users)
    assert job["status"] == "completed"
    assert job["summary"] == {"failed": 7, "updated": 0, "inserted": 1, "total": 8}
    assert [e["user"].get("email") for e in errors] == [
        "named@acme.example",
        None,
        "not-an-address",
        "extra@acme.example",
        "typed@acme.example",
        "phone@acme.example",
        None,
    ]
    codes = [[(x["code"], x.get("path")) for x in e["errors"]] for e in errors]
    assert codes == [
        [("NOT_PASSED", "username")],
        [("OBJECT_MISSING_REQUIRED_PROPERTY", None)],
        [("FORMAT", "email")],
        [("OBJECT_ADDITIONAL_PROPERTIES", None)],
        [("MIN_LENGTH", "name"), ("INVALID_TYPE", "email_verified")],
        [("NOT_PASSED", "phone_number")],
        [("INVALID_TYPE", None)],
    ]
    assert errors[1]["errors"][0]["message"] == "Missing required property: email"
    assert errors[1]["user"] == {"given_name": "No Email"}
    assert await api.harness.count("users") == 1


async def test_an_existing_user_without_upsert_is_refused(api: Api) -> None:
    first, _ = await imported(api, [{"email": "ada@acme.example", "given_name": "Ada"}])
    assert first["summary"]["inserted"] == 1
    job, errors = await imported(api, [{"email": "ada@acme.example", "given_name": "Other"}])
    assert job["summary"] == {"failed": 1, "updated": 0, "inserted": 0, "total": 1}
    assert errors == [
        {
            "user": {"email": "ada@acme.example", "given_name": "Other"},
            "errors": [
                {
                    "code": "DUPLICATED_USER",
                    "message": "The user already exist and upsert parameter is false",
                }
            ],
        }
    ]


async def test_upsert_changes_only_upsertable_attributes_and_overwrites_metadata(api: Api) -> None:
    created = await api.call(
        "POST",
        "/users",
        json={
            "connection": "email",
            "email": "ada@acme.example",
            "given_name": "Ada",
            "family_name": "Lovelace",
            "app_metadata": {"plan": "gold", "seats": 3},
            "user_metadata": {"theme": "dark"},
        },
    )
    assert created.status_code == 201
    user_id = created.json()["user_id"]
    rows = [
        {
            "email": "ADA@acme.example",
            "given_name": "Augusta",
            "email_verified": True,
            "blocked": True,  # not upsertable: left alone
            "app_metadata": {"plan": "silver"},
        }
    ]
    job, errors = await imported(api, rows, upsert="true")
    assert errors == []
    assert job["summary"] == {"failed": 0, "updated": 1, "inserted": 0, "total": 1}
    after = await user(api, user_id)
    assert after["given_name"] == "Augusta" and after["family_name"] == "Lovelace"
    assert after["email_verified"] is True and after["blocked"] is False
    assert after["app_metadata"] == {"plan": "silver"}  # overwritten, not merged
    assert after["user_metadata"] == {"theme": "dark"}  # not given: kept
    # upsert by user_id
    local = user_id.removeprefix("email|")
    job, _ = await imported(
        api, [{"user_id": local, "email": "ada@acme.example", "nickname": "ada"}], upsert="true"
    )
    assert job["summary"]["updated"] == 1
    assert (await user(api, user_id))["nickname"] == "ada"
    # a user_id other than the one the email belongs to: a conflict, nothing changed
    job, errors = await imported(
        api, [{"user_id": "another", "email": "ada@acme.example"}], upsert="true"
    )
    assert errors[0]["errors"][0]["code"] == "CONFLICT_EMAIL"
    assert await api.harness.count("users") == 1


async def test_a_user_given_twice_in_one_file_is_refused(api: Api) -> None:
    rows = [
        {"email": "twice@acme.example"},
        {"email": "once@acme.example"},
        {"email": "TWICE@acme.example", "given_name": "Again"},
        {"user_id": "abc", "email": "c@acme.example"},
        {"user_id": "abc", "email": "d@acme.example"},
    ]
    job, errors = await imported(api, rows, upsert="true")
    assert job["summary"] == {"failed": 4, "updated": 0, "inserted": 1, "total": 5}
    assert {e["errors"][0]["code"] for e in errors} == {"DUPLICATED_USER"}
    assert [e["user"]["email"] for e in errors] == [
        "twice@acme.example",
        "TWICE@acme.example",
        "c@acme.example",
        "d@acme.example",
    ]


async def test_sms_import(api: Api) -> None:
    rows = [
        {"user_id": "66aa00", "phone_number": "+15005550006", "phone_verified": True},
        {"phone_number": "0044 20"},
        {"phone_number": "+15005550007", "email": "x@acme.example"},
        {"email": "only@acme.example"},
    ]
    job, errors = await imported(api, rows, connection="sms")
    assert job["summary"] == {"failed": 3, "updated": 0, "inserted": 1, "total": 4}
    sms = await user(api, "sms|66aa00")
    assert sms["phone_number"] == "+15005550006" and sms["phone_verified"] is True
    assert sms["identities"][0]["provider"] == "sms"
    assert [e["errors"][0]["code"] for e in errors] == [
        "FORMAT",
        "NOT_PASSED",
        "NOT_PASSED",
    ]
    assert errors[2]["errors"][-1]["code"] == "OBJECT_MISSING_REQUIRED_PROPERTY"


async def test_an_unparsable_file_fails_the_job(api: Api) -> None:
    response = await submit(api, b"[{not json")
    assert response.status_code == 202
    job = await finished(api, response.json()["id"])
    assert job["status"] == "failed"
    assert job["status_details"] == "Failed to parse users file JSON when importing users."
    errors = (await api.call("GET", f"/jobs/{job['id']}/errors")).json()
    assert errors == {
        "status": "failed",
        "type": "users_import",
        "created_at": job["created_at"],
        "id": job["id"],
        "connection_id": job["connection_id"],
        "status_details": "Failed to parse users file JSON when importing users.",
    }


async def test_a_file_over_500_kb_is_refused(api: Api) -> None:
    big = json.dumps([{"email": f"u{i}@acme.example"} for i in range(30000)]).encode()
    assert len(big) > 500_000
    response = await submit(api, big)
    assert response.status_code == 413, response.text
    body = response.json()
    assert body["statusCode"] == 413
    assert body["message"] == "The file size limit for a bulk import is 500KB"
    assert await api.harness.count("jobs") == 0
    exact = json.dumps([{"email": "a@acme.example"}]).encode().ljust(500_001, b" ")
    assert (await submit(api, exact)).status_code == 413


async def test_a_third_concurrent_import_is_refused(database_url: str) -> None:
    async with management_app(database_url, run_jobs=False) as api:
        answers = await asyncio.gather(
            *(submit(api, [{"email": "a@acme.example"}]) for _ in range(4))
        )  # at once: the count and the insert are serialised per tenant
        assert sorted(a.status_code for a in answers) == [202, 202, 429, 429]
        response = next(a for a in answers if a.status_code == 429)
        assert response.json()["message"] == (
            "There is a limit of 2 concurrent import jobs per tenant"
        )
        assert await api.harness.count("jobs") == 2
        # exports are not limited by it
        export = await api.call("POST", "/jobs/users-exports", json={"format": "json"})
        assert export.status_code == 200


async def test_unknown_connection_and_bad_parts(api: Api) -> None:
    files = {"users": ("users.json", b"[]", "application/json")}
    response = await api.call(
        "POST", "/jobs/users-imports", data={"connection_id": "con_nope"}, files=files
    )
    assert response.status_code == 400
    assert response.json()["errorCode"] == "inexistent_connection"
    only_connection = {"connection_id": (None, await connection_id(api, "email"))}
    response = await api.call("POST", "/jobs/users-imports", files=only_connection)
    assert response.status_code == 400 and "users" in response.json()["message"]
    response = await submit(api, [], upsert="maybe")
    assert response.status_code == 400 and response.json()["errorCode"] == "invalid_body"
    response = await api.call("POST", "/jobs/users-imports", json={"users": []})
    assert response.status_code == 400
    assert await api.harness.count("jobs") == 0


async def test_scopes(api: Api) -> None:
    response = await submit(api, [], scopes=["read:users"])
    assert response.status_code == 403
    assert response.json()["message"] == "Insufficient scope, expected any of: create:users"
    accepted = await submit(api, [], scopes=["create:users"])
    job_id = accepted.json()["id"]
    for path in (f"/jobs/{job_id}", f"/jobs/{job_id}/errors"):
        assert (await api.call("GET", path, scopes=["create:users"])).status_code == 200
        denied = await api.call("GET", path, scopes=["update:users"])
        assert denied.json()["message"] == (
            "Insufficient scope, expected any of: create:users, read:users"
        )
    export = await api.call("POST", "/jobs/users-exports", json={}, scopes=["create:users"])
    assert export.status_code == 403


async def test_unknown_job(api: Api) -> None:
    for path in ("/jobs/job_0000000000000000", "/jobs/job_0000000000000000/errors"):
        response = await api.call("GET", path)
        assert response.status_code == 404
        assert response.json()["errorCode"] == "inexistent_job"


# --- exports ------------------------------------------------------------------------------


async def seed(api: Api) -> None:
    rows = [
        {"email": "ada@acme.example", "given_name": '=HYPERLINK("http://x")', "name": "Ada"},
        {"email": "bob@acme.example", "name": "Bob", "app_metadata": {"plan": "gold"}},
    ]
    job, _ = await imported(api, rows)
    assert job["summary"]["inserted"] == 2
    job, _ = await imported(api, [{"phone_number": "+15005550006"}], connection="sms")
    assert job["summary"]["inserted"] == 1


async def exported(api: Api, body: dict[str, Any]) -> tuple[dict[str, Any], bytes]:
    response = await api.call("POST", "/jobs/users-exports", json=body)
    assert response.status_code == 200, response.text
    accepted = response.json()
    assert accepted["type"] == "users_export" and accepted["status"] == "pending"
    job = await finished(api, accepted["id"])
    assert job["status"] == "completed", job
    location = job["location"]
    assert location.startswith("http://127.0.0.1:8123/export-files/")
    download = await api.harness.client.get(location.removeprefix("http://127.0.0.1:8123"))
    assert download.status_code == 200
    assert download.headers["content-type"] == "application/gzip"
    return job, gzip.decompress(download.content)


async def test_export_json_with_fields(api: Api) -> None:
    await seed(api)
    body = {
        "connection_id": await connection_id(api, "email"),
        "format": "json",
        "limit": 5,
        "fields": [
            {"name": "email"},
            {"name": "identities[0].connection", "export_as": "connection"},
            {"name": "app_metadata.plan"},
        ],
    }
    job, data = await exported(api, body)
    assert job["connection"] == "email" and job["format"] == "json" and job["limit"] == 5
    assert job["fields"] == body["fields"]
    lines = sorted((json.loads(line) for line in data.decode().splitlines()), key=str)
    assert lines == [
        {"email": "ada@acme.example", "connection": "email"},
        {"email": "bob@acme.example", "connection": "email", "app_metadata.plan": "gold"},
    ]
    # all connections, the whole user object, up to the limit
    _, data = await exported(api, {"format": "json", "limit": 2})
    users = [json.loads(line) for line in data.decode().splitlines()]
    assert len(users) == 2 and users[0]["user_id"].startswith("email|")
    assert users[0]["identities"][0]["connection"] == "email"


async def test_export_csv_escapes_formulas(api: Api) -> None:
    await seed(api)
    fields = [{"name": "user_id"}, {"name": "given_name"}, {"name": "phone_number"}]
    _, data = await exported(api, {"format": "csv", "fields": fields})
    table = list(csv.reader(io.StringIO(data.decode(), newline="")))
    assert table[0] == ["user_id", "given_name", "phone_number"]
    assert len(table) == 4
    assert '\'=HYPERLINK("http://x")' in {table[1][1], table[2][1]}
    assert table[3][2] == "'+15005550006"  # a leading + too: a spreadsheet would compute it


async def test_a_download_works_once(api: Api) -> None:
    await seed(api)
    response = await api.call("POST", "/jobs/users-exports", json={"format": "json"})
    job = await finished(api, response.json()["id"])
    path = job["location"].removeprefix("http://127.0.0.1:8123")
    first, second = await asyncio.gather(api.harness.client.get(path), api.harness.client.get(path))
    assert sorted([first.status_code, second.status_code]) == [200, 410]
    downloads = "description = 'Download a users export' AND ip = '203.0.113.7'"
    assert await api.harness.count("audit_events", downloads) == 1
    assert (await api.harness.client.get(path)).status_code == 410
    again = (await api.call("GET", f"/jobs/{job['id']}")).json()
    assert again["status"] == "completed" and "location" not in again  # the file is gone
    assert (await api.harness.client.get("/export-files/unknown-token")).status_code == 404


async def test_a_newer_location_replaces_the_older(api: Api) -> None:
    await seed(api)
    response = await api.call("POST", "/jobs/users-exports", json={})
    job = await finished(api, response.json()["id"])
    newer = (await api.call("GET", f"/jobs/{job['id']}")).json()["location"]
    older = job["location"].removeprefix("http://127.0.0.1:8123")
    assert (await api.harness.client.get(older)).status_code == 404
    assert (
        await api.harness.client.get(newer.removeprefix("http://127.0.0.1:8123"))
    ).status_code == 200
    # a token with create:users only sees no location
    scoped = await api.call("GET", f"/jobs/{job['id']}", scopes=["create:users"])
    assert "location" not in scoped.json()


async def test_bad_export_bodies(api: Api) -> None:
    for body in (
        {"format": "xml"},
        {"limit": 0},
        {"limit": "5"},
        {"fields": [{"name": ""}]},
        {"fields": [{"name": "email", "as": "x"}]},
        {"fields": "email"},
        {"connection_id": "con_nope"},
        {"unknown": 1},
    ):
        response = await api.call("POST", "/jobs/users-exports", json=body)
        assert response.status_code == 400, (body, response.text)
    assert await api.harness.count("jobs") == 0


async def test_expiry(database_url: str) -> None:
    clock = MovableClock()
    async with management_app(database_url, clock=clock, **FAST) as api:
        await seed(api)
        response = await api.call("POST", "/jobs/users-exports", json={})
        job = await finished(api, response.json()["id"])
        clock.advance(11 * 60)  # a location lives ten minutes
        path = job["location"].removeprefix("http://127.0.0.1:8123")
        assert (await api.harness.client.get(path)).status_code == 410
        clock.advance(24 * 3600)  # a job lives a day
        moment = int(clock.now().timestamp())
        api.bearer = token(api.key, iat=moment, exp=moment + 3600)
        assert (await api.call("GET", f"/jobs/{job['id']}")).status_code == 404
