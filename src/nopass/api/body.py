"""Request bodies: JSON objects and urlencoded forms (docs/specs/auth0-wire.md §1.2, §8).

Forms map onto the same shape as JSON: ``authParams[redirect_uri]=x`` becomes
``{"authParams": {"redirect_uri": "x"}}`` and a repeated key becomes a list, so type checks
downstream refuse it (HTTP parameter pollution, GitLab CVE-2023-7028).
"""

from __future__ import annotations

import json
import math
import re
from urllib.parse import parse_qsl

from starlette.requests import Request

from nopass.core.errors import BodyUnreadable

MAX_BODY_BYTES = 64 * 1024
_BRACKET = re.compile(r"^([^\[\]]+)\[([^\[\]]*)\]$")


async def read_capped(request: Request, limit: int) -> bytes | None:
    """The body, or None as soon as it is known to be over ``limit`` bytes (a declared
    ``Content-Length`` over it is not read at all)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        return None
    raw = bytearray()
    async for chunk in request.stream():
        raw += chunk
        if len(raw) > limit:
            return None
    return bytes(raw)


async def read_raw(request: Request) -> bytes:
    """The body, up to ``MAX_BODY_BYTES`` (``BodyUnreadable`` beyond)."""
    raw = await read_capped(request, MAX_BODY_BYTES)
    if raw is None:
        raise BodyUnreadable()
    return raw


async def read_form(request: Request) -> list[tuple[str, str]]:
    """A browser form's fields as sent, in order, repeats kept (the commands judge them)."""
    return _pairs(await read_raw(request))


async def read_body(request: Request) -> dict[str, object]:
    raw = await read_raw(request)
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type == "application/x-www-form-urlencoded":
        return parse_form(raw)
    if content_type == "application/json" or content_type.endswith("+json"):
        return parse_json(raw)
    if not raw.strip() and not content_type:
        return {}
    raise BodyUnreadable()


def _not_json(constant: str) -> float:
    """``NaN``, ``Infinity`` and ``-Infinity`` are Python's, not JSON (RFC 8259 §6)."""
    raise ValueError(constant)


def _finite(number: str) -> float:
    """A JSON number, unless it overflows a double (``1e400`` would be ``inf``: no JSON
    either, and PostgreSQL refuses to store it)."""
    value = float(number)
    if math.isinf(value):
        raise ValueError(number)
    return value


MAX_DEPTH = 64  # arrays and objects within each other; deeper exhausts the stack downstream


def _depth(document: object) -> int:
    """How deeply arrays and objects nest in the document (walked without recursion)."""
    deepest, pending = 0, [(document, 0)]
    while pending:
        value, depth = pending.pop()
        if isinstance(value, dict | list):
            depth += 1
            deepest = max(deepest, depth)
            children = value.values() if isinstance(value, dict) else value
            pending.extend((child, depth) for child in children)
    return deepest


def parse_json(raw: bytes) -> dict[str, object]:
    try:
        value = json.loads(raw, parse_constant=_not_json, parse_float=_finite)
        # JSON can spell lone surrogates ("\ud800"): not text, so they can be neither echoed,
        # stored nor put in a link. Refuse them here, like any other unreadable body.
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except (ValueError, RecursionError):  # UnicodeEncodeError is a ValueError
        raise BodyUnreadable() from None
    if not isinstance(value, dict) or _depth(value) > MAX_DEPTH:
        raise BodyUnreadable()
    return value


def _pairs(raw: bytes) -> list[tuple[str, str]]:
    try:
        return parse_qsl(raw.decode("utf-8"), keep_blank_values=True, strict_parsing=False)
    except (UnicodeDecodeError, ValueError):
        raise BodyUnreadable() from None


def parse_form(raw: bytes) -> dict[str, object]:
    body: dict[str, object] = {}
    for key, value in _pairs(raw):
        match = _BRACKET.match(key)
        if match:
            outer, inner = match.groups()
            nested = body.setdefault(outer, {})
            if isinstance(nested, dict):
                _put(nested, inner, value)
            else:  # `x=v` and `x[k]=w`: one field sent twice, refused like a repeated key
                _put(body, outer, {inner: value})
        else:
            _put(body, key, value)
    return body


def _put(target: dict[str, object], key: str, value: object) -> None:
    if key not in target:
        target[key] = value
        return
    existing = target[key]
    if isinstance(existing, list):
        existing.append(value)
    else:  # a plain value, or the object of bracketed fields: either way now a list
        target[key] = [existing, value]
