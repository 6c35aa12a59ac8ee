"""The users files of jobs (docs/specs/management-api.md §7.2, §7.5): attribute paths picked
from user objects, CSV cells a spreadsheet would run as formulas, the import schema's length
limits and the file's own shape."""

from __future__ import annotations

import csv
import gzip
import io
import json

import pytest

from nopass.core.jobs import RowError
from nopass.core.models import Connection
from nopass.core.options import EmailOptions
from nopass.flows.management.export_file import render, valid_path
from nopass.flows.management.import_file import FileUnreadable, ImportRow, check_rows, read_file
from nopass.flows.management.jobs import ExportField

USER = {
    "user_id": "email|abc",
    "email": "ada@acme.example",
    "identities": [{"connection": "email", "provider": "email"}],
    "app_metadata": {"plan": "gold", "roles": ["admin", "ops"]},
    "logins_count": 3,
}


def test_paths() -> None:
    assert valid_path("identities[0].connection") and valid_path("app_metadata.roles[1]")
    assert not valid_path("") and not valid_path("a..b") and not valid_path("a[x]")
    fields = [
        ExportField("identities[0].connection", "connection"),
        ExportField("app_metadata.roles[1]"),
        ExportField("identities[3].connection"),  # absent: left out
        ExportField("logins_count"),
    ]
    line = json.loads(gzip.decompress(render([USER], "json", fields)))
    assert line == {"connection": "email", "app_metadata.roles[1]": "ops", "logins_count": 3}


@pytest.mark.parametrize("value", ["=1+1", "+1", "-1", "@SUM(A1)", "\tx", "\rx"])
def test_csv_formulas_are_defused(value: str) -> None:
    data = render([{**USER, "name": value}], "csv", [ExportField("name")])
    rows = list(csv.reader(io.StringIO(gzip.decompress(data).decode(), newline="")))
    assert rows == [["name"], ["'" + value]]


def test_csv_non_strings_are_json() -> None:
    fields = [ExportField("app_metadata"), ExportField("logins_count"), ExportField("missing")]
    data = render([USER], "csv", fields)
    rows = list(csv.reader(io.StringIO(gzip.decompress(data).decode(), newline="")))
    assert rows[1] == ['{"plan":"gold","roles":["admin","ops"]}', "3", ""]


def test_the_file_must_be_a_json_array() -> None:
    assert read_file(b"\xef\xbb\xbf[]") == []  # a byte-order mark is fine
    for raw in (b"{}", b"[", b"\xff\xfe"):
        with pytest.raises(FileUnreadable):
            read_file(raw)


def test_lengths() -> None:
    connection = Connection(
        tenant_id="t",
        id="con_1",
        name="email",
        strategy="email",
        options=EmailOptions(),
        enabled_clients=frozenset(),
    )
    rows = check_rows(
        [
            {"email": "a@acme.example", "name": "n" * 150, "user_id": "u" * 58},
            {"email": "b@acme.example", "name": "n" * 151},
            {"email": "c@acme.example", "user_id": "u" * 59},  # email| + 59 > 64
        ],
        connection,
    )
    assert isinstance(rows[0], ImportRow)
    assert isinstance(rows[1], RowError) and rows[1].errors[0]["code"] == "MAX_LENGTH"
    assert isinstance(rows[2], RowError) and rows[2].errors[0]["path"] == "user_id"
