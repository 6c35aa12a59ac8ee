"""``nopass --help`` and every command's ``--help``: exit 0 and name the options."""

from __future__ import annotations

import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from tests.support.live import nopass_cli, nopass_env

# command -> what its --help must mention (docs/specs/interface.md: "keep --help useful")
HELP: dict[tuple[str, ...], tuple[str, ...]] = {
    (): (
        "dev",
        "migrate",
        "apply",
        "serve",
        "logs",
        "users",
        "keys",
        "--version",
        "NOPASS_DATABASE_URL",
        "NOPASS_SECRET_KEY",
    ),
    ("dev",): ("--port", "8000"),
    ("migrate",): ("usage: nopass migrate",),
    ("apply",): ("--file", "--prune"),
    ("serve",): (
        "--host",
        "--port",
        "--workers",
        "127.0.0.1",
        "8000",
        "--ssl-certfile",
        "--ssl-keyfile",
        "--ssl-keyfile-password",
        "NOPASS_SSL_KEYFILE_PASSWORD",
    ),
    ("logs",): ("--tenant", "--type", "--since", "--user", "--limit"),
    ("users",): ("--tenant", "--limit"),
    ("keys",): ("rotate",),
    # docs/specs/interface.md: `nopass keys rotate --tenant NAME`
    ("keys", "rotate"): ("--tenant",),
}


def _run_all(
    tmp_path: Path, commands: list[tuple[str, ...]]
) -> dict[tuple[str, ...], subprocess.CompletedProcess[str]]:
    env = nopass_env(f"sqlite:///{tmp_path / 'unused.db'}")
    with ThreadPoolExecutor(max_workers=4) as pool:
        futures = {c: pool.submit(nopass_cli, *c, env=env, cwd=tmp_path) for c in commands}
    return {c: f.result() for c, f in futures.items()}


def test_every_help_exits_0_and_mentions_its_options(tmp_path: Path) -> None:
    results = _run_all(tmp_path, [(*command, "--help") for command in HELP])
    for command, words in HELP.items():
        result = results[(*command, "--help")]
        assert result.returncode == 0, (command, result.stderr)
        assert result.stderr == ""
        for word in words:
            assert word in result.stdout, (command, word, result.stdout)
    assert list(tmp_path.iterdir()) == []  # --help touches no database and writes no key


def test_version_and_usage_errors(tmp_path: Path) -> None:
    wrong = [
        (),
        ("frobnicate",),
        ("apply",),
        ("serve", "--workers", "0"),
        ("serve", "--workers", "x"),
    ]
    results = _run_all(tmp_path, [("--version",), *wrong])
    version = results[("--version",)]
    assert version.returncode == 0
    assert version.stdout.startswith("nopass ")
    for args in wrong:
        result = results[args]
        assert result.returncode == 2, args
        assert result.stdout == ""
        assert "usage: nopass" in result.stderr
    assert "--file" in results[("apply",)].stderr  # names the missing option
    assert "--workers: must be 1 or more, not 0" in results[("serve", "--workers", "0")].stderr
    assert "must be a whole number, not 'x'" in results[("serve", "--workers", "x")].stderr
