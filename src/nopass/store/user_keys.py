"""The indexed SQL expressions of ``users``: one text per dialect, shared by the indexes
(``tables.py``, migration 0007) and the search (``user_search.py``), so that the planner of
either database matches the query's expression to the index's (both compare parsed trees;
constants are written into the text, never bound, so a generic plan matches too).

A profile string is ``profile[key]`` when it is a JSON string, else NULL. Its folded form
lowers ASCII letters only (``core.lucene.fold``). On PostgreSQL every expression is
``COLLATE "C"``: bytewise order, which is Python's order of ``str`` (``core.user_query``) and
what makes a prefix a plain range (``>= p AND < p_next``) under any database locale.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, String, literal_column

SEARCHED = ("email", "phone_number", "name", "nickname", "given_name", "family_name")
SORTED = ("email", "name", "nickname", "given_name", "family_name")
FOLDED = ("email", "name", "nickname", "given_name", "family_name")
_UPPER = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"


def profile_sql(dialect: str, key: str) -> str:
    """``profile[key]`` when it is a string, else NULL (``key`` is one of ``SEARCHED``)."""
    if key not in SEARCHED:  # pragma: no cover - the keys are constants
        raise AssertionError(key)
    if dialect == "postgresql":
        doc = "(profile)::jsonb"
        raw = f"CASE WHEN jsonb_typeof({doc} -> '{key}') = 'string' THEN {doc} ->> '{key}' END"
        return f'({raw}) COLLATE "C"'
    path = f"'$.\"{key}\"'"
    return f"CASE WHEN json_type(profile, {path}) = 'text' THEN json_extract(profile, {path}) END"


def folded_sql(dialect: str, key: str) -> str:
    """The folded ``profile[key]`` (``key`` one of ``FOLDED``)."""
    if dialect == "postgresql":
        raw = profile_sql(dialect, key).removesuffix(' COLLATE "C"')
        return f"(translate({raw}, '{_UPPER}', '{_UPPER.lower()}')) COLLATE \"C\""
    return f"lower({profile_sql(dialect, key)})"


def profile_key(dialect: str, key: str) -> ColumnElement[Any]:
    return literal_column(f"({profile_sql(dialect, key)})", String)


def folded_key(dialect: str, key: str) -> ColumnElement[Any]:
    return literal_column(f"({folded_sql(dialect, key)})", String)


def user_id_key(dialect: str) -> ColumnElement[Any]:
    """``user_id`` as a prefix range compares it: bytewise (the unique index on SQLite)."""
    if dialect == "postgresql":
        return literal_column('(user_id COLLATE "C")', String)
    return literal_column("user_id", String)


def index_name(key: str, *, folded: bool) -> str:
    """``ix_users_tenant_<key>`` (the sort order) or ``..._folded`` (the search)."""
    return f"ix_users_tenant_{key}" + ("_folded" if folded else "")


def indexes() -> list[tuple[str, str, str, bool]]:
    """Every expression index as (name, dialect, expression, sorted): its columns are
    ``tenant_id``, the expression, and for a sort index ``user_id``, the tie-break, so that a
    page in that order is a walk of the index."""
    found = []
    for dialect in ("sqlite", "postgresql"):
        for key in SEARCHED:
            if key in SORTED:
                found.append(
                    (index_name(key, folded=False), dialect, profile_sql(dialect, key), True)
                )
            if key in FOLDED:
                found.append(
                    (index_name(key, folded=True), dialect, folded_sql(dialect, key), False)
                )
            else:
                found.append(
                    (index_name(key, folded=False), dialect, profile_sql(dialect, key), False)
                )
    # a prefix of user_id; SQLite's unique (tenant_id, user_id) is bytewise already
    found.append(("ix_users_tenant_user_id_bytewise", "postgresql", '(user_id COLLATE "C")', False))
    return found
