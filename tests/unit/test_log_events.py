"""Audit events in Auth0's log event shape (docs/specs/management-api.md §4.3)."""

from __future__ import annotations

from datetime import UTC, datetime

from nopass.api.management.log_events import iso_ms, log_event
from nopass.core.models import AuditEvent, LoggedEvent
from tests.support.flows import NATIVE, tenant_config

AT = datetime(2026, 12, 3, 14, 47, 8, 713999, tzinfo=UTC)


def logged(event: AuditEvent) -> LoggedEvent:
    return LoggedEvent(log_id=LoggedEvent.id_of(42), date=AT, event=event)


def test_a_login_event_names_its_client_connection_and_strategy() -> None:
    config = tenant_config()
    event = AuditEvent(
        tenant_id=config.tenant.id,
        type="s",
        ip="192.0.2.1",
        user_agent="curl/8",
        client_id=NATIVE,
        connection="email",
        user_name="ann@example.com",
        user_id="email|abc",
        details={"audience": "https://api.example/", "scope": "openid", "n": 1},
    )
    shaped = log_event(logged(event), config, "login.acme.example")
    assert shaped["_id"] == shaped["log_id"] == "00000000000000000042"
    assert shaped["date"] == "2026-12-03T14:47:08.713Z"
    assert shaped["client_name"] == config.clients[NATIVE].name
    assert shaped["connection_id"] == config.connections["email"].id
    assert (shaped["strategy"], shaped["strategy_type"]) == ("email", "passwordless")
    assert (shaped["audience"], shaped["scope"]) == ("https://api.example/", "openid")
    assert shaped["hostname"] == "login.acme.example"
    assert shaped["details"] == {"audience": "https://api.example/", "scope": "openid", "n": 1}


def test_what_is_unknown_is_empty_or_null_as_auth0_records_it() -> None:
    config = tenant_config()
    shaped = log_event(logged(AuditEvent(config.tenant.id, "fn")), config, "h")
    assert shaped["connection"] is None and shaped["details"] is None
    assert shaped["connection_id"] == shaped["user_id"] == shaped["client_name"] == ""
    assert shaped["organization_id"] is None and "audience" not in shaped


def test_dates_are_utc_with_milliseconds() -> None:
    assert iso_ms(datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)) == "2026-01-02T03:04:05.000Z"
