"""A real ``nopass serve`` in a subprocess, for tests that need the whole thing:
real sockets, uvicorn workers, SDKs as clients, signals."""

from __future__ import annotations

import contextlib
import os
import signal
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.support.harness import TEST_SECRET
from tests.support.services import free_port
from tests.support.tls import TlsFiles


@dataclass
class LiveServer:
    port: int
    process: subprocess.Popen[bytes]
    log_path: Path
    scheme: str = "http"  # https when served with --ssl-certfile

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}"

    @property
    def domain(self) -> str:
        return f"127.0.0.1:{self.port}"

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace")

    def worker_pids(self) -> list[int]:
        """uvicorn's worker processes under ``--workers N`` (Linux /proc; multiprocessing's
        resource tracker is a child too, but not a worker). Empty where /proc is missing."""
        pid = self.process.pid
        children = Path(f"/proc/{pid}/task/{pid}/children")
        if not children.exists():
            return []
        workers = []
        for child in children.read_text().split():
            with contextlib.suppress(OSError):
                if b"spawn_main" in Path(f"/proc/{child}/cmdline").read_bytes():
                    workers.append(int(child))
        return workers

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20.0) -> int:
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode


def nopass_env(database_url: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NOPASS_")}
    env.update(
        {
            "NOPASS_DATABASE_URL": database_url,
            "NOPASS_SECRET_KEY": TEST_SECRET,
            "NOPASS_OUTBOX_POLL_SECONDS": "0.1",
            "NOPASS_OUTBOX_RETRY_BASE_SECONDS": "0.1",
            "NOPASS_OUTBOX_RETRY_CAP_SECONDS": "0.5",
        }
    )
    env.update(extra)
    return env


def nopass_cli(
    *args: str, env: dict[str, str], cwd: Path | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "nopass", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def wait_until_live(
    url: str,
    process: subprocess.Popen[bytes],
    timeout: float = 30.0,
    *,
    verify: ssl.SSLContext | bool = True,
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"nopass exited early with {process.returncode}")
        with contextlib.suppress(httpx.HTTPError):
            answer = httpx.get(f"{url}/health/live", timeout=1.0, verify=verify)
            if answer.status_code == 200:
                return
        time.sleep(0.1)
    raise RuntimeError("nopass did not become live in time")


@contextlib.contextmanager
def live_server(
    env: dict[str, str],
    log_dir: Path,
    *,
    port: int | None = None,
    workers: int = 1,
    args: tuple[str, ...] = (),
    tls: TlsFiles | None = None,
    tls_key: Path | None = None,
) -> Iterator[LiveServer]:
    """``nopass serve`` on ``port``; with ``tls``, over HTTPS only, with its certificate and
    key (``--ssl-certfile``, ``--ssl-keyfile``: ``tls_key``, else ``tls.key``), waited for
    with its CA."""
    port = port or free_port()
    if tls is not None:
        key = str(tls_key or tls.key)
        args = ("--ssl-certfile", str(tls.cert), "--ssl-keyfile", key, *args)
    log_path = log_dir / f"nopass-{port}-{time.monotonic_ns()}.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "nopass",
                "serve",
                "--port",
                str(port),
                "--workers",
                str(workers),
                *args,
            ],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=log_dir,
        )
    scheme = "https" if tls is not None else "http"
    server = LiveServer(port=port, process=process, log_path=log_path, scheme=scheme)
    try:
        wait_until_live(server.url, process, verify=tls.trusting() if tls is not None else True)
        yield server
    finally:
        server.stop()
