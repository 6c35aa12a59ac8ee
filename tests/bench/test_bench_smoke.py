"""`make bench` works: a smoke run of a few seconds (CI never runs the load itself).

The figures of a smoke run mean nothing; the test checks that every part of the benchmark
ran: whole logins with codes read from the SMTP sink, the write accounting, and the report.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_smoke_run_writes_the_report(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NOPASS_")}
    args = [sys.executable, "-m", "bench", "--smoke", "--no-baseline", "--out", str(tmp_path)]
    if not os.environ.get("NOPASS_TEST_POSTGRES_URL"):
        args.append("--no-postgres")
    done = subprocess.run(
        args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    results = json.loads((tmp_path / "latest.json").read_text())
    assert results["smoke"] is True
    backends = {run["backend"] for run in results["nopass"]}
    assert "sqlite" in backends
    if os.environ.get("NOPASS_TEST_POSTGRES_URL"):
        assert "postgres+redis" in backends
    for run in results["nopass"]:
        peak = run["logins"]["peak"]
        assert peak["ok"] > 0, peak
        assert peak["errors"] == 0, peak["first_errors"]
        assert run["logins"]["cpu_ms_per_login"]["server"] > 0
        endpoints = run["endpoints"]
        assert endpoints["token"]["non_2xx"] == 0
        if shutil.which("wrk"):
            for name in ("start", "userinfo", "refresh", "jwks"):
                assert endpoints[name]["requests"] > 0, (name, endpoints[name])
                assert endpoints[name]["non_2xx"] == 0, (name, endpoints[name])
    listing = results["user_listing"]
    assert {run["backend"] for run in listing["runs"]} == (
        {"sqlite", "postgres"} if os.environ.get("NOPASS_TEST_POSTGRES_URL") else {"sqlite"}
    )
    for run in listing["runs"]:
        assert run["users"] == 10_000
        assert len(run["shapes"]) > 30  # every order and search, users-by-email
        for name, shape in run["shapes"].items():
            assert shape["median_ms"] > 0 and shape["errors"] == 0, (name, shape)
            assert shape["results"], (name, shape)  # every search finds its users
    report = (tmp_path / "latest.md").read_text()
    assert "Whole email-code logins" in report
    assert "GET /api/v2/users by query shape" in report


def test_calls_counts_a_login_with_every_statement_prebuilt() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NOPASS_")}
    args = [sys.executable, "-m", "bench.calls", "--logins", "5"]
    done = subprocess.run(
        args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "through SQLAlchemy's execution, per login: 0.00" in done.stdout, done.stdout
    statements = float(done.stdout.split("SQL statements per login: ")[1].split()[0])
    assert 10 < statements < 40, done.stdout
