"""``UTCDateTime`` on SQLite writes and reads the very text SQLAlchemy's own DATETIME does
(stored values are compared as text in SQL, so one character off would break ordering)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given, strategies as st
from sqlalchemy.dialects import sqlite

from nopass.store.tables import UTCDateTime

DIALECT = sqlite.dialect()
OURS = UTCDateTime()
REFERENCE = sqlite.DATETIME()  # type: ignore[no-untyped-call]
aware = st.datetimes(
    min_value=datetime(1900, 1, 2),  # noqa: DTZ001 (hypothesis wants naive bounds)
    max_value=datetime(9999, 12, 30),  # noqa: DTZ001
    timezones=st.just(UTC),
).map(lambda d: d.astimezone(timezone(timedelta(hours=5, minutes=30))))


@given(aware)
def test_the_text_is_sqlalchemys(value: datetime) -> None:
    bind = OURS.bind_processor(DIALECT)
    reference = REFERENCE.bind_processor(DIALECT)
    assert bind is not None and reference is not None
    text = bind(value)
    assert text == reference(value.astimezone(UTC))
    result = OURS.result_processor(DIALECT, None)
    assert result is not None
    assert result(text) == value and result(text).tzinfo is not None


def test_what_else_sqlite_may_hold_reads_as_utc() -> None:
    result = OURS.result_processor(DIALECT, None)
    assert result is not None
    assert result(None) is None
    assert result("2026-11-27 12:00:00") == datetime(2026, 11, 27, 12, tzinfo=UTC)  # no µs
    assert result("2026-11-27 12:00:00.000001") == datetime(2026, 11, 27, 12, 0, 0, 1, UTC)


def test_naive_datetimes_are_refused() -> None:
    bind = OURS.bind_processor(DIALECT)
    assert bind is not None and bind(None) is None
    with pytest.raises(ValueError, match="naive"):
        bind(datetime(2026, 11, 27, 12))  # noqa: DTZ001 (the point of the test)
