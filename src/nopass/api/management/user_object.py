"""Auth0's user object (docs/specs/management-api.md §3.1) for a nopass user.

Absent attributes are left out, never ``null``; metadata only when it holds something;
timestamps ISO-8601 UTC with milliseconds and ``Z``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from nopass.core.models import RefreshGrant, Session
from nopass.flows.management.users import UserView

PROFILE_FIELDS = (
    "email",
    "email_verified",
    "phone_number",
    "phone_verified",
    "name",
    "nickname",
    "picture",
    "given_name",
    "family_name",
)


def iso(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def user_object(view: UserView) -> dict[str, Any]:
    user = view.user
    provider, _, local_id = user.user_id.partition("|")
    body: dict[str, Any] = {"user_id": user.user_id}
    body.update({k: user.profile[k] for k in PROFILE_FIELDS if user.profile.get(k) is not None})
    body["identities"] = [
        {
            "connection": view.connection,
            "user_id": local_id,
            "provider": provider,
            "isSocial": False,
        }
    ]
    body["created_at"] = iso(user.created_at)
    body["updated_at"] = iso(user.updated_at)
    if user.last_login is not None:
        body["last_login"] = iso(user.last_login)
    if user.last_ip:
        body["last_ip"] = user.last_ip
    if user.logins_count:
        body["logins_count"] = user.logins_count
    body["blocked"] = user.blocked
    if user.app_metadata:
        body["app_metadata"] = dict(user.app_metadata)
    if user.user_metadata:
        body["user_metadata"] = dict(user.user_metadata)
    return body


def session_object(session: Session) -> dict[str, Any]:
    """A browser session at nopass (the Python v6 ``SessionResponseContent`` names; nopass
    does not track interactions, so ``updated_at`` and ``authenticated_at`` are its start)."""
    created = iso(session.created_at)
    return {
        "id": session.id,
        "user_id": session.user_id,
        "created_at": created,
        "updated_at": created,
        "authenticated_at": created,
        "expires_at": iso(session.expires_at),
    }


def refresh_token_object(grant: RefreshGrant) -> dict[str, Any]:
    """A refresh token (never its value; the ``RefreshTokenResponseContent`` names)."""
    body: dict[str, Any] = {
        "id": grant.id,
        "user_id": grant.user_id,
        "created_at": iso(grant.created_at),
        "client_id": grant.client_id,
    }
    if grant.expires_at is not None:
        body["expires_at"] = iso(grant.expires_at)
    if grant.audience:
        body["resource_servers"] = [{"audience": grant.audience, "scopes": grant.scope}]
    return body
