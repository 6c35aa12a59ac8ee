"""A JSON body is RFC 8259 JSON: an object, text without lone surrogates, finite numbers
nested at most 64 deep
(``nopass.api.body.parse_json``, for the Authentication and the Management API alike)."""

from __future__ import annotations

import pytest

from nopass.api.body import parse_json
from nopass.core.errors import BodyUnreadable


def test_an_object_with_large_and_small_numbers() -> None:
    body = parse_json(b'{"a": 1e308, "b": -2.5e-300, "c": 12345678901234567890123}')
    assert body == {"a": 1e308, "b": -2.5e-300, "c": 12345678901234567890123}


def nested(depth: int) -> bytes:
    return b'{"a":' * (depth - 1) + b"[]" + b"}" * (depth - 1)


def test_bodies_nest_64_levels_deep_at_most() -> None:
    assert parse_json(nested(64))
    for depth in (65, 500, 945, 5000):  # 945: parsed, but no longer serialized downstream
        with pytest.raises(BodyUnreadable):
            parse_json(nested(depth))


@pytest.mark.parametrize(
    "raw",
    [
        b'{"a": NaN}',
        b'{"a": Infinity}',
        b'{"a": -Infinity}',
        b'{"a": 1e400}',
        b'{"a": -1E999}',
        b'{"a": "\\ud800"}',
        b"[]",
        b"",
    ],
)
def test_what_is_no_json_object_is_unreadable(raw: bytes) -> None:
    with pytest.raises(BodyUnreadable):
        parse_json(raw)
