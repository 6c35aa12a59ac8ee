"""The users file of ``POST /api/v2/jobs/users-imports`` for passwordless connections
(docs/specs/management-api.md §7.2): a JSON array of users, each checked against Auth0's
bulk-import schema as nopass extends it to ``email`` and ``sms`` connections.

Each refused row is told with Auth0's schema error codes (``INVALID_TYPE``, ``FORMAT``,
``MIN_LENGTH``, ``MAX_LENGTH``, ``NOT_PASSED``, ``OBJECT_MISSING_REQUIRED_PROPERTY``,
``OBJECT_ADDITIONAL_PROPERTIES``) and the property's ``path``; a user given twice in one file
(the same identifier or ``user_id``) is refused at every occurrence (``DUPLICATED_USER``):
nopass cannot tell which one is meant.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from nopass.core.channel import Channel
from nopass.core.jobs import RowError
from nopass.core.models import Connection
from nopass.flows.management.users import MAX_USER_ID, NewUser

LENGTHS = {"name": 150, "given_name": 150, "family_name": 150, "nickname": 350, "picture": 2048}
BOOLEANS = ("email_verified", "phone_verified", "blocked")
OBJECTS = ("app_metadata", "user_metadata")
ALLOWED = frozenset(
    {"email", "phone_number", "user_id", *LENGTHS, *BOOLEANS, *OBJECTS}
)  # the rest of Auth0's schema has no meaning without a password:
REFUSED = ("username", "password_hash", "custom_password_hash", "mfa_factors")
# What an upsert changes on a user who exists (Auth0's "upsert" tags), for sms users with
# phone_verified in place of email_verified.
UPSERTED = frozenset(
    {"app_metadata", "user_metadata", "name", "nickname", "picture", "given_name", "family_name"}
)
JSON_TYPES = {bool: "boolean", int: "integer", float: "number", str: "string"}


class FileUnreadable(ValueError):
    """The whole file is not a JSON array of users: the job fails."""


@dataclass(frozen=True, slots=True)
class ImportRow:
    """A checked row: the user to create, and which properties it gave (upsert changes only
    those among the upsertable ones)."""

    position: int
    given: Mapping[str, Any]
    new: NewUser
    identifier: str
    keys: frozenset[str] = field(default_factory=frozenset)


def read_file(raw: bytes) -> list[Any]:
    try:
        users = json.loads(raw.decode("utf-8-sig"))
    except (UnicodeDecodeError, ValueError):
        raise FileUnreadable("Failed to parse users file JSON when importing users.") from None
    if not isinstance(users, list):
        raise FileUnreadable("Users file must be an array of users.")
    return users


def _type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return JSON_TYPES.get(type(value), "unknown")


def _error(code: str, message: str, path: str | None = None) -> dict[str, str]:
    error = {"code": code, "message": message}
    if path is not None:
        error["path"] = path
    return error


def _check(user: Mapping[str, Any], channel: Channel) -> list[dict[str, str]]:
    errors: list[dict[str, str]] = []
    extra = sorted(k for k in user if k not in ALLOWED and k not in REFUSED)
    if extra:
        message = f"Additional properties not allowed: {', '.join(extra)}"
        errors.append(_error("OBJECT_ADDITIONAL_PROPERTIES", message))
    for name in REFUSED:
        if name in user:
            message = f"{name} is not supported on passwordless connections"
            errors.append(_error("NOT_PASSED", message, name))
    other = Channel.SMS if channel is Channel.EMAIL else Channel.EMAIL
    for name in (other.field, f"{other.field.split('_')[0]}_verified"):
        if name in user:
            message = f"{name} is not valid for users of {channel.value} connections"
            errors.append(_error("NOT_PASSED", message, name))
    if channel.field not in user:
        message = f"Missing required property: {channel.field}"
        errors.append(_error("OBJECT_MISSING_REQUIRED_PROPERTY", message))
    limits = {"email": 254, "phone_number": 16, "user_id": MAX_USER_ID - len(channel.value) - 1}
    for name, limit in {**LENGTHS, **limits}.items():
        if name not in user:
            continue
        value = user[name]
        if not isinstance(value, str):
            message = f"Expected type string but found type {_type(value)}"
            errors.append(_error("INVALID_TYPE", message, name))
        elif not value:
            errors.append(_error("MIN_LENGTH", "String is too short (0 chars), minimum 1", name))
        elif len(value) > limit:
            message = f"String is too long ({len(value)} chars), maximum {limit}"
            errors.append(_error("MAX_LENGTH", message, name))
    for name in BOOLEANS:
        if name in user and not isinstance(user[name], bool):
            message = f"Expected type boolean but found type {_type(user[name])}"
            errors.append(_error("INVALID_TYPE", message, name))
    for name in OBJECTS:
        if name in user and not isinstance(user[name], dict):
            message = f"Expected type object but found type {_type(user[name])}"
            errors.append(_error("INVALID_TYPE", message, name))
    typed = user.get(channel.field)
    if isinstance(typed, str) and typed and channel.normalize(typed) is None:
        message = f"Object didn't pass validation for format {channel.field}: {typed}"
        errors.append(_error("FORMAT", message, channel.field))
    return errors


def _new_user(user: Mapping[str, Any], connection: Connection) -> NewUser:
    return NewUser(
        connection=connection.name,
        email=user.get("email"),
        phone_number=user.get("phone_number"),
        user_id=user.get("user_id"),
        email_verified=user.get("email_verified"),
        phone_verified=user.get("phone_verified"),
        blocked=bool(user.get("blocked", False)),
        attributes={k: user[k] for k in LENGTHS if k in user},
        app_metadata=user.get("app_metadata") or {},
        user_metadata=user.get("user_metadata") or {},
    )


def check_rows(users: Sequence[Any], connection: Connection) -> list[ImportRow | RowError]:
    """Every row of the file, in order: checked, or refused with its errors."""
    channel = connection.channel
    checked: list[ImportRow | RowError] = []
    for position, user in enumerate(users):
        if not isinstance(user, dict):
            message = f"Expected type object but found type {_type(user)}"
            checked.append(RowError(position, {}, [_error("INVALID_TYPE", message)]))
            continue
        errors = _check(user, channel)
        if errors:
            checked.append(RowError(position, user, errors))
            continue
        identifier = channel.normalize(user[channel.field]) or ""
        checked.append(
            ImportRow(position, user, _new_user(user, connection), identifier, frozenset(user))
        )
    return _without_duplicates(checked)


def _without_duplicates(checked: list[ImportRow | RowError]) -> list[ImportRow | RowError]:
    seen: dict[str, list[int]] = {}
    for index, row in enumerate(checked):
        if isinstance(row, ImportRow):
            keys = {"identity:" + row.identifier}
            if row.new.user_id is not None:
                keys.add("user_id:" + row.new.user_id)
            for key in keys:
                seen.setdefault(key, []).append(index)
    duplicated = {i for indexes in seen.values() if len(indexes) > 1 for i in indexes}
    result: list[ImportRow | RowError] = []
    for index, row in enumerate(checked):
        if index in duplicated and isinstance(row, ImportRow):
            message = "The user is given more than once in the users file"
            row = RowError(row.position, row.given, [_error("DUPLICATED_USER", message)])
        result.append(row)
    return result
