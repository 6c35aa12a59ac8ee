"""``nopass dev``: one command to try nopass, in an empty directory, with nothing configured."""

from __future__ import annotations

import asyncio
import contextlib
import html
import json
import re
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.cli.helpers import dump_tables, usage_error
from tests.support.live import nopass_cli, nopass_env, wait_until_live
from tests.support.services import free_port

CONFIG_TABLES = (
    "tenants",
    "tenant_domains",
    "clients",
    "connections",
    "connection_clients",
    "email_providers",
    "config_state",
)


@dataclass
class Dev:
    process: subprocess.Popen[bytes]
    stdout: Path
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def output(self) -> str:
        return self.stdout.read_text()

    def client_id(self) -> str:
        found = re.search(r"client_id:\s+(\S+)", self.output())
        assert found is not None, self.output()
        return found.group(1)

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode


def dev_env() -> dict[str, str]:
    env = nopass_env("")
    del env["NOPASS_DATABASE_URL"], env["NOPASS_SECRET_KEY"]
    return env


@contextlib.contextmanager
def nopass_dev(cwd: Path, port: int) -> Iterator[Dev]:
    stdout = cwd / f"dev-{time.monotonic_ns()}.out"
    with stdout.open("wb") as out, (cwd / "dev.err").open("ab") as err:
        process = subprocess.Popen(
            [sys.executable, "-m", "nopass", "dev", "--port", str(port)],
            env=dev_env(),
            cwd=cwd,
            stdout=out,
            stderr=err,
        )
    dev = Dev(process, stdout, port)
    try:
        wait_until_live(dev.url, process)
        yield dev
    finally:
        dev.stop()


def _curl_body(output: str, base: str) -> dict[str, Any]:
    """The JSON body of the printed ``curl ... /passwordless/start ... -d '{...}'``."""
    assert f"curl -s {base}/passwordless/start" in output, output
    found = re.search(r"-d '(\{[^']*\})'", output)
    assert found is not None, output
    body: dict[str, Any] = json.loads(found.group(1))
    return body


def _outbox_codes(page: str) -> list[str]:
    return [html.unescape(c).strip() for c in re.findall(r'class="code">([^<]*)<', page)]


@pytest.mark.slow
async def test_dev_serves_a_seeded_tenant_and_the_outbox(tmp_path: Path) -> None:
    port = free_port()
    with nopass_dev(tmp_path, port) as dev:
        output = dev.output()
        client_id = dev.client_id()
        body = _curl_body(output, dev.url)
        assert body["client_id"] == client_id
        assert body["connection"] == "email"

        async with httpx.AsyncClient(base_url=dev.url) as http:
            started = await http.post("/passwordless/start", json=body)
            assert started.status_code == 200, started.text
            assert started.json()["email"] == body["email"]

            deadline = time.monotonic() + 5
            while True:
                page = await http.get("/dev/outbox")
                assert page.status_code == 200
                codes = [c for c in _outbox_codes(page.text) if c]
                if codes or time.monotonic() > deadline:
                    break
                await asyncio.sleep(0.05)
        assert len(codes) == 1, page.text
        [code] = codes
        assert re.fullmatch(r"[0-9]{6}", code), code
        assert html.escape(body["email"]) in page.text
        links = [html.unescape(h) for h in re.findall(r'<a href="([^"]+)"', page.text)]
        assert any(
            link.startswith(f"{dev.url}/passwordless/verify_redirect?")
            and f"verification_code={code}" in link
            for link in links
        ), links
        first_exit = dev.stop()

    var = tmp_path / "var"
    assert (var / "nopass.db").is_file()
    key = (var / "secret.key").read_text()
    assert len(key.strip()) >= 32
    assert stat.S_IMODE((var / "secret.key").stat().st_mode) == 0o600

    database_url = f"sqlite:///{var / 'nopass.db'}"
    seeded = await dump_tables(database_url)
    assert [t["name"] for t in seeded["tenants"]] == ["dev"]
    assert sorted(d["origin"] for d in seeded["tenant_domains"]) == [
        f"http://127.0.0.1:{port}",
        f"http://localhost:{port}",
    ]
    assert sorted(c["name"] for c in seeded["connections"]) == ["email", "sms"]

    # Again in the same directory: the same client, the same key, nothing reconfigured.
    with nopass_dev(tmp_path, port) as again:
        assert again.client_id() == client_id
        second_exit = again.stop()
    assert (var / "secret.key").read_text() == key
    reseeded = await dump_tables(database_url)
    for name in CONFIG_TABLES:
        assert reseeded[name] == seeded[name], name

    # SIGTERM is a clean stop: exit status 0, both times.
    assert (first_exit, second_exit) == (0, 0)


def test_dev_refuses_a_database_other_than_sqlite(tmp_path: Path) -> None:
    env = nopass_env("postgresql://nopass@127.0.0.1:9/nopass")
    line = usage_error(nopass_cli("dev", "--port", str(free_port()), env=env, cwd=tmp_path))
    assert "SQLite" in line and "NOPASS_DATABASE_URL" in line
