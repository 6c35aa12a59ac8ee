"""Shared helpers for the CLI tests: config files on disk, CLI runs, table dumps."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import select, text

from nopass.store.engine import create_engine
from nopass.store.tables import Base
from tests.support.live import nopass_cli, nopass_env

Dump = dict[str, list[dict[str, Any]]]


def write_config(path: Path, config: Any) -> Path:
    """Write ``config`` as JSON (``.json``) or YAML (anything else)."""
    if path.suffix == ".json":
        path.write_text(json.dumps(config, indent=2))
    else:
        path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def apply_file(
    database_url: str, path: Path, *args: str, **env: str
) -> subprocess.CompletedProcess[str]:
    """``nopass apply --file PATH`` in the file's directory (so a stray ./var lands there)."""
    return nopass_cli(
        "apply", "--file", str(path), *args, env=nopass_env(database_url, **env), cwd=path.parent
    )


def summary_of(result: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    """The JSON summary of a successful apply: exit 0, one JSON document on stdout."""
    assert result.returncode == 0, result.stderr[-1500:]
    assert result.stderr == ""
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 1, result.stdout
    summary: dict[str, Any] = json.loads(lines[0])
    return summary


def usage_error(result: subprocess.CompletedProcess[str]) -> str:
    """A refused command: exit 2, nothing on stdout, exactly one line on stderr (returned)."""
    assert result.returncode == 2, (result.returncode, result.stdout[-500:], result.stderr[-1500:])
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in lines[0]
    return lines[0]


def _sort_key(row: dict[str, Any]) -> str:
    return json.dumps(row, sort_keys=True, default=str)


async def dump_tables(database_url: str) -> Dump:
    """Every row of every nopass table (and the Alembic version), in a stable order."""
    engine = create_engine(database_url)
    try:
        async with engine.connect() as conn:
            dump: Dump = {}
            for table in Base.metadata.sorted_tables:
                rows = (await conn.execute(select(table))).mappings().all()
                dump[table.name] = sorted((dict(r) for r in rows), key=_sort_key)
            versions = (await conn.execute(text("SELECT version_num FROM alembic_version"))).all()
            dump["alembic_version"] = [{"version_num": v[0]} for v in versions]
            return dump
    finally:
        await engine.dispose()


def changed_tables(before: Dump, after: Dump) -> set[str]:
    return {name for name in before.keys() | after.keys() if before.get(name) != after.get(name)}
