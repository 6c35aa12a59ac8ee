"""The log search of ``GET /api/v2/logs``: ``q`` and ``sort`` (docs/specs management-api.md
§4.1; syntax in ``nopass.core.lucene_parser``).

Every field is case-sensitive; ``*`` wildcards work on every field (``type:s*``), ``?`` is
refused, and ranges are taken on ``date`` only. A bare term searches ``client_name``,
``connection``, ``description``, ``ip``, ``log_id``, ``type`` and ``user_name``. A field with
no value in the event (``""`` or ``null`` in its Auth0 shape) matches nothing, not even ``*``
forms; ``_exists_:field`` is true where it has one.

``client_name``, ``connection_id``, ``strategy``, ``strategy_type`` and ``hostname`` are not
stored with the event: they come from the tenant configuration and the request.
``prepare`` rewrites a tree over them into one over the stored fields only (``client_id``,
``connection``, and constants), which is what ``AuditRepo.page`` takes.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from nopass.core import lucene, lucene_parser
from nopass.core.errors import InvalidQuery
from nopass.core.lucene import And, Field, Kind, Match, Node, Not, Or, Schema
from nopass.core.models import LoggedEvent, TenantConfig

SEARCH_CAP = 1000  # "you may paginate only through 1,000 search results"
MAX_PER_PAGE = 100  # "100 logs per request"

STORED: tuple[str, ...] = ("client_id", "connection", "description", "ip", "log_id", "type")
STORED += ("user_id", "user_name", "user_agent")
DERIVED = ("client_name", "connection_id", "hostname", "strategy", "strategy_type")
DEFAULT_FIELDS: tuple[str, ...] = (
    "client_name",
    "connection",
    "description",
    "ip",
    "log_id",
    "type",
)
DEFAULT_FIELDS += ("user_name",)


def _fields() -> dict[str, Field]:
    fields = [Field(name, Kind.STRING, (name,)) for name in STORED + DERIVED]
    fields.append(Field("date", Kind.DATE, ("date",)))
    return {spec.name: spec for spec in fields}


LOGS = Schema(fields=_fields(), default_fields=DEFAULT_FIELDS, sortable=("date",))

TRUE: Node = And(())  # matches everything (an empty conjunction)
FALSE: Node = Or(())  # matches nothing (an empty disjunction)


def parse_log_query(q: str | None) -> Node | None:
    """The tree of a log search ``q``; ``None`` (everything) when absent or blank."""
    return None if q is None else lucene_parser.parse(q, LOGS)


def parse_log_sort(sort: str | None) -> bool:
    """Whether the page is newest first: ``date:-1`` (the default) or ``date:1``."""
    if sort is None or not sort.strip():
        return True
    name, colon, direction = sort.strip().partition(":")
    if name != "date":
        raise InvalidQuery(f"cannot sort logs by {name!r}: sort by date:1 or date:-1")
    if not colon or direction not in ("1", "-1"):
        raise InvalidQuery("sort is date:1 (oldest first) or date:-1 (newest first)")
    return direction == "-1"


def check_log_window(offset: int, limit: int) -> None:
    """Refuse more than 100 logs a page, or a page past the first 1000 results."""
    if offset < 0 or limit < 0:
        raise InvalidQuery("page and per_page must not be negative")
    if limit > MAX_PER_PAGE:
        raise InvalidQuery(f"per_page is at most {MAX_PER_PAGE} logs")
    if offset + limit > SEARCH_CAP:
        raise InvalidQuery(f"a log search returns at most the first {SEARCH_CAP} results")


def _derived(config: TenantConfig, hostname: str, name: str) -> dict[str, str]:
    """What one derived field is, per stored value (client id or connection name)."""
    if name == "client_name":
        return {cid: c.name for cid, c in config.clients.items() if c.name}
    if name == "connection_id":
        return {n: c.id for n, c in config.connections.items()}
    if name == "strategy":
        return {n: c.strategy for n, c in config.connections.items()}
    if name == "strategy_type":
        return {n: "passwordless" for n, c in config.connections.items() if c.is_passwordless}
    return {"": hostname} if hostname else {}


def log_view(logged: LoggedEvent, config: TenantConfig, hostname: str) -> dict[str, Any]:
    """The event as the search sees it: the stored fields that have a value, ``date`` as a
    datetime, and the fields the configuration and the request give it."""
    event = logged.event
    view = stored_view(logged)
    for name in DERIVED:
        key = event.client_id if name == "client_name" else event.connection
        value = _derived(config, hostname, name).get("" if name == "hostname" else key or "")
        if value is not None:
            view[name] = value
    return view


def stored_view(logged: LoggedEvent) -> dict[str, Any]:
    """The stored fields of an event that have a value (what a prepared tree reads)."""
    event = logged.event
    values: dict[str, Any] = {
        "log_id": logged.log_id,
        "date": logged.date,
        "type": event.type,
        "description": event.description,
        "client_id": event.client_id,
        "connection": event.connection,
        "ip": event.ip,
        "user_id": event.user_id,
        "user_name": event.user_name,
        "user_agent": event.user_agent,
    }
    return {key: value for key, value in values.items() if value is not None}


def matches(query: Node | None, view: Mapping[str, Any]) -> bool:
    """Whether an event view (``log_view``) matches ``query``."""
    return lucene.matches(query, view, LOGS)


def prepare(query: Node | None, config: TenantConfig, hostname: str) -> Node | None:
    """``query`` over stored fields only: for every event ``e``,
    ``matches(prepare(q), stored_view(e)) == matches(q, log_view(e, config, hostname))``."""
    return None if query is None else _prepare(query, config, hostname)


def _prepare(node: Node, config: TenantConfig, hostname: str) -> Node:
    if isinstance(node, And):
        return And(tuple(_prepare(part, config, hostname) for part in node.parts))
    if isinstance(node, Or):
        return Or(tuple(_prepare(part, config, hostname) for part in node.parts))
    if isinstance(node, Not):
        return Not(_prepare(node.part, config, hostname))
    if node.field not in DERIVED:
        return node
    table = _derived(config, hostname, node.field)
    chosen = sorted(key for key, value in table.items() if matches(node, {node.field: value}))
    if node.field == "hostname":
        return TRUE if chosen else FALSE
    stored = "client_id" if node.field == "client_name" else "connection"
    return _any(stored, chosen)


def _any(field: str, values: Iterable[str]) -> Node:
    found = tuple(Match(field, value) for value in values)
    return found[0] if len(found) == 1 else Or(found)


__all__ = [
    "FALSE",
    "LOGS",
    "MAX_PER_PAGE",
    "SEARCH_CAP",
    "TRUE",
    "check_log_window",
    "log_view",
    "matches",
    "parse_log_query",
    "parse_log_sort",
    "prepare",
    "stored_view",
]
