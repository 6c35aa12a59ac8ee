"""The log search in SQL: a prepared ``q`` tree (``nopass.core.log_query.prepare``, stored
fields only) as a WHERE clause over ``audit_events`` on SQLite and PostgreSQL.

It returns exactly the events ``nopass.core.log_query.matches`` accepts (the property test in
tests/integration/test_log_search.py holds the two together). Every leaf is two-valued (never
NULL) so that ``NOT`` means what it means in Python. Every clause is ANDed with the tenant:
an exact ``type`` goes through ``ix_audit_events_tenant_type``, an exact ``user_id`` through
``ix_audit_events_tenant_user`` and a ``date`` range through ``ix_audit_events_tenant_created``.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, Text, and_, cast, false, func, not_, or_, true

from nopass.core.log_query import LOGS
from nopass.core.lucene import And, Between, Exists, Match, Node, Not, Or, Pattern
from nopass.core.models import LOG_ID_DIGITS, LoggedEvent
from nopass.store.tables import AuditEventRow, table
from nopass.store.user_search import like

_T = table(AuditEventRow)
_COLUMNS: tuple[str, ...] = ("client_id", "connection", "description", "ip", "type")
_COLUMNS += ("user_id", "user_name", "user_agent")


def _sure(value: ColumnElement[Any], condition: ColumnElement[bool]) -> ColumnElement[bool]:
    return and_(value.is_not(None), condition)


class _Sql:
    def __init__(self, dialect: str) -> None:
        self.pg = dialect == "postgresql"

    def log_id(self) -> ColumnElement[Any]:
        """The fixed-width decimal log id, as text."""
        if self.pg:
            return func.lpad(cast(_T.c.id, Text), LOG_ID_DIGITS, "0")
        return func.printf(f"%0{LOG_ID_DIGITS}d", _T.c.id)

    def where(self, node: Node) -> ColumnElement[bool]:
        if isinstance(node, And):
            return and_(true(), *(self.where(part) for part in node.parts))
        if isinstance(node, Or):
            return or_(false(), *(self.where(part) for part in node.parts))
        if isinstance(node, Not):
            return not_(self.where(node.part))
        spec = LOGS.field(node.field)
        if spec.name == "date":
            if isinstance(node, Exists):
                return true()
            if isinstance(node, Between):
                terms: list[ColumnElement[bool]] = [true()]
                if node.low is not None:
                    terms.append(_T.c.created_at >= node.low)
                if node.high is not None:
                    terms.append(_T.c.created_at < node.high)
                return and_(*terms)
            raise _unexpected(node)
        if spec.name == "log_id":
            if isinstance(node, Exists):
                return true()
            if isinstance(node, Match):
                number = LoggedEvent.number_of(node.value)
                if number is None or LoggedEvent.id_of(number) != node.value:
                    return false()
                return _T.c.id == number
            if isinstance(node, Pattern):
                return like(self.log_id(), node.parts, pg=self.pg)
            raise _unexpected(node)
        if spec.name not in _COLUMNS:  # derived fields are gone after ``prepare``
            raise _unexpected(node)
        column = _T.c[spec.name]
        if isinstance(node, Exists):
            return column.is_not(None)
        if isinstance(node, Match):
            return _sure(column, column == node.value)
        if isinstance(node, Pattern):
            return _sure(column, like(column, node.parts, pg=self.pg))
        raise _unexpected(node)


def _unexpected(node: Node) -> AssertionError:
    return AssertionError(f"no SQL for {node!r} (was the query prepared?)")


def log_filter(query: Node | None, dialect: str) -> ColumnElement[bool] | None:
    """The WHERE clause of a prepared query (``None``: every event)."""
    return None if query is None else _Sql(dialect).where(query)


__all__ = ["log_filter"]
