"""Two tenants in one database: everything is looked up inside the tenant the Host selects.

docs/specs/auth0-wire.md §9 and §12.1: a client_id or connection of another tenant behaves as if it
did not exist; links are built from the origin the request matched; every row carries its tenant.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest

from tests.support.config import NATIVE_ID, tenant_config
from tests.support.harness import Harness, prepare_database, running_app
from tests.support.services import free_port
from tests.support.smtp import SmtpSink

ORIGIN_A = "http://127.0.0.1:8123"
ORIGIN_B = "http://tenant-b.example"
HOST_A = "127.0.0.1:8123"
HOST_B = "tenant-b.example"
B_NATIVE_ID = "tenant-b-native-client-id"
B_SPA_ID = "tenant-b-spa-client-id"
LINK = re.compile(r"https?://[^\s\"'<>]+/passwordless/verify_redirect\?[^\s\"'<>]+")


def tenant_b_config(smtp_port: int) -> dict[str, Any]:
    """Tenant B: its own clients, and only an email connection (no ``sms``)."""
    return {
        "tenant": {"name": "tenant-b", "domains": [ORIGIN_B]},
        "clients": [
            {
                "name": "Native App",  # the same name as in tenant A, another client_id
                "client_id": B_NATIVE_ID,
                "app_type": "native",
                "token_endpoint_auth_method": "none",
                "callbacks": ["https://b.example/callback"],
            },
            {"name": "B SPA", "client_id": B_SPA_ID, "app_type": "spa"},
        ],
        "connections": [
            {
                "name": "email",
                "strategy": "email",
                "enabled_clients": ["Native App", "B SPA"],
                "options": {},
            },
            {
                "name": "b-only-mail",
                "strategy": "email",
                "enabled_clients": ["Native App"],
                "options": {},
            },
        ],
        "email_provider": {
            "name": "smtp",
            "default_from_address": "Beta <login@tenant-b.example>",
            "credentials": {"smtp_host": "127.0.0.1", "smtp_port": smtp_port},
            "settings": {"starttls": "never"},
        },
    }


@dataclass
class Tenants:
    app: Harness
    sink_a: SmtpSink
    sink_b: SmtpSink
    id_a: str
    id_b: str

    async def start(self, host: str, body: dict[str, Any], **headers: str) -> Any:
        return await self.app.start(body, headers={"host": host, **headers})


@pytest.fixture
async def tenants(database_url: str, smtp_sink: SmtpSink) -> AsyncIterator[Tenants]:
    sink_b = SmtpSink(free_port())
    sink_b.start()
    try:
        await prepare_database(database_url, tenant_b_config(sink_b.port))
        config_a = tenant_config(ORIGIN_A, name="acme", smtp_port=smtp_sink.port)
        async with running_app(database_url, config_a, base_url=ORIGIN_A) as app:
            rows = await app.rows("SELECT id, name FROM tenants")
            ids = {r["name"]: r["id"] for r in rows}
            assert set(ids) == {"acme", "tenant-b"}
            yield Tenants(app, smtp_sink, sink_b, ids["acme"], ids["tenant-b"])
    finally:
        sink_b.stop()


def email_body(client_id: str, email: str = "ada@example.com", **extra: Any) -> dict[str, Any]:
    return {"client_id": client_id, "connection": "email", "email": email, **extra}


async def test_client_of_tenant_a_is_unknown_on_tenant_b(tenants: Tenants) -> None:
    response = await tenants.start(HOST_B, email_body(NATIVE_ID))
    assert response.status_code == 400
    assert response.json() == {
        "error": "bad.client_id",
        "error_description": f"Unknown client: {NATIVE_ID}",
    }
    response = await tenants.start(HOST_A, email_body(B_NATIVE_ID))
    assert response.status_code == 400
    assert response.json() == {
        "error": "bad.client_id",
        "error_description": f"Unknown client: {B_NATIVE_ID}",
    }
    for table in ("challenges", "outbox_messages", "audit_events"):
        assert await tenants.app.count(table) == 0, table


async def test_connection_names_resolve_inside_the_tenant(tenants: Tenants) -> None:
    # A has `sms` and `legacy-db`; B has neither.
    for name in ("sms", "legacy-db"):
        body = {"client_id": B_NATIVE_ID, "connection": name, "phone_number": "+15551234567"}
        response = await tenants.start(HOST_B, body)
        assert response.status_code == 400
        assert response.json() == {
            "error": "bad.connection",
            "error_description": "Connection does not exist",
        }
    # B's custom connection does not exist on A.
    response = await tenants.start(HOST_A, email_body(NATIVE_ID, connection="b-only-mail"))
    assert response.json() == {
        "error": "bad.connection",
        "error_description": "Connection does not exist",
    }
    # ...while on B it works, and B's own `email` is B's (enabled for B's clients only).
    assert (
        await tenants.start(HOST_B, email_body(B_NATIVE_ID, connection="b-only-mail"))
    ).status_code == 200
    assert (await tenants.start(HOST_B, email_body(B_SPA_ID))).status_code == 200
    response = await tenants.start(HOST_B, email_body(B_SPA_ID, connection="b-only-mail"))
    assert response.json()["error_description"] == "Connection is disabled"
    sms_on_a = {"client_id": NATIVE_ID, "connection": "sms", "phone_number": "+15551234567"}
    assert (await tenants.start(HOST_A, sms_on_a)).status_code == 200


async def test_links_use_the_origin_of_the_tenant(tenants: Tenants) -> None:
    assert (await tenants.start(HOST_A, email_body(NATIVE_ID, "a@example.com"))).status_code == 200
    # spelled differently (case, default port): still tenant B, still B's configured origin
    for host in (HOST_B, "Tenant-B.Example:80"):
        response = await tenants.start(host, email_body(B_NATIVE_ID, "b@example.com"))
        assert response.status_code == 200, response.text
    [mail_a] = await tenants.sink_a.wait_for(1)
    mails_b = await tenants.sink_b.wait_for(2)
    links_a = LINK.findall(mail_a.text()) + LINK.findall(mail_a.html())
    assert links_a
    assert all(link.startswith(ORIGIN_A + "/passwordless/verify_redirect?") for link in links_a)
    assert f"client_id={NATIVE_ID}" in links_a[0]
    for mail in mails_b:
        links_b = LINK.findall(mail.text()) + LINK.findall(mail.html())
        assert links_b
        assert all(link.startswith(ORIGIN_B + "/passwordless/verify_redirect?") for link in links_b)
        assert f"client_id={B_NATIVE_ID}" in links_b[0]
        assert "127.0.0.1" not in mail.text() + mail.html()
        assert mail.message["From"].addresses[0].addr_spec == "login@tenant-b.example"
    assert mail_a.message["From"].addresses[0].addr_spec == "login@acme.example"
    assert [m.recipients for m in tenants.sink_a.received] == [["a@example.com"]]
    assert [m.recipients for m in tenants.sink_b.received] == [["b@example.com"]] * 2


async def test_forwarded_host_headers_do_not_change_the_link(tenants: Tenants) -> None:
    response = await tenants.start(
        HOST_A,
        email_body(NATIVE_ID, "fwd@example.com"),
        **{"x-forwarded-host": HOST_B, "forwarded": f"host={HOST_B}", "x-forwarded-proto": "https"},
    )
    assert response.status_code == 200
    [mail] = await tenants.sink_a.wait_for(1)
    links = LINK.findall(mail.text())
    assert links
    assert all(link.startswith(ORIGIN_A + "/") for link in links)


async def test_rows_land_under_the_right_tenant(tenants: Tenants) -> None:
    email = "same.person@example.com"
    assert (await tenants.start(HOST_A, email_body(NATIVE_ID, email))).status_code == 200
    assert (await tenants.start(HOST_B, email_body(B_NATIVE_ID, email))).status_code == 200
    await tenants.sink_a.wait_for(1)
    await tenants.sink_b.wait_for(1)
    events = await tenants.app.rows(
        "SELECT tenant_id, type, client_id, connection, user_name FROM audit_events ORDER BY id"
    )
    assert [(e["tenant_id"], e["type"], e["client_id"]) for e in events] == [
        (tenants.id_a, "cls", NATIVE_ID),
        (tenants.id_b, "cls", B_NATIVE_ID),
    ]
    assert {e["user_name"] for e in events} == {email}
    challenges = await tenants.app.rows(
        "SELECT tenant_id, client_id, voided_at FROM challenges ORDER BY created_at"
    )
    assert [(c["tenant_id"], c["client_id"]) for c in challenges] == [
        (tenants.id_a, NATIVE_ID),
        (tenants.id_b, B_NATIVE_ID),
    ]
    # The same address in tenant B does not void tenant A's pending code.
    assert all(c["voided_at"] is None for c in challenges)
    outbox = await tenants.app.rows("SELECT tenant_id, status FROM outbox_messages")
    assert sorted(r["tenant_id"] for r in outbox) == sorted([tenants.id_a, tenants.id_b])
    # Each tenant's mail went through its own provider.
    assert [m.recipients for m in tenants.sink_a.received] == [[email]]
    assert [m.recipients for m in tenants.sink_b.received] == [[email]]


async def test_unknown_host_is_neither_tenant(tenants: Tenants) -> None:
    for host in ("tenant-c.example", "tenant-b.example.evil.example", "127.0.0.1:9999"):
        response = await tenants.start(host, email_body(NATIVE_ID))
        assert response.status_code == 400
        assert response.json()["error"] == "bad.tenant"
    assert await tenants.app.count("challenges") == 0
