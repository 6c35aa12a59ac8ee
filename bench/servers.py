"""Starting the servers under test: ``nopass serve`` (and the allauth baseline, see allauth/)."""

from __future__ import annotations

import contextlib
import os
import secrets
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

CLIENT_ID = "bench-native-client"
ALL_CPUS = set(range(os.cpu_count() or 1))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def unpinned() -> None:
    """preexec_fn: servers may use every core; only the load generator is pinned."""
    os.sched_setaffinity(0, ALL_CPUS)


def tenant_file(port: int, smtp_port: int) -> dict[str, Any]:
    """The tenant under test: one native app, the email connection over real SMTP. Rate
    limits stay on (their cost is measured) but high enough for one IP and 10³ users."""
    high = 1_000_000_000
    return {
        "tenant": {
            "name": "bench",
            "domains": [f"http://127.0.0.1:{port}"],
            "rate_limits": {
                "start_per_ip_per_hour": high,
                "start_per_identity_per_10min": high,
                "start_per_identity_per_day": high,
                "failures_per_ip_per_hour": high,
            },
        },
        "resource_servers": [],
        "clients": [
            {
                "name": "Bench App",
                "client_id": CLIENT_ID,
                "app_type": "native",
                "token_endpoint_auth_method": "none",
                "grant_types": [
                    "http://auth0.com/oauth/grant-type/passwordless/otp",
                    "refresh_token",
                ],
                "callbacks": ["https://app.bench.example/callback"],
                "refresh_token": {"rotation_type": "non-rotating"},
            }
        ],
        "connections": [
            {"name": "email", "strategy": "email", "enabled_clients": ["Bench App"]},
        ],
        "email_provider": {
            "name": "smtp",
            "default_from_address": "Bench <login@bench.example>",
            "credentials": {"smtp_host": "127.0.0.1", "smtp_port": smtp_port},
            "settings": {"starttls": "never"},
        },
    }


@dataclass
class Nopass:
    database_url: str
    redis_url: str | None
    workdir: Path
    port: int
    smtp_port: int
    secret: str = ""

    def __post_init__(self) -> None:
        self.secret = self.secret or secrets.token_urlsafe(32)

    @property
    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("NOPASS_")}
        env.update(NOPASS_DATABASE_URL=self.database_url, NOPASS_SECRET_KEY=self.secret)
        if self.redis_url:
            env["NOPASS_REDIS_URL"] = self.redis_url
        return env

    def cli(self, *args: str) -> None:
        done = subprocess.run(
            [sys.executable, "-m", "nopass", *args],
            env=self.env,
            cwd=self.workdir,
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode:
            raise RuntimeError(f"nopass {' '.join(args)} failed: {done.stderr or done.stdout}")

    def prepare(self) -> None:
        self.cli("migrate")
        config = self.workdir / "tenant.yaml"
        config.write_text(yaml.safe_dump(tenant_file(self.port, self.smtp_port)))
        self.cli("apply", "--file", str(config))

    @contextlib.contextmanager
    def serve(self, workers: int) -> Iterator[subprocess.Popen[bytes]]:
        log = (self.workdir / f"nopass-{self.port}.log").open("wb")
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "nopass",
                "serve",
                "--port",
                str(self.port),
                "--workers",
                str(workers),
            ],
            env=self.env,
            cwd=self.workdir,
            stdout=log,
            stderr=subprocess.STDOUT,
            preexec_fn=unpinned,
        )
        try:
            wait_http(f"http://127.0.0.1:{self.port}/health/ready", process)
            yield process
        finally:
            process.terminate()
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            log.close()


def wait_http(url: str, process: subprocess.Popen[bytes], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{process.args!r} exited with {process.returncode}")
        with (
            contextlib.suppress(OSError),
            urllib.request.urlopen(url, timeout=1.0) as response,  # noqa: S310 (loopback)
        ):
            if response.status < 500:
                return
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer in {timeout:.0f} s")
