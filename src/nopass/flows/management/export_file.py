"""The file of ``POST /api/v2/jobs/users-exports`` (docs/specs/management-api.md §7.5):
NDJSON (one user object a line) or CSV, gzip-compressed.

``fields`` picks attribute paths of the user object (``email``, ``identities[0].connection``,
``app_metadata.plan``), each named ``export_as`` (else its path) in the file. CSV cells that a
spreadsheet would run as a formula (starting with ``= + - @``, a tab or a carriage return)
are prefixed with ``'``, as Auth0's export does against CSV injection.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from nopass.flows.management.jobs import ExportField

SEGMENT = re.compile(r"^([^\[\]]+)((?:\[\d+\])*)$")
INDEX = re.compile(r"\[(\d+)\]")
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
DEFAULT_FIELDS = (
    "user_id",
    "email",
    "email_verified",
    "phone_number",
    "phone_verified",
    "name",
    "nickname",
    "given_name",
    "family_name",
    "picture",
    "created_at",
    "updated_at",
    "last_login",
    "logins_count",
    "blocked",
    "identities[0].connection",
)
_MISSING = object()


def valid_path(path: str) -> bool:
    return bool(path) and all(SEGMENT.match(p) for p in path.split("."))


def _value(item: Any, path: str) -> Any:
    for part in path.split("."):
        match = SEGMENT.match(part)
        if match is None or not isinstance(item, Mapping):
            return _MISSING
        item = item.get(match.group(1), _MISSING)
        for index in INDEX.findall(match.group(2)):
            if not isinstance(item, list) or int(index) >= len(item):
                return _MISSING
            item = item[int(index)]
        if item is _MISSING:
            return _MISSING
    return item


def _picked(user: Mapping[str, Any], fields: Sequence[ExportField]) -> dict[str, Any]:
    picked = {}
    for f in fields:
        value = _value(user, f.name)
        if value is not _MISSING:
            picked[f.export_as or f.name] = value
    return picked


def _cell(value: Any) -> str:
    if value is _MISSING or value is None:
        return ""
    text = value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))
    if isinstance(value, str) and text.startswith(FORMULA_STARTS):
        return "'" + text
    return text


def render(
    users: Iterable[Mapping[str, Any]], file_format: str, fields: Sequence[ExportField]
) -> bytes:
    """The gzip-compressed file of ``users`` (user objects)."""
    out = io.StringIO()
    if file_format == "csv":
        chosen = list(fields) or [ExportField(name) for name in DEFAULT_FIELDS]
        writer = csv.writer(out, lineterminator="\r\n")  # RFC 4180; CR and LF get quoted
        writer.writerow([_cell(f.export_as or f.name) for f in chosen])
        for user in users:
            writer.writerow([_cell(_value(user, f.name)) for f in chosen])
    else:
        for user in users:
            line = _picked(user, fields) if fields else dict(user)
            out.write(json.dumps(line, separators=(",", ":"), ensure_ascii=False) + "\n")
    return gzip.compress(out.getvalue().encode(), mtime=0)
