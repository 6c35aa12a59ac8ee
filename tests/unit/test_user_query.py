"""The user search syntax (core/lucene.py, core/user_query.py): every construct of the
subset parses to its tree, everything outside it is refused with a message, and ``matches``
follows the case, metadata, range and wildcard rules of docs/specs/management-api.md §3.2."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from nopass.core import lucene, lucene_parser
from nopass.core.errors import InvalidQuery
from nopass.core.lucene import (
    And,
    Between,
    Exists,
    Field,
    Flag,
    Kind,
    Match,
    Not,
    Or,
    Pattern,
    Schema,
)
from nopass.core.models import User
from nopass.core.user_query import (
    Sort,
    check_window,
    matches,
    ordered,
    parse_query,
    parse_sort,
    search_view,
)

B, V, P = Flag("blocked", True), Flag("email_verified", True), Flag("phone_verified", True)


def day(y: int, m: int, d: int, hour: int = 0, minute: int = 0, second: int = 0) -> datetime:
    return datetime(y, m, d, hour, minute, second, tzinfo=UTC)


@pytest.mark.parametrize(
    ("q", "tree"),
    [
        ('email:"Jane@Example.com"', Match("email", "jane@example.com")),
        ("user_id:email|abc", Match("user_id", "email|abc")),
        ("name:John\\ Doe", Match("name", "john doe")),
        ("phone_number:+1555", Match("phone_number", "+1555")),
        ("email:test*", Pattern("email", ("test", ""))),
        ("name:*Example*", Pattern("name", ("", "example", ""))),
        ("email_verified:true", V),
        ("blocked:false", Flag("blocked", False)),
        ("logins_count:3", Between("logins_count", 3, 4)),
        ("logins_count:[1 TO 5]", Between("logins_count", 1, 6)),
        ("logins_count:{1 TO 5}", Between("logins_count", 2, 5)),
        ("logins_count:[1 TO *]", Between("logins_count", 1, None)),
        ("last_login:[* TO 2024-12-31]", Between("last_login", None, day(2025, 1, 1))),
        ("created_at:2024-01-01", Between("created_at", day(2024, 1, 1), day(2024, 1, 2))),
        (
            "updated_at:{2024-01-01T10:00 TO 2024-01-01T12:00:30]",
            Between("updated_at", day(2024, 1, 1, 10, 1), day(2024, 1, 1, 12, 0, 31)),
        ),
        ("_exists_:last_login", Exists("last_login")),
        ("_exists_:app_metadata.plan", Exists("app_metadata.plan")),
        ("app_metadata.roles:admin", Match("app_metadata.roles", "admin")),
        ('user_metadata.a.b:"X y"', Match("user_metadata.a.b", "X y")),
        ("email.domain:Example.COM", Match("email.domain", "example.com")),
        ("identities.connection:email", Match("identities.connection", "email")),
        (
            'name:("a" OR "b")',
            Or((Match("name", "a"), Match("name", "b"))),
        ),
        (
            "blocked:true AND NOT email_verified:true",
            And((B, Not(V))),
        ),
        ("blocked:true email_verified:true", Or((B, V))),
        ("blocked:true && !email_verified:true", And((B, Not(V)))),
        ("blocked:true -email_verified:true", And((B, Not(V)))),
        ("blocked:true OR NOT email_verified:true", Or((B, Not(V)))),
        (
            "blocked:true OR email_verified:true AND phone_verified:true",
            Or((B, And((V, P)))),
        ),
        (
            "(blocked:true OR email_verified:true) AND phone_verified:true",
            And((Or((B, V)), P)),
        ),
        ("   ", None),
    ],
)  # fmt: skip
def test_the_subset_parses(q: str, tree: object) -> None:
    assert parse_query(q) == tree


def test_a_bare_term_searches_the_default_fields() -> None:
    tree = parse_query("Jane")
    assert isinstance(tree, Or)
    assert {p.field for p in tree.parts if isinstance(p, Match)} == {
        "user_id", "email", "name", "nickname", "given_name", "family_name"
    }  # fmt: skip
    assert Match("user_id", "Jane") in tree.parts and Match("name", "jane") in tree.parts


@pytest.mark.parametrize(
    ("q", "message"),
    [
        ("name:jane~", "fuzzy"),
        ('name:"jane doe"~2', "proximity"),
        ("name:jane^2", "boosting"),
        ("(name:jane)^2", "boosting"),
        ("name:/ja.e/", "regular expressions"),
        ("name:j?ne", "the ? wildcard"),
        ("+name:jane", "the + operator"),
        ("favourite:x", "unknown field 'favourite'"),
        ("_exists_:nope", "unknown field 'nope'"),
        ("app_metadata:x", "search a path inside app_metadata"),
        ("app_metadata.a b:x", "unknown field"),
        ("app_metadata.roles:adm*", "wildcards are not supported on app_metadata"),
        ("user_metadata.n:[1 TO 2]", "ranges are not supported on user_metadata.n"),
        ("name:[a TO b]", "ranges are not supported on name"),
        ("email:*ab", "3 or more"),
        ("email:*", "use _exists_:email"),
        ("blocked:*rue", "wildcards are not supported on blocked"),
        ("logins_count:many", "whole number"),
        ("created_at:yesterday", "invalid date"),
        ("created_at:2024-02-30", "invalid date"),
        ("blocked:yes", "true or false"),
        ("logins_count:[1 TO 2", "] or }"),
        ("logins_count:[1 2]", "TO"),
        ("logins_count:[1* TO 2]", "wildcards are not allowed in range bounds"),
        ("(name:a", "missing )"),
        ("name:a)", "unexpected )"),
        ("()", "empty parentheses"),
        ("name:", "needs a value"),
        ('name:"jane', 'missing closing "'),
        ("AND name:a", "AND needs a clause"),
        ("name:a AND", "ends where a clause"),
        ("name:a\\", "lone \\"),
        ("name:a]b", "unexpected ]"),
        ("name:(email:x)", "a field inside a grouped value"),
        ("(" * 20 + "name:a" + ")" * 20, "nests deeper"),
        (" OR ".join(f"name:n{i}" for i in range(70)), "more than 64 clauses"),
        ("name:a" * 1000, "longer than 4096"),
    ],
)
def test_everything_else_is_refused_with_a_message(q: str, message: str) -> None:
    with pytest.raises(InvalidQuery) as refused:
        parse_query(q)
    assert message in refused.value.message


def test_sort() -> None:
    assert parse_sort(None) == Sort("created_at", descending=False)
    assert parse_sort("email:1") == Sort("email")
    assert parse_sort("last_login:-1") == Sort("last_login", descending=True)
    for bad, message in [
        ("app_metadata.plan:1", "does not support sorting by app_metadata or user_metadata"),
        ("user_metadata:1", "does not support sorting by app_metadata or user_metadata"),
        ("last_ip:1", "cannot sort by 'last_ip'"),
        ("email:2", "field:1 \\(ascending\\) or field:-1"),
        ("email", "field:1 \\(ascending\\) or field:-1"),
    ]:
        with pytest.raises(InvalidQuery, match=message):
            parse_sort(bad)


def test_the_window_of_a_search_ends_at_1000() -> None:
    check_window(950, 50)
    with pytest.raises(InvalidQuery, match="1000"):
        check_window(1000, 1)


# --- matches ---------------------------------------------------------------------------------

JANE: dict[str, Any] = {
    "user_id": "email|64f0",
    "email": "jane.doe@example.com",
    "email_verified": True,
    "name": "Jane Doe",
    "nickname": "JD",
    "identities": [{"connection": "email", "provider": "email", "user_id": "64f0"}],
    "created_at": day(2024, 3, 1, 12, 0),
    "updated_at": "2024-03-02T00:00:00.000Z",
    "last_login": day(2024, 12, 31, 23, 59),
    "logins_count": 4,
    "blocked": False,
    "app_metadata": {
        "roles": ["admin", "dev"],
        "plan": [{"tier": "gold"}, {"tier": "silver"}],
        "n": 5,
        "beta": True,
        "nothing": None,
        "none": [],
        "empty": {},
    },
    "user_metadata": {"lang": "Fr"},
}


@pytest.mark.parametrize(
    ("q", "hit"),
    [
        ('email:"JANE.DOE@EXAMPLE.COM"', True),
        ("name:jane\\ doe", True),
        ("nickname:jd", True),
        ("user_id:EMAIL|64f0", False),  # case-sensitive
        ("identities.connection:EMAIL", False),
        ("identities.connection:email", True),
        ("identities.provider:email AND identities.user_id:64f0", True),
        ("email.domain:EXAMPLE.com", True),
        ("email:jane*", True),
        ("email:*example.com", True),
        ("email:*example", False),
        ("name:*doe", True),
        ('name:"jane*"', False),  # quoted: the star is a character
        ("email_verified:true", True),
        ("email_verified:false", False),
        ("phone_verified:false", False),  # absent matches neither value
        ("NOT phone_verified:false", True),
        ("logins_count:[4 TO 4]", True),
        ("logins_count:{4 TO *]", False),
        ("last_login:[* TO 2024-12-31]", True),
        ("last_login:[* TO 2024-12-31}", False),
        ("last_login:2024-12-31T23:59", True),
        ("updated_at:2024-03-02", True),  # an ISO string in the view works too
        ("created_at:{2024-03-01T12:00 TO *]", False),
        ("app_metadata.roles:admin", True),  # the array level is skipped
        ("app_metadata.roles:Admin", False),  # metadata is case-sensitive
        ("app_metadata.plan.tier:silver", True),
        ("app_metadata.n:5", True),
        ('app_metadata.n:"5"', True),
        ("app_metadata.n:5.0", True),
        ("app_metadata.beta:true", True),
        ("app_metadata.beta:True", False),
        ("user_metadata.lang:fr", False),
        ("app_metadata.nothing:null", False),
        ("_exists_:app_metadata.nothing", False),
        ("_exists_:app_metadata.none", False),
        ("_exists_:app_metadata.empty", False),
        ("_exists_:app_metadata.plan", True),
        ("_exists_:app_metadata.plan.tier", True),
        ("_exists_:phone_number", False),
        ("NOT _exists_:logins_count OR logins_count:0", False),
        ("jane", False),  # a bare term is one whole value
        ("JD", True),
        ("blocked:true OR jd", True),
        ("jd -blocked:false", False),
        (None, True),
    ],
)
def test_matches(q: str | None, hit: bool) -> None:
    assert matches(parse_query(q), JANE) is hit


def test_case_folding_is_ascii_only_as_in_sql() -> None:
    view = {"user_id": "email|1", "name": "Émile", "identities": []}
    assert matches(parse_query("name:émile"), view) is False
    assert matches(parse_query("name:ÉMILE"), view) is True


def test_search_view_is_the_user_object_without_absent_fields() -> None:
    created = day(2024, 1, 1)
    user = User(
        tenant_id="t",
        user_id="sms|abc",
        connection_id="c",
        identifier="+15550001",
        profile={"phone_number": "+15550001", "phone_verified": True},
        created_at=created,
        updated_at=created,
        app_metadata={"plan": "gold"},
    )
    view = search_view(user, "sms")
    assert view == {
        "phone_number": "+15550001",
        "phone_verified": True,
        "user_id": "sms|abc",
        "identities": [{"connection": "sms", "provider": "sms", "user_id": "abc"}],
        "created_at": created,
        "updated_at": created,
        "blocked": False,
        "app_metadata": {"plan": "gold"},
        "user_metadata": {},
    }
    assert matches(parse_query("NOT _exists_:logins_count AND identities.provider:sms"), view)


def test_ordered_puts_absent_values_last_either_way_and_breaks_ties_by_user_id() -> None:
    views = [
        {"user_id": "b", "name": "x"},
        {"user_id": "a"},
        {"user_id": "c", "name": "x"},
        {"user_id": "d", "name": "w"},
    ]
    assert [v["user_id"] for v in ordered(views, Sort("name"))] == ["d", "b", "c", "a"]
    assert [v["user_id"] for v in ordered(views, Sort("name", True))] == ["c", "b", "d", "a"]


def test_the_parser_takes_another_field_table() -> None:
    """The log search (docs/specs/management-api.md §4.1): its own fields, all case-sensitive."""
    logs = Schema(
        fields={
            "type": Field("type", Kind.STRING, ("type",)),
            "user_name": Field("user_name", Kind.STRING, ("user_name",)),
            "date": Field("date", Kind.DATE, ("date",)),
        },
        default_fields=("type", "user_name"),
    )
    tree = lucene_parser.parse("type:s* AND date:[2018-12-18 TO *]", logs)
    assert tree == And((Pattern("type", ("s", "")), Between("date", day(2018, 12, 18), None)))
    event = {"type": "seccft", "user_name": "Jane", "date": "2019-01-01T01:00:00.000Z"}
    assert lucene.matches(tree, event, logs)
    assert not lucene.matches(lucene_parser.parse("jane", logs), event, logs)
    with pytest.raises(InvalidQuery, match="unknown field 'email'"):
        lucene_parser.parse("email:x", logs)
