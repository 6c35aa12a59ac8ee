"""The Lucene query subset of Auth0's searches: its tree, a table of fields, and the tree
evaluated over a plain-dict view (no I/O).

Auth0's user search (docs/specs/management-api.md §3.2) and log search (§4.1) take the same
syntax over different fields; a ``Schema`` names the fields, their kinds and case rules.
``nopass.core.lucene_parser.parse`` turns a ``q`` string into the tree, ``matches`` here
evaluates it, and the SQL store translates it into a WHERE clause.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from enum import Enum

from nopass.core.errors import InvalidQuery


class Kind(Enum):
    STRING = "string"
    BOOLEAN = "boolean"
    INTEGER = "integer"
    DATE = "date"
    METADATA = "metadata"  # a JSON object searched by dotted path: exact values only


@dataclass(frozen=True, slots=True)
class Field:
    """One searchable field. ``path`` walks the view (array levels skipped); ``derive``
    turns each value found into the one searched (``email.domain``)."""

    name: str
    kind: Kind
    path: tuple[str, ...]
    folded: bool = False  # case-insensitive (ASCII letters)
    derive: Callable[[object], object] | None = None


@dataclass(frozen=True, slots=True)
class Schema:
    fields: Mapping[str, Field]
    metadata: tuple[str, ...] = ()  # roots searched as ``root.<path>``
    default_fields: tuple[str, ...] = ()  # what a bare term (no field) searches
    sortable: tuple[str, ...] = ()

    def field(self, name: str) -> Field:
        found = self.fields.get(name)
        if found is not None:
            return found
        root, dot, rest = name.partition(".")
        if root in self.metadata and dot:
            keys = tuple(rest.split("."))
            if len(keys) > MAX_METADATA_PATH:
                raise InvalidQuery(
                    f"{root} paths have at most {MAX_METADATA_PATH} keys, not {len(keys)}"
                )
            if all(_KEY.fullmatch(key) for key in keys):
                return Field(name, Kind.METADATA, (root, *keys))
            raise InvalidQuery(f"invalid {root} path {rest!r}: use letters, digits, _ and -")
        if root in self.metadata:
            raise InvalidQuery(f"search a path inside {root}, for example {root}.plan:gold")
        raise InvalidQuery(f"unknown field {name!r}")


_KEY = re.compile(r"[A-Za-z0-9_\-]+")
MAX_METADATA_PATH = 32  # keys of app_metadata.<a.b.c>: metadata nests 64 deep at most (bodies)


# --- the tree -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Match:
    """The field equals ``value`` (already folded when the field is case-insensitive). On
    metadata, a leaf string equal to it, a number equal to it, or the boolean it spells."""

    field: str
    value: str


@dataclass(frozen=True, slots=True)
class Pattern:
    """The whole value matches ``parts`` joined by ``*`` (any characters, none included)."""

    field: str
    parts: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Flag:
    field: str
    value: bool


@dataclass(frozen=True, slots=True)
class Between:
    """``low <= value < high`` (``None``: unbounded). Exact numbers and dates become one of
    these: a date without a time is the whole day, a time without seconds the whole minute."""

    field: str
    low: int | datetime | None
    high: int | datetime | None


@dataclass(frozen=True, slots=True)
class Exists:
    field: str


@dataclass(frozen=True, slots=True)
class And:
    parts: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Or:
    parts: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Not:
    part: Node


Leaf = Match | Pattern | Flag | Between | Exists
Node = Leaf | And | Or | Not


# --- ASCII case folding (the same on SQLite, PostgreSQL and here) -------------------------

_FOLD = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def fold(text: str) -> str:
    return text.translate(_FOLD)


# --- dates --------------------------------------------------------------------------------

_DATE = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})"
    r"(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,6}))?)?)?"
    r"(Z|[+-]\d{2}:\d{2})?"
)


def date_span(text: str) -> tuple[datetime, datetime]:
    """The instants ``text`` names, as ``[start, end)`` at its own precision (UTC unless it
    carries an offset)."""
    found = _DATE.fullmatch(text)
    if found is None:
        raise InvalidQuery(f"invalid date {text!r}: use YYYY-MM-DD or YYYY-MM-DDTHH:MM:SS")
    year, month, day, hour, minute, second, fraction, zone = found.groups()
    try:
        start = datetime(
            int(year),
            int(month),
            int(day),
            int(hour or 0),
            int(minute or 0),
            int(second or 0),
            int((fraction or "0").ljust(6, "0")),
            tzinfo=UTC,
        )
    except ValueError:
        raise InvalidQuery(f"invalid date {text!r}") from None
    if zone and zone != "Z":
        sign = 1 if zone[0] == "+" else -1
        start -= sign * timedelta(hours=int(zone[1:3]), minutes=int(zone[4:6]))
    if fraction:
        unit = timedelta(microseconds=10 ** (6 - len(fraction)))
    elif second:
        unit = timedelta(seconds=1)
    elif minute:
        unit = timedelta(minutes=1)
    else:
        unit = timedelta(days=1)
    return start, start + unit


# --- evaluation over a plain-dict view ----------------------------------------------------


def found(view: Mapping[str, object], spec: Field) -> list[object]:
    """The values of ``spec`` in ``view``: array levels are skipped (one at each step)."""
    values: list[object] = [view]
    for key in spec.path:
        step: list[object] = []
        for value in values:
            for item in value if isinstance(value, list) else [value]:
                if isinstance(item, Mapping) and key in item:
                    step.append(item[key])
        values = step
    leaves: list[object] = []
    for value in values:
        leaves.extend(value if isinstance(value, list) else [value])
    if spec.derive is not None:
        leaves = [spec.derive(value) for value in leaves]
    return [value for value in leaves if value is not None]


def _present(value: object) -> bool:
    return value not in ({}, []) if isinstance(value, (dict, list)) else True


def _metadata_equal(leaf: object, text: str) -> bool:
    if isinstance(leaf, bool):
        return text == ("true" if leaf else "false")
    if isinstance(leaf, str):
        return leaf == text
    if isinstance(leaf, int | float):
        number = json_number(text)
        return number is not None and Decimal(str(leaf)) == Decimal(str(number))
    return False


_NUMBER = re.compile(r"-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?")


def json_number(text: str) -> int | float | None:
    """The JSON number ``text`` spells, if it spells one."""
    if not _NUMBER.fullmatch(text):
        return None
    try:
        return int(text) if re.fullmatch(r"-?\d+", text) else float(Decimal(text))
    except (ValueError, InvalidOperation):
        return None


def _pattern(parts: Sequence[str]) -> re.Pattern[str]:
    return re.compile(".*".join(re.escape(part) for part in parts), re.DOTALL)


def _moment(value: object) -> datetime | None:
    if isinstance(value, datetime):
        return value
    if isinstance(value, str):
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    return None


def matches(node: Node | None, view: Mapping[str, object], schema: Schema) -> bool:
    """Whether ``view`` (the object as the API shows it, times as datetimes) matches."""
    if node is None:
        return True
    if isinstance(node, And):
        return all(matches(part, view, schema) for part in node.parts)
    if isinstance(node, Or):
        return any(matches(part, view, schema) for part in node.parts)
    if isinstance(node, Not):
        return not matches(node.part, view, schema)
    spec = schema.field(node.field)
    values = found(view, spec)
    if isinstance(node, Exists):
        return any(_present(value) for value in values)
    if isinstance(node, Match) and spec.kind is Kind.METADATA:
        return any(_metadata_equal(value, node.value) for value in values)
    if isinstance(node, Flag):
        return any(value is node.value for value in values)
    if isinstance(node, Between):
        return any(_between(node, value, spec) for value in values)
    texts = [fold(v) if spec.folded else v for v in values if isinstance(v, str)]
    if isinstance(node, Match):
        return node.value in texts
    regex = _pattern(node.parts)
    return any(regex.fullmatch(text) for text in texts)


def _between(node: Between, value: object, spec: Field) -> bool:
    point: int | datetime | None
    if spec.kind is Kind.DATE:
        point = _moment(value)
    else:
        point = value if isinstance(value, int) and not isinstance(value, bool) else None
    if point is None:
        return False
    low, high = node.low, node.high
    return (low is None or low <= point) and (high is None or point < high)  # type: ignore[operator]
