"""Running the statements built once at import (the hot ones), their rows in a list.

On PostgreSQL this is SQLAlchemy's ``execute``. On SQLite, what SQLAlchemy does at every
execution (a cache key, parameter processing, a greenlet switch, the result machinery:
60-150 µs of CPU, some twenty times a login; docs/benchmarks.md) is done once per statement
instead: it is compiled once, with its parameter order and type processors, and then runs
straight on the connection's ``sqlite3`` handle (store/sqlite_driver.py), in the transaction
SQLAlchemy began. Rows come back as named tuples, so callers read them as they read
SQLAlchemy's rows; database errors come back as SQLAlchemy's exceptions.

Only statements that live as long as the process may be passed (module constants, or
``functools.cache`` results): plans are kept by the statement's identity.
"""

from __future__ import annotations

import collections
import sqlite3
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError, MultipleResultsFound, NoResultFound
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql import ClauseElement
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.types import TupleType

from nopass.store.sqlite_driver import LeanConnection

_MAX_PLANS = 512  # a statement built per call would otherwise grow the cache without end


class Rows:
    """A statement's rows, fetched, and the rows it changed (the part of SQLAlchemy's
    ``Result`` the stores use)."""

    __slots__ = ("_rows", "rowcount")

    def __init__(self, rows: Sequence[Any], rowcount: int) -> None:
        self._rows = rows
        self.rowcount = rowcount

    def __iter__(self) -> Iterator[Any]:
        return iter(self._rows)

    def all(self) -> Sequence[Any]:
        return self._rows

    def first(self) -> Any | None:
        return self._rows[0] if self._rows else None

    def one(self) -> Any:
        if not self._rows:
            raise NoResultFound("No row was found when one was required")
        if len(self._rows) > 1:
            raise MultipleResultsFound("Multiple rows were found when exactly one was required")
        return self._rows[0]

    def scalar_one(self) -> Any:
        return self.one()[0]


@dataclass(frozen=True, slots=True)
class _Plan:
    statement: ClauseElement  # held, so that its id is not reused while the plan lives
    sql: str
    slots: tuple[tuple[str, Any, Callable[[Any], Any] | None], ...]  # name, fixed value, bind
    row: Callable[[Any], Any] | None  # builds a row from the driver's tuple; None: no rows


_plans: dict[tuple[int, tuple[str, ...]], _Plan | None] = {}


async def run(
    conn: AsyncConnection, statement: ClauseElement, params: Mapping[str, Any] | None = None
) -> Rows:
    """Execute ``statement`` (built once) with ``params`` in ``conn``'s transaction."""
    given = params or {}
    driver = _lean(conn)
    plan = _plan_for(statement, conn.dialect, given) if driver is not None else None
    if driver is None or plan is None:
        result = await conn.execute(statement, dict(given))  # type: ignore[call-overload]
        return Rows(result.all() if result.returns_rows else (), result.rowcount)
    values = []
    for name, fixed, bind in plan.slots:
        value = given.get(name, fixed)
        values.append(value if bind is None else bind(value))
    try:
        _, rowcount, _, raw = await driver.run(plan.sql, values, many=False)
    except sqlite3.Error as exc:
        raise DBAPIError.instance(
            plan.sql, values, exc, sqlite3.Error, dialect=conn.dialect
        ) from exc
    if plan.row is None:
        return Rows((), rowcount)
    return Rows([plan.row(r) for r in raw], rowcount)


def _lean(conn: AsyncConnection) -> LeanConnection | None:
    """The SQLite connection under ``conn``, when its transaction is open (SQLAlchemy
    begins one itself otherwise, which this path must not skip)."""
    if conn.dialect.name != "sqlite":
        return None
    sync = conn.sync_connection
    if sync is None or not sync.in_transaction():
        return None
    driver = sync.connection.driver_connection
    return driver if isinstance(driver, LeanConnection) else None


def _plan_for(
    statement: ClauseElement, dialect: Dialect, params: Mapping[str, Any]
) -> _Plan | None:
    keys = tuple(sorted(params))
    key = (id(statement), keys)
    try:
        return _plans[key]
    except KeyError:
        plan = _compile(statement, dialect, keys)
        if len(_plans) < _MAX_PLANS:
            _plans[key] = plan
        return plan


def _compile(statement: ClauseElement, dialect: Dialect, keys: tuple[str, ...]) -> _Plan | None:
    """The plan, or None for what needs SQLAlchemy at execution time (expanding or
    literal-execute parameters, column defaults computed in Python)."""
    compiled = statement.compile(dialect=dialect, column_keys=list(keys))
    if not isinstance(compiled, SQLCompiler) or compiled.positiontup is None:
        return None
    if (
        compiled.insert_prefetch
        or compiled.update_prefetch
        or compiled.literal_execute_params
        or compiled.post_compile_params
        or compiled.escaped_bind_names
        or compiled.has_out_parameters
    ):
        return None
    by_name = {name: bind for bind, name in compiled.bind_names.items()}
    for name, bind in by_name.items():
        if bind.key != name and bind.key in keys:
            return None  # given under its key, not its name
        if name not in keys and (bind.required or bind.callable is not None):
            return None  # SQLAlchemy says what is missing, or calls the callable
    processors: dict[str, Callable[[Any], Any]] = {}
    for name, bind in by_name.items():
        if isinstance(bind.type, TupleType):
            return None  # a tuple's processors, one per element
        # What SQLAlchemy's execution applies (its cached form is private): the type's
        # dialect implementation's processor, looked up once per plan.
        processor = bind.type.dialect_impl(dialect).bind_processor(dialect)
        if processor is not None:
            processors[name] = processor
    slots = tuple(
        (name, by_name[name].effective_value if name not in keys else None, processors.get(name))
        for name in compiled.positiontup
    )
    return _Plan(statement, compiled.string, slots, _row_maker(compiled, dialect))


def _row_maker(compiled: SQLCompiler, dialect: Dialect) -> Callable[[Any], Any] | None:
    # The one private part (docs/upstream-internals.md): the result columns as compiled, in
    # the order of the SQL's, with their keys and types; SQLAlchemy's own rows are built
    # from them, and no public attribute has them for SELECT and RETURNING alike.
    columns = compiled._result_columns
    if not columns:
        return None
    names = [c.keyname for c in columns]
    base = collections.namedtuple("Row", names, rename=True)  # type: ignore[misc]
    row_type = type("Row", (base,), {"__slots__": (), "_mapping": property(_mapping)})
    make: Callable[[Any], Any] = getattr(row_type, "_make")  # noqa: B009 (made by type())
    convert = [
        (i, p)
        for i, c in enumerate(columns)
        if (p := c.type.dialect_impl(dialect).result_processor(dialect, None)) is not None
    ]
    if not convert:
        return make

    def row(values: Any) -> Any:
        out = list(values)
        for i, process in convert:
            out[i] = process(out[i])
        return make(out)

    return row


def _mapping(row: Any) -> dict[str, Any]:
    return dict(zip(row._fields, row, strict=True))
