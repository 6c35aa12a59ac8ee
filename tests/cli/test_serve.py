"""``nopass serve``: secret-key rule, migrating an empty database, JSON logs, SIGTERM."""

from __future__ import annotations

import asyncio
import json
import signal
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.cli.helpers import apply_file, dump_tables, summary_of, usage_error, write_config
from tests.support.config import NATIVE_ID, tenant_config
from tests.support.harness import prepare_database
from tests.support.live import live_server, nopass_cli, nopass_env
from tests.support.services import free_port
from tests.support.sms_gateway import Gateway
from tests.support.tls import TlsFiles

PHONE = "+15557654321"


def test_serve_refuses_postgres_without_a_secret_key(tmp_path: Path) -> None:
    """Refused before the database is even reached (nothing listens on port 9)."""
    env = nopass_env("postgresql://nopass@127.0.0.1:9/nopass")
    del env["NOPASS_SECRET_KEY"]
    result = nopass_cli("serve", "--port", str(free_port()), env=env, cwd=tmp_path, timeout=20)
    assert "NOPASS_SECRET_KEY" in usage_error(result)
    assert list(tmp_path.iterdir()) == []  # no ./var/secret.key either


@pytest.mark.parametrize(
    ("variable", "value", "problem"),
    [
        ("NOPASS_REQUEST_BODY_TIMEOUT_SECONDS", "-5", "greater than 0"),
        ("NOPASS_SMTP_TIMEOUT_SECONDS", "soon", "valid number"),
    ],
)
def test_serve_refuses_a_bad_setting_by_its_name(
    tmp_path: Path, variable: str, value: str, problem: str
) -> None:
    env = nopass_env(f"sqlite:///{tmp_path / 'nopass.db'}", **{variable: value})
    result = nopass_cli("serve", "--port", str(free_port()), env=env, cwd=tmp_path, timeout=20)
    line = usage_error(result)
    assert line.startswith(f"configuration error: {variable}: "), line
    assert problem in line
    assert value not in line.removeprefix(f"configuration error: {variable}")
    assert list(tmp_path.iterdir()) == []  # nothing made, nothing migrated


def _tls_refusal(tmp_path: Path, *args: str, **env: str) -> str:
    """``nopass serve`` with TLS ``args``: refused (exit 2, one line) before anything starts."""
    database = tmp_path / f"db-{time.monotonic_ns()}"
    database.mkdir()
    environment = nopass_env(f"sqlite:///{database / 'nopass.db'}", **env)
    port = str(free_port())
    result = nopass_cli("serve", "--port", port, *args, env=environment, cwd=database, timeout=20)
    line = usage_error(result)
    assert list(database.iterdir()) == []  # refused before the database was touched
    return line


def test_serve_refuses_tls_files_it_cannot_use(tmp_path: Path, tls_files: TlsFiles) -> None:
    cert, key = str(tls_files.cert), str(tls_files.key)
    missing = str(tmp_path / "missing.pem")
    unreadable = tmp_path / "unreadable.pem"  # a directory cannot be read as a file
    unreadable.mkdir()
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a certificate\n")
    cases = {
        ("--ssl-certfile", missing, "--ssl-keyfile", key): (
            f"error: --ssl-certfile: cannot read {missing}: No such file or directory"
        ),
        ("--ssl-certfile", cert, "--ssl-keyfile", missing): (
            f"error: --ssl-keyfile: cannot read {missing}: No such file or directory"
        ),
        ("--ssl-certfile", str(unreadable), "--ssl-keyfile", key): (
            f"error: --ssl-certfile: cannot read {unreadable}: Is a directory"
        ),
        ("--ssl-certfile", cert, "--ssl-keyfile", str(tls_files.other_key), "--workers", "2"): (
            "error: --ssl-certfile/--ssl-keyfile: the key does not match the certificate"
        ),
        ("--ssl-certfile", str(garbage), "--ssl-keyfile", key): "cannot be loaded",
        ("--ssl-certfile", cert, "--ssl-keyfile", str(tls_files.encrypted_key)): (
            "wrong or missing --ssl-keyfile-password"
        ),
        (
            "--ssl-certfile",
            cert,
            "--ssl-keyfile",
            str(tls_files.encrypted_key),
            "--ssl-keyfile-password",
            "not-the-password",
        ): "wrong or missing --ssl-keyfile-password",
        ("--ssl-certfile", cert): "holds no usable certificate and key",
        ("--ssl-keyfile", key): "error: --ssl-keyfile and its password need --ssl-certfile",
    }
    with ThreadPoolExecutor(max_workers=3) as pool:
        lines = dict(zip(cases, pool.map(lambda a: _tls_refusal(tmp_path, *a), cases), strict=True))
    for args, expected in cases.items():
        assert expected in lines[args], (args, lines[args])
        assert "not-the-password" not in lines[args]


@pytest.mark.slow
async def test_serve_migrates_an_empty_database_then_serves_what_apply_writes(
    database_url: str, tmp_path: Path
) -> None:
    env = nopass_env(database_url)
    if database_url.startswith("sqlite"):
        del env["NOPASS_SECRET_KEY"]  # SQLite: serve makes ./var/secret.key once
    port = free_port()
    with live_server(env, tmp_path, port=port) as server:
        async with httpx.AsyncClient(base_url=server.url) as http:
            ready = await http.get("/health/ready")
            assert ready.status_code == 200, ready.text
            schema = await dump_tables(database_url)
            assert schema["alembic_version"], "not migrated"
            assert schema["tenants"] == []

            body = {"client_id": "to-be-generated", "connection": "email", "email": "a@example.com"}
            unknown = await http.post("/passwordless/start", json=body)
            assert unknown.status_code == 400
            assert unknown.json()["error"] == "bad.tenant"

            config: dict[str, Any] = {
                "tenant": {"name": "acme", "domains": [server.url]},
                "clients": [{"name": "Backend", "app_type": "regular_web"}],
                "connections": [
                    {"name": "email", "strategy": "email", "enabled_clients": ["Backend"]}
                ],
                "email_provider": {"name": "outbox"},
            }
            summary = summary_of(
                apply_file(database_url, write_config(tmp_path / "a.yaml", config))
            )
            [backend] = summary["clients"]
            body["client_id"] = backend["client_id"]

            # The running server picks the new configuration up (it rechecks every second),
            # and the secret the summary printed is the one that authenticates the client.
            deadline = time.monotonic() + 5
            while True:
                started = await http.post(
                    "/passwordless/start", json={**body, "client_secret": backend["client_secret"]}
                )
                if started.status_code == 200 or time.monotonic() > deadline:
                    break
                await asyncio.sleep(0.1)
            assert started.status_code == 200, started.text
            wrong = await http.post("/passwordless/start", json={**body, "client_secret": "x" * 64})
            assert wrong.status_code == 401
    if database_url.startswith("sqlite"):
        assert (tmp_path / "var" / "secret.key").is_file()


def _json_lines(text: str) -> list[dict[str, Any]]:
    lines = []
    for line in text.splitlines():
        if line.strip():
            try:
                lines.append(json.loads(line))
            except json.JSONDecodeError:
                raise AssertionError(f"not a JSON log line: {line!r}") from None
    return lines


@pytest.mark.slow
async def test_serve_logs_json_lines_and_exits_cleanly_on_sigterm(
    database_url: str, tmp_path: Path
) -> None:
    port = free_port()
    await prepare_database(database_url, tenant_config(f"http://127.0.0.1:{port}"))
    with live_server(nopass_env(database_url), tmp_path, port=port) as server:
        async with httpx.AsyncClient(base_url=server.url) as http:
            ready = await http.get("/health/ready", params={"code": "424242", "token": "t0k3n"})
            assert ready.status_code == 200
            started = await http.post(
                "/passwordless/start",
                json={"client_id": NATIVE_ID, "connection": "sms", "phone_number": PHONE},
            )
            assert started.status_code == 200, started.text
            # The dev outbox page is for `nopass dev` only, even with outbox senders.
            outbox = await http.get("/dev/outbox")
            assert outbox.status_code == 404
        begun = time.monotonic()
        code = server.stop(signal.SIGTERM)
        took = time.monotonic() - begun

    logs = server.logs()
    events = _json_lines(logs)
    requests = [e for e in events if e.get("event") == "request"]
    [ready_line] = [e for e in requests if e["path"] == "/health/ready"]
    assert (ready_line["method"], ready_line["status"]) == ("GET", 200)
    [start_line] = [e for e in requests if e["path"] == "/passwordless/start"]
    assert (start_line["method"], start_line["status"]) == ("POST", 200)
    [outbox_line] = [e for e in requests if e["path"] == "/dev/outbox"]
    assert outbox_line["status"] == 404
    assert all("?" not in e["path"] for e in requests)
    assert "424242" not in logs and "t0k3n" not in logs
    # Within serve's own graceful-shutdown bound (timeout_graceful_shutdown, 30 s): a clean
    # stop, not a speed figure (a loaded 2-core CI machine took 5.6 s once).
    assert took < 30, took
    assert code == 0, f"exit status {code} after SIGTERM"


@pytest.mark.slow
async def test_sigterm_lets_an_in_flight_request_finish(
    database_url: str, tmp_path: Path, gateway: Gateway
) -> None:
    port = free_port()
    config = tenant_config(
        f"http://127.0.0.1:{port}",
        sms={"provider": "sms_gateway", "gateway_url": gateway.url, "from": "+15550001111"},
    )
    await prepare_database(database_url, config)
    gateway.delay = 10  # the gateway holds the request until the test releases it
    with live_server(nopass_env(database_url), tmp_path, port=port) as server:
        async with httpx.AsyncClient(base_url=server.url, timeout=15) as http:
            pending = asyncio.create_task(
                http.post(
                    "/passwordless/start",
                    json={"client_id": NATIVE_ID, "connection": "sms", "phone_number": PHONE},
                )
            )
            deadline = time.monotonic() + 5
            while not gateway.requests and time.monotonic() < deadline:
                await asyncio.sleep(0.02)
            assert gateway.requests, "the start request never reached the gateway"
            server.process.send_signal(signal.SIGTERM)
            await asyncio.sleep(0.3)  # the server is shutting down, the request still in flight
            assert server.process.poll() is None, "exited with a request in flight"
            gateway.released.set()
            response = await pending
        assert response.status_code == 200, response.text
        code = await asyncio.to_thread(server.process.wait, 10)
    assert code == 0, f"exit status {code} after SIGTERM"
