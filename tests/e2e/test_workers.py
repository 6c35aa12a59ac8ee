"""``nopass serve --workers 2`` puts each worker on a listening socket of its own
(SO_REUSEPORT, ``nopass/workers.py``): connections opened together, even as soon as the first
worker answers, spread over the workers,
a worker that dies is replaced without refusing connections, and a second server on the same
port fails instead of sharing it. Linux only (/proc)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest

from tests.support.harness import prepare_database
from tests.support.live import LiveServer, live_server, nopass_cli, nopass_env
from tests.support.services import free_port
from tests.support.tokens import login_config

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")

LISTEN, ESTABLISHED = "0A", "01"
CONNECTIONS = 24


def _sockets(port: int, state: str) -> set[str]:
    """Inodes of the loopback TCP sockets on local ``port`` in ``state`` (/proc/net/tcp)."""
    inodes = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local, st, inode = fields[1], fields[3], fields[9]
        if int(local.split(":")[1], 16) == port and st == state:
            inodes.add(inode)
    return inodes


def _socket_owners(pids: list[int], inodes: set[str]) -> Counter[int]:
    owners: Counter[int] = Counter()
    for pid in pids:
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            with contextlib.suppress(OSError):
                target = os.readlink(fd)
                if target.startswith("socket:[") and target[8:-1] in inodes:
                    owners[pid] += 1
    return owners


def _wait_for(check: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.1)


@pytest.fixture
def server(sqlite_url: str, tmp_path: Path) -> Iterator[LiveServer]:
    port = free_port()
    asyncio.run(prepare_database(sqlite_url, login_config(f"127.0.0.1:{port}")))
    with live_server(nopass_env(sqlite_url), tmp_path, port=port, workers=2) as live:
        # Live means one worker answers; the other may still be starting. Its socket already
        # listens (the parent listens on both), so connections wait for it, not go elsewhere.
        assert len(_sockets(port, LISTEN)) == 2
        _wait_for(lambda: len(live.worker_pids()) == 2)
        yield live


@contextlib.asynccontextmanager
async def _requests(port: int, count: int, *, timeout: float = 20.0) -> AsyncIterator[list[bytes]]:
    """``count`` keep-alive connections opened at once, one request on each: the answers,
    the connections kept open until the block ends."""
    writers: list[asyncio.StreamWriter] = []

    async def one() -> bytes:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writers.append(writer)
        writer.write(b"GET /health/live HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        return await reader.readuntil(b"\r\n\r\n")

    try:
        yield await asyncio.wait_for(asyncio.gather(*(one() for _ in range(count))), timeout)
    finally:
        for writer in writers:
            writer.close()


def test_connections_opened_together_spread_over_the_workers(server: LiveServer) -> None:
    async def scenario() -> Counter[int]:
        async with _requests(server.port, CONNECTIONS) as answers:
            assert all(a.startswith(b"HTTP/1.1 200") for a in answers)
            return _socket_owners(server.worker_pids(), _sockets(server.port, ESTABLISHED))

    owners = asyncio.run(scenario())
    assert sum(owners.values()) == CONNECTIONS
    # by a hash of the client's port: each worker gets some (all on one: p = 2**-23)
    assert len(owners) == 2 and min(owners.values()) >= 3, owners


def test_a_killed_worker_is_replaced_and_no_connection_is_refused(server: LiveServer) -> None:
    victim = server.worker_pids()[0]
    os.kill(victim, signal.SIGKILL)

    async def scenario() -> list[bytes]:
        async with _requests(server.port, CONNECTIONS, timeout=30) as answers:
            return answers

    # Connections hashed to the dead worker's socket wait for its replacement.
    answers = asyncio.run(scenario())
    assert all(a.startswith(b"HTTP/1.1 200") for a in answers)
    _wait_for(lambda: len(server.worker_pids()) == 2 and victim not in server.worker_pids())
    assert len(_sockets(server.port, LISTEN)) == 2


def test_a_second_server_on_the_same_port_fails_instead_of_sharing_it(
    server: LiveServer, sqlite_url: str, tmp_path: Path
) -> None:
    result = nopass_cli(
        "serve",
        "--port",
        str(server.port),
        "--workers",
        "2",
        env=nopass_env(sqlite_url),
        cwd=tmp_path,
        timeout=30,
    )
    assert result.returncode == 3, result.stdout + result.stderr  # uvicorn's STARTUP_FAILURE
    assert "in use" in (result.stdout + result.stderr).lower()
    with socket.create_connection(("127.0.0.1", server.port), timeout=5):
        pass  # the first server still serves


@pytest.mark.parametrize("sig", [signal.SIGTTOU, signal.SIGTTIN], ids=["SIGTTOU", "SIGTTIN"])
def test_asking_for_fewer_or_more_workers_leaves_each_socket_with_its_worker(
    server: LiveServer, sig: signal.Signals
) -> None:
    """uvicorn's supervisor stops its last worker on SIGTTOU and starts one more on SIGTTIN.
    With a socket per worker, the first would leave a socket that listens with nobody to
    accept (its connections hang), the second a worker on no socket. Both are refused."""
    workers = sorted(server.worker_pids())
    server.process.send_signal(sig)
    _wait_for(lambda: f"Received {sig.name}" in server.logs())

    async def scenario() -> list[bytes]:
        async with _requests(server.port, CONNECTIONS) as answers:
            return answers

    answers = asyncio.run(scenario())
    assert all(a.startswith(b"HTTP/1.1 200") for a in answers)
    assert sorted(server.worker_pids()) == workers
    assert "the number of workers is fixed" in server.logs()
