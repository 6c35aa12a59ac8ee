"""The context every login audit event carries (Auth0 tenant-log fields)."""

from __future__ import annotations

from nopass.core.models import AuditEvent, Client, Connection
from nopass.core.ports import RequestInfo

MAX_USER_NAME = 320  # the audit column


def login_event(
    tenant_id: str,
    request: RequestInfo,
    client: Client,
    connection: Connection | None,
    username: str | None,
) -> AuditEvent:
    """A typeless event with who, from where, through which client and connection; the
    caller turns it into each event it writes with ``AuditEvent.but``."""
    return AuditEvent(
        tenant_id=tenant_id,
        type="",
        ip=request.ip,
        user_agent=request.user_agent,
        client_id=client.client_id,
        connection=connection.name if connection else None,
        user_name=username[:MAX_USER_NAME] if username else None,
        details={"client_name": client.name},
    )
