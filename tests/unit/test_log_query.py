"""The log search syntax (core/log_query.py): every field, the refusals with their messages,
sort, the caps, and ``prepare`` keeping ``matches`` the same over stored fields."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from nopass.core.errors import InvalidQuery
from nopass.core.log_query import (
    LOGS,
    check_log_window,
    log_view,
    matches,
    parse_log_query,
    parse_log_sort,
    prepare,
    stored_view,
)
from nopass.core.lucene import Match, Or, Pattern
from nopass.core.models import AuditEvent, LoggedEvent
from tests.support.flows import NATIVE, tenant_config

T0 = datetime(2026, 3, 1, 9, 30, tzinfo=UTC)
HOST = "login.acme.example"
EVENT = LoggedEvent(
    LoggedEvent.id_of(7),
    T0,
    AuditEvent(
        "t", "seacft", "Exchanged", ip="192.0.2.1", user_agent="curl/8", client_id=NATIVE,
        connection="sms", user_name="+15550001", user_id="sms|abc",
    ),
)  # fmt: skip
FIELDS = {
    "client_id": NATIVE, "client_name": "Native App", "connection": "sms",
    "connection_id": "con-sms", "description": "Exchanged", "hostname": HOST,
    "ip": "192.0.2.1", "log_id": LoggedEvent.id_of(7), "user_id": "sms|abc",
    "user_name": "+15550001", "user_agent": "curl/8", "strategy": "sms",
    "strategy_type": "passwordless", "type": "seacft",
}  # fmt: skip


def hit(q: str) -> bool:
    config = tenant_config()
    query = parse_log_query(q)
    full = matches(query, log_view(EVENT, config, HOST))
    assert matches(prepare(query, config, HOST), stored_view(EVENT)) == full, q
    return full


@pytest.mark.parametrize(("name", "value"), FIELDS.items())
def test_every_field_matches_exactly_case_sensitively_and_by_prefix(name: str, value: str) -> None:
    assert set(LOGS.fields) == {*FIELDS, "date"}
    assert hit(f'{name}:"{value}"')
    assert not hit(f'{name}:"{value.swapcase()}"') or value.swapcase() == value
    assert hit(f'{name}:"{value[:2]}"*'.replace('"', "")) or " " in value
    assert not hit(f'{name}:"{value}x"')
    assert hit(f"_exists_:{name}")


def test_date_exact_and_ranges() -> None:
    assert hit("date:2026-03-01")
    assert hit("date:[2026-01-01 TO *]")
    assert hit("date:[2026-03-01T09:00:00 TO 2026-03-01T09:30:00]")
    assert not hit("date:[2026-03-01T09:00:00 TO 2026-03-01T09:30:00}")
    assert not hit("date:{* TO 2026-03-01}")


def test_bare_terms_search_the_default_fields_only() -> None:
    assert LOGS.default_fields == (
        "client_name", "connection", "description", "ip", "log_id", "type", "user_name",
    )  # fmt: skip
    assert hit("Native*") and hit("sms") and hit("Exch*") and hit("192.0.2.1") and hit("seacft")
    assert hit("\\+15550001") and hit(LoggedEvent.id_of(7))
    assert not hit("curl*")  # user_agent is not a default field
    assert not hit("sms|abc")  # nor user_id


def test_boolean_structure() -> None:
    assert hit("type:seacft AND NOT type:s")
    assert not hit("NOT type:seacft")
    assert hit("type:s OR type:sea*")
    assert hit("(type:s -type:f) OR client_name:Native*")


@pytest.mark.parametrize(
    ("q", "message"),
    [
        ("type:s?", "the ? wildcard is not supported: use *"),
        ("type:[a TO b]", "ranges are not supported on type"),
        ("ip:[1 TO 2]", "ranges are not supported on ip"),
        ("organization_id:x", "unknown field 'organization_id'"),
        ("details.x:1", "unknown field 'details.x'"),
        ("type:s~", "fuzzy and proximity searches (~) are not supported"),
        ("type:s^2", "boosting (^) is not supported"),
        ("type:/s.*/", "regular expressions are not supported"),
        ("type:*", "type:* matches anything: use _exists_:type"),
        ("date:yesterday", "invalid date 'yesterday'"),
        ("date:2026*", "wildcards are not supported on date"),
    ],
)
def test_refusals_say_why(q: str, message: str) -> None:
    with pytest.raises(InvalidQuery) as refused:
        parse_log_query(q)
    assert message in str(refused.value)


def test_sort_is_by_date_only() -> None:
    assert parse_log_sort(None) is True and parse_log_sort("") is True
    assert parse_log_sort("date:-1") is True and parse_log_sort("date:1") is False
    with pytest.raises(InvalidQuery, match="cannot sort logs by 'type'"):
        parse_log_sort("type:1")
    with pytest.raises(InvalidQuery, match=r"sort is date:1 \(oldest first\)"):
        parse_log_sort("date:up")


def test_the_caps() -> None:
    check_log_window(900, 100)
    with pytest.raises(InvalidQuery, match="per_page is at most 100"):
        check_log_window(0, 101)
    with pytest.raises(InvalidQuery, match="at most the first 1000 results"):
        check_log_window(950, 100)


def test_prepare_turns_configured_fields_into_stored_ones() -> None:
    config = tenant_config()
    assert prepare(parse_log_query('client_name:"Native App"'), config, HOST) == Match(
        "client_id", NATIVE
    )
    strategy = prepare(parse_log_query("strategy:sms"), config, HOST)
    assert isinstance(strategy, Or)
    assert {m.value for m in strategy.parts if isinstance(m, Match)} == {
        "sms",
        "sms-direct",
        "sms-members-only",
    }
    assert prepare(parse_log_query("client_name:nobody"), config, HOST) == Or(())
    assert prepare(parse_log_query("type:s*"), config, HOST) == Pattern("type", ("s", ""))
    assert prepare(None, config, HOST) is None
