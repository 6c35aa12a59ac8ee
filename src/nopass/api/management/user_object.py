"""Auth0's user object (docs/specs/management-api.md §3.1) for a nopass user.

Absent attributes are left out, never ``null``; metadata only when it holds something;
timestamps ISO-8601 UTC with milliseconds and ``Z``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

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
