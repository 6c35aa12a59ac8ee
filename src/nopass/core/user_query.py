"""The user search of ``GET /api/v2/users``: ``q`` and ``sort`` (docs/specs/management-api.md
§3.2; syntax in ``nopass.core.lucene_parser``).

Case rules: ``email``, ``name``, ``given_name``, ``family_name`` and ``nickname`` compare
without regard to ASCII case; every other field is case-sensitive. ``app_metadata.<path>``
and ``user_metadata.<path>`` take exact values only (no wildcards, no ranges); ``null``,
``[]`` and ``{}`` never match, and array levels are skipped. Dates are UTC.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from nopass.core import lucene, lucene_parser
from nopass.core.errors import InvalidQuery
from nopass.core.lucene import Field, Kind, Node, Schema
from nopass.core.models import User

SEARCH_CAP = 1000  # "Search returns a maximum of 1,000 users"
METADATA = ("app_metadata", "user_metadata")


def _domain(email: object) -> object:
    if isinstance(email, str) and "@" in email:
        return email.split("@", 1)[1]
    return None


def _fields() -> dict[str, Field]:
    strings = ("user_id", "phone_number", "last_ip")
    folded = ("email", "name", "nickname", "given_name", "family_name")
    fields = [Field(name, Kind.STRING, (name,)) for name in strings]
    fields += [Field(name, Kind.STRING, (name,), folded=True) for name in folded]
    fields += [Field(n, Kind.BOOLEAN, (n,)) for n in ("email_verified", "phone_verified")]
    fields.append(Field("blocked", Kind.BOOLEAN, ("blocked",)))
    fields.append(Field("logins_count", Kind.INTEGER, ("logins_count",)))
    fields += [Field(n, Kind.DATE, (n,)) for n in ("created_at", "updated_at", "last_login")]
    fields.append(Field("email.domain", Kind.STRING, ("email",), folded=True, derive=_domain))
    for key in ("connection", "provider", "user_id"):
        fields.append(Field(f"identities.{key}", Kind.STRING, ("identities", key)))
    return {spec.name: spec for spec in fields}


SORTABLE = (
    "created_at",
    "updated_at",
    "last_login",
    "logins_count",
    "email",
    "name",
    "nickname",
    "given_name",
    "family_name",
    "user_id",
)

USERS = Schema(
    fields=_fields(),
    metadata=METADATA,
    default_fields=("user_id", "email", "name", "nickname", "given_name", "family_name"),
    sortable=SORTABLE,
)


def parse_query(q: str | None) -> Node | None:
    """The tree of a user search ``q``; ``None`` (everything) when absent or blank."""
    return None if q is None else lucene_parser.parse(q, USERS)


def matches(query: Node | None, view: Mapping[str, Any]) -> bool:
    """Whether a user view (``search_view``, or the Auth0 user object) matches ``query``."""
    return lucene.matches(query, view, USERS)


@dataclass(frozen=True, slots=True)
class Sort:
    field: str = "created_at"
    descending: bool = False


DEFAULT_SORT = Sort()


def parse_sort(sort: str | None) -> Sort:
    """``field:1`` (ascending) or ``field:-1`` (descending); absent: ``created_at:1``."""
    if sort is None or not sort.strip():
        return DEFAULT_SORT
    name, colon, direction = sort.strip().partition(":")
    if name.split(".", 1)[0] in METADATA:
        raise InvalidQuery("the search does not support sorting by app_metadata or user_metadata")
    if name not in SORTABLE:
        raise InvalidQuery(f"cannot sort by {name!r}: sort by one of " + ", ".join(SORTABLE))
    if not colon or direction not in ("1", "-1"):
        raise InvalidQuery("sort is field:1 (ascending) or field:-1 (descending)")
    return Sort(name, descending=direction == "-1")


def check_window(offset: int, limit: int) -> None:
    """Refuse a page that reaches past the first ``SEARCH_CAP`` results."""
    if offset < 0 or limit < 0:
        raise InvalidQuery("page and per_page must not be negative")
    if offset + limit > SEARCH_CAP:
        raise InvalidQuery(f"a search returns at most the first {SEARCH_CAP} users")


def search_view(user: User, connection: str) -> dict[str, Any]:
    """The user as the search sees it: the Auth0 user object with datetimes. Absent fields
    are left out (``last_login``, ``last_ip``, and ``logins_count`` before a first login)."""
    provider, _, local_id = user.user_id.partition("|")
    view: dict[str, Any] = dict(user.profile)
    view.update(
        user_id=user.user_id,
        identities=[{"connection": connection, "provider": provider, "user_id": local_id}],
        created_at=user.created_at,
        updated_at=user.updated_at,
        blocked=user.blocked,
        app_metadata=dict(user.app_metadata),
        user_metadata=dict(user.user_metadata),
    )
    if user.last_login is not None:
        view["last_login"] = user.last_login
    if user.last_ip is not None:
        view["last_ip"] = user.last_ip
    if user.logins_count:
        view["logins_count"] = user.logins_count
    return view


def _key(view: Mapping[str, Any], field: str) -> tuple[bool, Any]:
    value = view.get(field)
    if isinstance(value, datetime | int | str) and not isinstance(value, bool):
        return False, value
    return True, ""


def ordered(views: Sequence[Mapping[str, Any]], sort: Sort = DEFAULT_SORT) -> list[Any]:
    """``views`` in search order: the sort field (absent values last in either direction),
    then ``user_id`` in the same direction."""
    present = [v for v in views if not _key(v, sort.field)[0]]
    absent = [v for v in views if _key(v, sort.field)[0]]

    def by(view: Mapping[str, Any]) -> tuple[Any, str]:
        return _key(view, sort.field)[1], str(view["user_id"])

    return sorted(present, key=by, reverse=sort.descending) + sorted(
        absent, key=lambda v: str(v["user_id"]), reverse=sort.descending
    )
