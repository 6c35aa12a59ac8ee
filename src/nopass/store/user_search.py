"""The user search in SQL: a ``q`` tree (``nopass.core.lucene``) as a WHERE clause over
``users`` on SQLite (JSON1, ``json_each``) and PostgreSQL (``jsonb``, ``jsonb_path_query``).

It returns exactly the users ``nopass.core.user_query.matches`` accepts (the property test in
tests/integration/test_user_search.py holds the two together). Every leaf is made two-valued
(never NULL), so that ``NOT`` means what it means in Python.

Indexed (tests/integration/test_user_search_plans.py holds both databases to it): every sort
order, unfiltered; ``user_id``, ``email``, ``phone_number``, ``name``, ``nickname``,
``given_name`` and ``family_name`` exactly or by a prefix (``email:ann*``: a range on the
expression of ``store/user_keys.py``, the rest of a pattern checked on what the range found);
ranges of ``logins_count``, ``created_at``, ``updated_at`` and ``last_login``; and ``AND``/``OR``
of these. A page in an order whose field may be absent is two index walks (present values in
order, then the absent ones by ``user_id``) of at most ``offset + limit`` rows each.
Everything else (a pattern that starts with ``*``, booleans, ``last_ip``, ``email.domain``,
``identities.*``, metadata, ``NOT``) filters the users the planner walks: the one exception,
documented in the README.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    Boolean,
    ColumnElement,
    Select,
    and_,
    case,
    cast,
    exists,
    func,
    literal,
    literal_column,
    not_,
    or_,
    select,
    true,
    union_all,
)
from sqlalchemy.dialects.postgresql import JSONB, JSONPATH
from sqlalchemy.ext.asyncio import AsyncConnection

from nopass.core.lucene import (
    And,
    Between,
    Exists,
    Field,
    Flag,
    Kind,
    Match,
    Node,
    Not,
    Or,
    Pattern,
    json_number,
)
from nopass.core.models import User
from nopass.core.user_query import DEFAULT_SORT, USERS, Sort, check_window
from nopass.store import user_keys
from nopass.store.tables import ConnectionRow, UserRow, table
from nopass.store.user_rows import user_of as _user

_T = table(UserRow)
_CONNECTIONS = table(ConnectionRow)
_UPPER = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
_PROFILE_STRINGS = ("email", "phone_number", "name", "nickname", "given_name", "family_name")
_COLUMNS = {"user_id", "last_ip"}
_NEVER_ABSENT = ("created_at", "updated_at", "user_id")


class _Sql:
    """The translation for one dialect (``sqlite`` or ``postgresql``)."""

    def __init__(self, dialect: str, tenant_id: str) -> None:
        self.pg = dialect == "postgresql"
        self.dialect = dialect
        self.tenant_id = tenant_id

    # --- values of fields ---------------------------------------------------------------

    def fold(self, expr: ColumnElement[Any]) -> ColumnElement[Any]:
        if self.pg:
            return func.translate(expr, _UPPER, _UPPER.lower())
        return func.lower(expr)  # SQLite's lower() folds ASCII only, as core.lucene.fold

    def profile(self, key: str, column: ColumnElement[Any] | None = None) -> ColumnElement[Any]:
        """``profile[key]`` when it is a string, else NULL."""
        profile = _T.c.profile if column is None else column
        if self.pg:
            doc = cast(profile, JSONB)
            return case((func.jsonb_typeof(doc.op("->")(key)) == "string", doc.op("->>")(key)))
        path = _path(key)
        return case((func.json_type(profile, path) == "text", func.json_extract(profile, path)))

    def text(self, spec: Field) -> ColumnElement[Any]:
        """The string a STRING field is compared on (folded when case-insensitive)."""
        name = spec.name
        expr: ColumnElement[Any]
        if name in _COLUMNS:
            expr = _T.c[name]
        elif name in user_keys.FOLDED and spec.folded:
            return user_keys.folded_key(self.dialect, name)
        elif name in user_keys.SEARCHED:
            return user_keys.profile_key(self.dialect, name)
        elif name == "email.domain":
            email = self.profile("email")
            at = func.strpos(email, "@") if self.pg else func.instr(email, "@")
            expr = case((at > 0, func.substr(email, at + 1)))
        elif name == "identities.provider":
            expr = self.before_bar()
        elif name == "identities.user_id":
            bar = func.strpos(_T.c.user_id, "|") if self.pg else func.instr(_T.c.user_id, "|")
            expr = func.substr(_T.c.user_id, bar + 1)
        else:  # pragma: no cover - every STRING field of USERS is above or in ``leaf``
            raise AssertionError(name)
        return self.fold(expr) if spec.folded else expr

    def before_bar(self) -> ColumnElement[Any]:
        if self.pg:
            return func.split_part(_T.c.user_id, "|", 1)
        return func.substr(_T.c.user_id, 1, func.instr(_T.c.user_id, "|") - 1)

    def flag(self, name: str) -> ColumnElement[Any]:
        """A BOOLEAN field: ``'true'``, ``'false'`` or NULL (absent or not a boolean)."""
        if name == "blocked":
            return case((_T.c.blocked, "true"), else_="false")
        if self.pg:
            doc = cast(_T.c.profile, JSONB)
            return case((func.jsonb_typeof(doc.op("->")(name)) == "boolean", doc.op("->>")(name)))
        kind = func.json_type(_T.c.profile, _path(name))
        return case((kind.in_(("true", "false")), kind))

    # --- leaves -------------------------------------------------------------------------

    def where(self, node: Node) -> ColumnElement[bool]:
        if isinstance(node, And):
            return and_(*(self.where(part) for part in node.parts))
        if isinstance(node, Or):
            return or_(*(self.where(part) for part in node.parts))
        if isinstance(node, Not):
            return not_(self.where(node.part))
        spec = USERS.field(node.field)
        if spec.kind is Kind.METADATA:
            return self.metadata(spec, node)
        if node.field == "identities.connection":
            return self.connection(node)
        if isinstance(node, Exists):
            return self.exists(spec)
        if isinstance(node, Flag):
            value = self.flag(spec.name)
            return _sure(value, value == ("true" if node.value else "false"))
        if isinstance(node, Between):
            return self.between(spec, node)
        if isinstance(node, Match) and spec.name == "user_id":
            return _T.c.user_id == node.value
        value = self.text(spec)
        if isinstance(node, Match):
            return _sure(value, value == node.value)
        if isinstance(node, Pattern):
            ranged = user_keys.user_id_key(self.dialect) if spec.name == "user_id" else value
            prefix = _prefix(ranged, node.parts[0])
            return _sure(value, and_(*prefix, self.like(value, node.parts)))
        raise _unexpected(node)

    def exists(self, spec: Field) -> ColumnElement[bool]:
        if spec.kind is Kind.BOOLEAN:
            return self.flag(spec.name).is_not(None)
        if spec.kind in (Kind.INTEGER, Kind.DATE):
            return self.number(spec.name).is_not(None)
        return self.text(spec).is_not(None)

    def number(self, name: str) -> ColumnElement[Any]:
        # absent before a first login (docs/specs/management-api.md §3.1)
        if name == "logins_count":
            return case((_T.c.logins_count > 0, _T.c.logins_count))
        return _T.c[name]

    def between(self, spec: Field, node: Between) -> ColumnElement[bool]:
        column = _T.c[spec.name]  # the bare column, so that the range is on its index
        low = node.low
        terms: list[ColumnElement[bool]] = []
        if spec.name == "logins_count":  # present: at least one login
            # one lower bound, so that SQLite ranges the index on it (not on "> 0")
            low = 1 if low is None or (isinstance(low, int) and low < 1) else low
        else:
            terms.append(column.is_not(None))
        if low is not None:
            terms.append(column >= low)
        if node.high is not None:
            terms.append(column < node.high)
        return and_(*terms)

    def like(self, value: ColumnElement[Any], parts: tuple[str, ...]) -> ColumnElement[bool]:
        return like(value, parts, pg=self.pg)

    def connection(self, node: Node) -> ColumnElement[bool]:
        name = _CONNECTIONS.c.name
        if isinstance(node, Exists):
            condition: ColumnElement[bool] = true()
        elif isinstance(node, Match):
            condition = name == node.value
        elif isinstance(node, Pattern):
            condition = self.like(name, node.parts)
        else:
            raise _unexpected(node)
        return exists().where(
            _CONNECTIONS.c.id == _T.c.connection_id,
            _CONNECTIONS.c.tenant_id == _T.c.tenant_id,
            condition,
        )

    # --- metadata -----------------------------------------------------------------------

    def metadata(self, spec: Field, node: Node) -> ColumnElement[bool]:
        root, *keys = spec.path
        if self.pg:
            return self.pg_metadata(root, keys, node)
        return self.sqlite_metadata(root, keys, node)

    def pg_metadata(self, root: str, keys: list[str], node: Node) -> ColumnElement[bool]:
        path = "lax $" + "".join(f'."{key}"' for key in keys) + "[*]"
        found = (
            func.jsonb_path_query(cast(_T.c[root], JSONB), cast(literal(path), JSONPATH))
            .table_valued("value")
            .render_derived()
        )
        item = found.c.value
        if isinstance(node, Exists):
            condition = and_(
                func.jsonb_typeof(item) != "null",
                item.not_in([cast(literal("[]"), JSONB), cast(literal("{}"), JSONB)]),
            )
        elif isinstance(node, Match):
            condition = or_(*(item == cast(literal(c), JSONB) for c in _candidates(node.value)))
        else:
            raise _unexpected(node)
        return exists().select_from(found).where(condition)

    def sqlite_metadata(self, root: str, keys: list[str], node: Node) -> ColumnElement[bool]:
        source: ColumnElement[Any] = _T.c[root]
        steps = []
        for key in keys:
            path = _path(key)
            inner = source.op("->")(path)
            items = func.json_each(
                case((func.json_type(source, path) == "array", inner), else_=func.json_array(inner))
            )
            step = items.table_valued("value", "type").alias()
            steps.append(step)
            source = step.c.value
        conditions = [step.c.type == "object" for step in steps[:-1]]
        last = steps[-1]
        if isinstance(node, Exists):
            conditions.append(
                and_(
                    last.c.type != "null",
                    or_(
                        last.c.type.not_in(("object", "array")),
                        func.json(last.c.value).not_in(("{}", "[]")),
                    ),
                )
            )
        elif isinstance(node, Match):
            conditions.append(_sqlite_equal(last.c.type, last.c.value, node.value))
        else:
            raise _unexpected(node)
        joined: Any = steps[0]
        for step in steps[1:]:
            joined = joined.join(step, true())  # each json_each reads the one before it
        query = select(literal(1)).select_from(joined).where(*conditions)
        return query.exists()


def like(value: ColumnElement[Any], parts: tuple[str, ...], *, pg: bool) -> ColumnElement[bool]:
    """``value`` is ``parts`` joined by any characters, case-sensitively (LIKE on
    PostgreSQL, GLOB on SQLite, every other special character escaped)."""
    if pg:
        escaped = [p.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") for p in parts]
        return value.like("%".join(escaped), escape="\\")
    table = str.maketrans({"*": "[*]", "?": "[?]", "[": "[[]"})
    return value.op("GLOB", return_type=Boolean)("*".join(p.translate(table) for p in parts))


def _unexpected(node: Node) -> AssertionError:  # the parser never builds these
    return AssertionError(f"no SQL for {node!r}")


def _path(key: str) -> ColumnElement[Any]:
    """A JSON path literal: keys are ``[A-Za-z0-9_-]+`` (checked by the parser)."""
    return literal_column(f"'$.\"{key}\"'")


def _candidates(text: str) -> list[str]:
    """The JSON values a metadata value written as ``text`` equals."""
    values = [json.dumps(text)]
    number = json_number(text)
    if number is not None:
        values.append(json.dumps(number))
    if text in ("true", "false"):
        values.append(text)
    return values


def _sqlite_equal(kind: Any, value: Any, text: str) -> ColumnElement[bool]:
    terms = [and_(kind == "text", value == text)]
    number = json_number(text)
    if number is not None:
        terms.append(and_(kind.in_(("integer", "real")), value == number))
    if text in ("true", "false"):
        terms.append(kind == text)
    return or_(*terms)


def _sure(value: ColumnElement[Any], condition: ColumnElement[bool]) -> ColumnElement[bool]:
    """``condition`` made false (not NULL) where ``value`` is NULL."""
    return and_(value.is_not(None), condition)


def _prefix(value: ColumnElement[Any], prefix: str) -> list[ColumnElement[bool]]:
    """``value`` starts with ``prefix``, as a range an index answers (none for ``""``)."""
    if not prefix:
        return []
    terms = [value >= prefix]
    above = _successor(prefix)
    if above is not None:
        terms.append(value < above)
    return terms


def _successor(prefix: str) -> str | None:
    """The least string above every string that starts with ``prefix`` (code point order,
    which is UTF-8's byte order), or None when there is none."""
    while prefix:
        last = ord(prefix[-1]) + 1
        if last == 0xD800:  # surrogates are no characters of a stored string
            last = 0xE000
        if last <= 0x10FFFF:
            return prefix[:-1] + chr(last)
        prefix = prefix[:-1]
    return None


def sort_key(field: str, dialect: str) -> ColumnElement[Any]:
    """The value a page is ordered by: the indexed expression or column."""
    if field in user_keys.SORTED:
        return user_keys.profile_key(dialect, field)
    return _T.c[field]


@dataclass(frozen=True)
class _Walk:
    """One index walk of an order whose field may be absent."""

    condition: ColumnElement[bool]
    present: bool
    by_key: bool  # ordered by the key first: constant within an absent walk, which is what
    # makes the planner walk the key's index there instead of filtering (tenant_id, user_id)
    value: ColumnElement[Any]  # what the merge orders by (the same for all absent rows)


def _walks(field: str, key: ColumnElement[Any], dialect: str) -> list[_Walk]:
    # An absent walk: PostgreSQL walks the key's index when ordered by the (constant) key
    # too; SQLite takes IS NULL / = 0 as equality and reads user_id order from the same
    # index, but sorts everything when the key comes first.
    pg = dialect == "postgresql"
    if field == "logins_count":  # absent before a first login
        zero = literal(0)
        # Nothing writes a count below 0 (a login adds one): the last walk is an empty range
        # of the index, kept so that the SQL stays the search's exact meaning; it would
        # need ordering by user_id alone if it could ever hold more than a page walk.
        return [
            _Walk(key > 0, present=True, by_key=True, value=key),
            _Walk(key == 0, present=False, by_key=pg, value=zero),
            _Walk(key < 0, present=False, by_key=True, value=zero),
        ]
    present: ColumnElement[bool] = key.is_not(None)
    if not pg and field in user_keys.SORTED:  # a string: a range SQLite starts past NULLs
        present = key >= literal_column("''")
    return [
        _Walk(present, present=True, by_key=True, value=key),
        _Walk(key.is_(None), present=False, by_key=pg, value=key),
    ]


def page_statement(
    tenant_id: str, query: Node | None, sort: Sort, dialect: str, offset: int, limit: int
) -> Select[Any]:
    """One page in ``sort`` order: the sort field (absent values last either way), then
    ``user_id``, in one direction. An order whose field may be absent walks its index twice
    (present, then absent), at most ``offset + limit`` rows each, and merges the two."""
    where = search_filter(tenant_id, query, dialect)
    key = sort_key(sort.field, dialect)

    def ordered(value: Any) -> Any:
        return value.desc() if sort.descending else value.asc()

    if sort.field in _NEVER_ABSENT:
        order = [ordered(key)] if sort.field == "user_id" else [ordered(key), ordered(_T.c.user_id)]
        return select(_T).where(where).order_by(*order).offset(offset).limit(limit)
    walks = []
    for walk in _walks(sort.field, key, dialect):
        order = [ordered(key), ordered(_T.c.user_id)] if walk.by_key else [ordered(_T.c.user_id)]
        part = (
            select(
                _T, literal(0 if walk.present else 1).label("absent"), walk.value.label("sort_key")
            )
            .where(where, walk.condition)
            .order_by(*order)
            .limit(offset + limit)
            .subquery()
        )
        walks.append(select(part))
    merged = union_all(*walks).subquery("page")
    return (
        select(*(merged.c[column.name] for column in _T.c))
        .order_by(merged.c.absent, ordered(merged.c.sort_key), ordered(merged.c.user_id))
        .offset(offset)
        .limit(limit)
    )


def search_filter(tenant_id: str, query: Node | None, dialect: str) -> ColumnElement[bool]:
    """The WHERE clause of a search in one tenant."""
    scoped = _T.c.tenant_id == tenant_id
    if query is None:
        return scoped
    return and_(scoped, _Sql(dialect, tenant_id).where(query))


async def search_users(
    conn: AsyncConnection,
    tenant_id: str,
    query: Node | None,
    sort: Sort = DEFAULT_SORT,
    offset: int = 0,
    limit: int = 50,
) -> tuple[list[User], int]:
    """One page of the tenant's users matching ``query`` in ``sort`` order, and how many
    match in all."""
    check_window(offset, limit)
    dialect = conn.dialect.name
    where = search_filter(tenant_id, query, dialect)
    total = await conn.scalar(select(func.count()).select_from(_T).where(where))
    page = page_statement(tenant_id, query, sort, dialect, offset, limit)
    rows = (await conn.execute(page)).all()
    return [_user(row) for row in rows], int(total or 0)


__all__ = ["like", "page_statement", "search_filter", "search_users", "sort_key"]
