"""A live ``nopass serve`` and raw sockets: a request body must arrive within
``NOPASS_REQUEST_BODY_TIMEOUT_SECONDS`` or the answer is ``408 request_timeout`` and the
connection closes; a client that goes away is logged as one ``client_disconnected`` line,
never as a 500 with a traceback (issue 13, item 5). Linux only (/proc/net/tcp)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.config import NATIVE_ID
from tests.support.harness import prepare_database
from tests.support.live import LiveServer, live_server, nopass_env
from tests.support.services import free_port
from tests.support.sms_gateway import Gateway, serve_gateway
from tests.support.tokens import login_config

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")

LIMIT = 2.0  # NOPASS_REQUEST_BODY_TIMEOUT_SECONDS of the server under test (default 10)
START = {"client_id": NATIVE_ID, "connection": "email", "email": "slow@example.com"}
PHONE = "+15557654321"


@dataclass
class Served:
    server: LiveServer
    gateway: Gateway


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    root = tmp_path_factory.mktemp("request_body")
    url = f"sqlite:///{root / 'nopass.db'}"
    port = free_port()
    with serve_gateway() as gateway:
        config = login_config(f"http://127.0.0.1:{port}", gateway_url=gateway.url)
        asyncio.run(prepare_database(url, config))
        env = nopass_env(url, NOPASS_REQUEST_BODY_TIMEOUT_SECONDS=str(LIMIT))
        with live_server(env, root, port=port) as server:
            yield Served(server, gateway)


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def _head(server: LiveServer, path: str, length: int) -> bytes:
    return (
        f"POST {path} HTTP/1.1\r\nHost: {server.domain}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {length}\r\n\r\n"
    ).encode()


def _connect(server: LiveServer, timeout: float) -> socket.socket:
    return socket.create_connection(("127.0.0.1", server.port), timeout=timeout)


def _read_answer(sock: socket.socket) -> Answer:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"closed before an answer: {data!r}"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines)}
    length = int(headers.get("content-length", "0"))
    while len(body) < length:
        chunk = sock.recv(65536)
        assert chunk, "closed in the middle of the answer"
        body += chunk
    return Answer(int(status_line.split()[1]), headers, body[:length])


def _closed(sock: socket.socket) -> bool:
    """Whether the server closed the connection after its answer (EOF before the socket's
    timeout, nothing more sent)."""
    try:
        return sock.recv(1) == b""
    except TimeoutError:
        return False


def _lines(text: str) -> list[dict[str, Any]]:
    lines = []
    for line in text.splitlines():
        with contextlib.suppress(ValueError):
            lines.append(json.loads(line))
    return lines


def _wait_for(check: Callable[[], bool], what: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"{what}: not reached in {timeout} s"
        time.sleep(0.05)


def _logged_since(server: LiveServer, mark: int) -> list[dict[str, Any]]:
    return _lines(server.logs()[mark:])


def _disconnect_lines(server: LiveServer, mark: int, path: str) -> list[dict[str, Any]]:
    return [
        e
        for e in _logged_since(server, mark)
        if e.get("event") == "client_disconnected" and e.get("path") == path
    ]


def _settle(server: LiveServer, mark: int) -> str:
    """The log since ``mark`` once a later request's line is in (nothing still to come from
    earlier requests on the single worker)."""
    assert httpx.get(f"{server.url}/health/live", timeout=10).status_code == 200
    _wait_for(
        lambda: any(e.get("path") == "/health/live" for e in _logged_since(server, mark)),
        "the probe's access line",
    )
    return server.logs()[mark:]


def _assert_no_failure(text: str) -> None:
    assert "Traceback" not in text, text
    for event in _lines(text):
        assert event.get("level") not in ("error", "critical"), event
        assert event.get("status") != 500, event


def _stalled(server: LiveServer, path: str) -> tuple[socket.socket, float]:
    """A request that declares 1000 bytes and sends 10: the socket and when they left."""
    sock = _connect(server, timeout=LIMIT + 10)
    sock.sendall(_head(server, path, 1000) + b'{"client":')
    return sock, time.monotonic()


@pytest.mark.slow
@pytest.mark.parametrize("path", ["/passwordless/start", "/passwordless/verify"])
def test_a_body_that_stops_short_is_answered_408_at_the_limit_and_the_connection_closed(
    served: Served, path: str
) -> None:
    """``/passwordless/start`` is a hot route (api/hot_routes.py); ``/passwordless/verify``
    goes through FastAPI's routing: the bound holds for both."""
    server = served.server
    mark = len(server.logs())
    sock, sent = _stalled(server, path)
    with sock:
        answer = _read_answer(sock)
        took = time.monotonic() - sent
        closed = _closed(sock)
    assert answer.status == 408, answer
    assert answer.json() == {
        "error": "request_timeout",
        "error_description": "The request body did not arrive in time",
    }
    assert answer.headers["content-type"] == "application/json; charset=utf-8"
    assert answer.headers["connection"] == "close"
    assert closed, "the connection stayed open after the 408"
    assert LIMIT * 0.9 <= took < LIMIT + 5, took  # the setting's 2 s, not the default 10 s
    text = _settle(server, mark)
    _assert_no_failure(text)
    [line] = [e for e in _lines(text) if e.get("path") == path]
    assert (line["event"], line["method"], line["status"]) == ("request", "POST", 408)


@pytest.mark.slow
def test_a_chunked_body_that_stalls_is_answered_408_at_the_limit(served: Served) -> None:
    server = served.server
    sock = _connect(server, timeout=LIMIT + 10)
    with sock:
        sock.sendall(
            f"POST /passwordless/start HTTP/1.1\r\nHost: {server.domain}\r\n"
            "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
            'a\r\n{"client":\r\n'.encode()  # one chunk of ten bytes, and neither more nor the end
        )
        sent = time.monotonic()
        answer = _read_answer(sock)
        took = time.monotonic() - sent
        closed = _closed(sock)
    assert answer.status == 408, answer
    assert answer.json()["error"] == "request_timeout"
    assert closed
    assert LIMIT * 0.9 <= took < LIMIT + 5, took


@pytest.mark.slow
def test_a_steady_upload_within_the_limit_succeeds_while_a_stalled_one_is_cut(
    served: Served,
) -> None:
    """The limit is each request's own: a body sent in five parts over half the limit is
    served, while a stalled request beside it is answered 408 at the limit."""
    server = served.server
    body = json.dumps(START).encode()
    stalled, sent = _stalled(server, "/passwordless/start")
    with stalled, _connect(server, timeout=LIMIT + 10) as steady:
        steady.sendall(_head(server, "/passwordless/start", len(body)))
        parts = [body[i : i + 12] for i in range(0, len(body), 12)]
        assert len(parts) >= 5
        pause = LIMIT / 2 / len(parts)
        started = time.monotonic()
        for part in parts:
            time.sleep(pause)  # the client's pace, not a wait for the server
            steady.sendall(part)
        uploading = time.monotonic() - started
        served_answer = _read_answer(steady)
        cut = _read_answer(stalled)
        took = time.monotonic() - sent
        cut_closed = _closed(stalled)
    assert uploading >= LIMIT / 2
    assert served_answer.status == 200, served_answer
    assert served_answer.json()["email"] == START["email"]
    assert cut.status == 408, cut
    assert cut_closed
    assert took < LIMIT + 5, took


def _server_side_open(server: LiveServer, client_port: int) -> bool:
    """Whether the server still holds its end of the connection from ``client_port``
    (ESTABLISHED or CLOSE_WAIT in /proc/net/tcp)."""
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local, remote, state = fields[1], fields[2], fields[3]
        if (
            int(local.split(":")[1], 16) == server.port
            and int(remote.split(":")[1], 16) == client_port
            and state in ("01", "08")
        ):
            return True
    return False


@pytest.mark.slow
def test_a_client_that_leaves_mid_body_is_one_disconnect_line_not_a_500(served: Served) -> None:
    server = served.server
    mark = len(server.logs())
    sock, _ = _stalled(server, "/passwordless/start")
    client_port = sock.getsockname()[1]
    sock.close()
    _wait_for(lambda: not _server_side_open(server, client_port), "the server's end closed")
    _wait_for(
        lambda: bool(_disconnect_lines(server, mark, "/passwordless/start")),
        "the client_disconnected line",
    )
    text = _settle(server, mark)
    _assert_no_failure(text)
    [line] = [e for e in _lines(text) if e.get("path") == "/passwordless/start"]
    assert line["event"] == "client_disconnected"
    assert line["level"] == "info"
    assert line["method"] == "POST"
    assert "status" not in line


@pytest.mark.slow
def test_a_client_that_leaves_before_its_answer_is_one_disconnect_line(served: Served) -> None:
    """The whole body came; the client hangs up while the SMS gateway holds the start. The
    200 that follows reaches nobody: the log says the client left, not that it was served."""
    server, gateway = served.server, served.gateway
    mark = len(server.logs())
    seen = len(gateway.requests)
    gateway.released.clear()
    gateway.delay = 30  # held until released
    body = json.dumps({"client_id": NATIVE_ID, "connection": "sms", "phone_number": PHONE})
    try:
        sock = _connect(server, timeout=10)
        sock.sendall(_head(server, "/passwordless/start", len(body)) + body.encode())
        _wait_for(lambda: len(gateway.requests) > seen, "the start reaching the gateway")
        client_port = sock.getsockname()[1]
        sock.close()
        _wait_for(lambda: not _server_side_open(server, client_port), "the server's end closed")
    finally:
        gateway.released.set()
        gateway.delay = 0
    _wait_for(
        lambda: bool(_disconnect_lines(server, mark, "/passwordless/start")),
        "the client_disconnected line",
    )
    text = _settle(server, mark)
    _assert_no_failure(text)
    [line] = [e for e in _lines(text) if e.get("path") == "/passwordless/start"]
    assert line["event"] == "client_disconnected"
    assert line["level"] == "info"
