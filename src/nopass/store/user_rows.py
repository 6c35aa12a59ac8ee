"""A ``users`` row as the domain's ``User``."""

from __future__ import annotations

from typing import Any

from nopass.core.models import User


def user_of(row: Any) -> User:
    return User(
        tenant_id=row.tenant_id,
        user_id=row.user_id,
        connection_id=row.connection_id,
        identifier=row.identifier,
        profile=row.profile,
        created_at=row.created_at,
        updated_at=row.updated_at,
        last_login=row.last_login,
        last_ip=row.last_ip,
        logins_count=row.logins_count,
        app_metadata=row.app_metadata,
        user_metadata=row.user_metadata,
        blocked=row.blocked,
    )
