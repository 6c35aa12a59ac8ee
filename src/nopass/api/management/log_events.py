"""Audit events in Auth0's log event shape (docs/specs/management-api.md §4.3).

Every field the recording shows is present; what nopass does not know is ``""`` or ``null``
exactly where Auth0's recorded event has them (``connection: null``, ``connection_id: ""``,
``user_id: ""``, ``details: null``). ``client_name``, ``connection_id`` and ``strategy`` come
from the tenant's configuration at reading time (events store names and ids, not copies).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from nopass.core.models import LoggedEvent, TenantConfig

# Token events carry what was asked for; Auth0 lifts these two out of the details.
_LIFTED = ("audience", "scope")


def iso_ms(moment: datetime) -> str:
    """ISO 8601 in UTC with milliseconds and ``Z``, as Auth0 writes dates."""
    utc = moment.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


def log_event(logged: LoggedEvent, config: TenantConfig, hostname: str) -> dict[str, Any]:
    event = logged.event
    client = config.clients.get(event.client_id) if event.client_id else None
    connection = config.connections.get(event.connection) if event.connection else None
    passwordless = connection is not None and connection.is_passwordless
    details = dict(event.details)
    shaped: dict[str, Any] = {
        "_id": logged.log_id,
        "log_id": logged.log_id,
        "date": iso_ms(logged.date),
        "type": event.type,
        "description": event.description,
        "connection": event.connection,
        "connection_id": connection.id if connection is not None else "",
        "client_id": event.client_id or "",
        "client_name": client.name if client is not None else "",
        "ip": event.ip or "",
        "hostname": hostname,
        "user_id": event.user_id or "",
        "user_name": event.user_name or "",
        "user_agent": event.user_agent or "",
        "strategy": connection.strategy if connection is not None else "",
        "strategy_type": "passwordless" if passwordless else "",
        "organization_id": None,
        "organization_name": None,
        "isMobile": False,
        "details": details or None,
    }
    for name in _LIFTED:
        value = details.get(name)
        if isinstance(value, str):
            shaped[name] = value
    return shaped
