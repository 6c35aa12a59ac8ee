"""``nopass migrate``: creates the schema, is idempotent, and leaves the database ready."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from alembic.script import ScriptDirectory

from nopass.store.migrate import alembic_config
from tests.cli.helpers import apply_file, dump_tables, summary_of, write_config
from tests.support.config import tenant_config
from tests.support.live import nopass_cli, nopass_env


def _head() -> str:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None
    return head


async def test_migrate_twice_then_apply(database_url: str, tmp_path: Path) -> None:
    env = nopass_env(database_url)
    first = nopass_cli("migrate", env=env, cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert json.loads(first.stdout) == {"migrated": True}
    schema = await dump_tables(database_url)
    assert schema["alembic_version"] == [{"version_num": _head()}]
    assert {name for name, rows in schema.items() if rows} == {"alembic_version"}

    second = nopass_cli("migrate", env=env, cwd=tmp_path)
    assert second.returncode == 0, second.stderr
    assert json.loads(second.stdout) == {"migrated": True}
    assert await dump_tables(database_url) == schema

    path = write_config(tmp_path / "acme.yaml", tenant_config("http://127.0.0.1:8123"))
    summary = summary_of(apply_file(database_url, path))
    assert summary["tenant"] == "acme"
    assert [r["name"] for r in (await dump_tables(database_url))["tenants"]] == ["acme"]


@pytest.mark.postgres
def test_postgres_commands_need_no_secret_and_write_no_dev_key(
    postgres_url: str, tmp_path: Path
) -> None:
    """``./var/secret.key`` is the SQLite dev fallback; with PostgreSQL neither migrate, apply
    nor logs may drop a random key into the working directory (often read-only in containers)."""
    env = nopass_env(postgres_url)
    del env["NOPASS_SECRET_KEY"]
    work = tmp_path / "work"
    work.mkdir()
    config = write_config(tmp_path / "acme.json", tenant_config("http://127.0.0.1:8123"))
    for args in (
        ("migrate",),
        ("apply", "--file", str(config)),
        ("logs", "--tenant", "acme"),
    ):
        result = nopass_cli(*args, env=env, cwd=work)
        assert result.returncode == 0, (args, result.stderr)
        assert list(work.iterdir()) == [], args
