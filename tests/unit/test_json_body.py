"""A JSON body is RFC 8259 JSON: an object, text without lone surrogates, finite numbers
(``nopass.api.body.parse_json``, for the Authentication and the Management API alike)."""

from __future__ import annotations

import pytest

from nopass.api.body import parse_json
from nopass.core.errors import BodyUnreadable


def test_an_object_with_large_and_small_numbers() -> None:
    body = parse_json(b'{"a": 1e308, "b": -2.5e-300, "c": 12345678901234567890123}')
    assert body == {"a": 1e308, "b": -2.5e-300, "c": 12345678901234567890123}


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
