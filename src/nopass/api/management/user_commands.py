"""The bodies of ``POST`` and ``PATCH /api/v2/users`` as typed commands (docs/specs/
management-api.md §3.4, §3.5): every property's type and length checked, the properties a
passwordless user cannot have refused, unknown ones refused. The domain rules (which
connection takes which identifier, clashes) are the flow's."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from nopass.core.errors import InvalidManagementRequest
from nopass.flows.management.users import ATTRIBUTES, NewUser, UserPatch

ATTRIBUTE_LENGTHS = {
    "name": 150,
    "given_name": 150,
    "family_name": 150,
    "nickname": 350,
    "picture": 2048,
}
CREATE_FIELDS = frozenset(
    {
        "connection",
        "email",
        "phone_number",
        "user_metadata",
        "blocked",
        "email_verified",
        "phone_verified",
        "app_metadata",
        "user_id",
        "password",
        "verify_email",
        "username",
        *ATTRIBUTES,
    }
)
UPDATE_FIELDS = frozenset(
    {
        "blocked",
        "email_verified",
        "email",
        "phone_number",
        "phone_verified",
        "user_metadata",
        "app_metadata",
        "verify_email",
        "verify_phone_number",
        "password",
        "connection",
        "client_id",
        "username",
        *ATTRIBUTES,
    }
)
NOT_PASSWORDLESS = ("password", "username")


def invalid(message: str) -> InvalidManagementRequest:
    return InvalidManagementRequest(f"Payload validation error: {message}")


def _known(body: Mapping[str, Any], allowed: frozenset[str]) -> None:
    extra = sorted(set(body) - allowed)
    if extra:
        raise invalid(f"'Additional properties not allowed: {', '.join(extra)}'.")
    for name in NOT_PASSWORDLESS:
        if name in body:
            raise InvalidManagementRequest(f"{name} is not supported on passwordless connections")


def _string(body: Mapping[str, Any], name: str, *, limit: int = 320) -> str | None:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise invalid(f"'Expected type string but found type {_type(value)}' on property {name}.")
    if not 1 <= len(value) <= limit:
        raise invalid(f"'String length must be 1 to {limit}' on property {name}.")
    return value


def _boolean(body: Mapping[str, Any], name: str) -> bool | None:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, bool):
        raise invalid(f"'Expected type boolean but found type {_type(value)}' on property {name}.")
    return value


def _object(body: Mapping[str, Any], name: str) -> dict[str, Any] | None:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, dict):
        raise invalid(f"'Expected type object but found type {_type(value)}' on property {name}.")
    return value


def _type(value: object) -> str:
    match value:
        case None:
            return "null"
        case bool():
            return "boolean"
        case int() | float():
            return "number"
        case str():
            return "string"
        case list():
            return "array"
    return "object"


def _no_verification(body: Mapping[str, Any], *names: str) -> None:
    for name in names:
        if _boolean(body, name):
            raise InvalidManagementRequest(
                f"{name} is not supported: nopass sends no verification messages"
            )


def _user_id(body: Mapping[str, Any]) -> str | None:
    """A given ``user_id`` can be named in a path: no ``/`` (a path separator even when
    percent-encoded) and no control character (``frame.py`` refuses those in paths)."""
    value = _string(body, "user_id", limit=64)
    if value is not None and ("/" in value or any(ord(c) < 0x20 or c == "\x7f" for c in value)):
        raise invalid(
            "'String does not match pattern ^[^/\\x00-\\x1f\\x7f]+$' on property user_id."
        )
    return value


def new_user(body: Mapping[str, Any]) -> NewUser:
    _known(body, CREATE_FIELDS)
    _no_verification(body, "verify_email")
    connection = _string(body, "connection", limit=128)
    if connection is None:
        raise invalid("'Missing required property: connection'.")
    attributes = {
        name: value
        for name in ATTRIBUTES
        if (value := _string(body, name, limit=ATTRIBUTE_LENGTHS[name])) is not None
    }
    return NewUser(
        connection=connection,
        email=_string(body, "email", limit=254),
        phone_number=_string(body, "phone_number", limit=16),
        user_id=_user_id(body),
        email_verified=_boolean(body, "email_verified"),
        phone_verified=_boolean(body, "phone_verified"),
        blocked=bool(_boolean(body, "blocked")),
        attributes=attributes,
        app_metadata=_object(body, "app_metadata") or {},
        user_metadata=_object(body, "user_metadata") or {},
    )


def user_patch(body: Mapping[str, Any]) -> UserPatch:
    """``null`` unsets an attribute and clears a metadata object (like ``{}``); the
    identifier and the flags cannot be unset."""
    if not body:
        raise invalid("'Too few properties defined (0), must be at least 1'.")
    _known(body, UPDATE_FIELDS)
    _no_verification(body, "verify_email", "verify_phone_number")
    for name in ("email", "phone_number", "email_verified", "phone_verified", "blocked"):
        if name in body and body[name] is None:
            raise invalid(f"'Expected a value, not null' on property {name}.")
    _string(body, "client_id", limit=128)  # names the branding of a message nopass never sends
    attributes = {
        name: _string(body, name, limit=ATTRIBUTE_LENGTHS[name])
        for name in ATTRIBUTES
        if name in body
    }
    return UserPatch(
        connection=_string(body, "connection", limit=128),
        email=_string(body, "email", limit=254),
        phone_number=_string(body, "phone_number", limit=16),
        email_verified=_boolean(body, "email_verified"),
        phone_verified=_boolean(body, "phone_verified"),
        blocked=_boolean(body, "blocked"),
        attributes=attributes,
        app_metadata=_metadata(body, "app_metadata"),
        user_metadata=_metadata(body, "user_metadata"),
    )


def _metadata(body: Mapping[str, Any], name: str) -> dict[str, Any] | None:
    if name not in body:
        return None
    return _object(body, name) or {}  # null clears, like {}


# the same checks for the Management API's other small bodies (``sessions.py``)
known_fields = _known
string_field = _string
boolean_field = _boolean
