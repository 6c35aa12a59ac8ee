"""``nopass serve``'s HTTP protocol: each answer in one write, and HTTP unchanged.

A real uvicorn server on loopback with the protocol, spoken to over a raw socket; the
transport beneath the protocol counts the writes that reach it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
import uvicorn

from nopass.api.http_protocol import OneWriteHttpToolsProtocol
from tests.support.services import free_port

writes: list[bytes] = []


class _Counting:
    def __init__(self, transport: asyncio.Transport) -> None:
        self._transport = transport

    def write(self, data: bytes) -> None:
        writes.append(bytes(data))
        self._transport.write(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class CountingProtocol(OneWriteHttpToolsProtocol):
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(_Counting(transport))  # type: ignore[arg-type]


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    path = scope["path"]
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    if path == "/stream":  # a head, then the body in two parts a moment apart
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"one,", "more_body": True})
        await asyncio.sleep(0.05)
        await send({"type": "http.response.body", "body": b"two"})
        return
    if path == "/broken":  # starts an answer and fails before its body
        await send(
            {"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"9")]}
        )
        raise RuntimeError("the app failed mid-answer")
    answer = b"echo:" + body
    headers = [(b"content-type", b"text/plain"), (b"content-length", b"%d" % len(answer))]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": answer})


@pytest.fixture
async def server() -> AsyncIterator[int]:
    port = free_port()
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        http=CountingProtocol,
        log_level="critical",
        lifespan="off",
    )
    running = uvicorn.Server(config)
    task = asyncio.create_task(running.serve())
    while not running.started:
        await asyncio.sleep(0.01)
    writes.clear()
    try:
        yield port
    finally:
        running.should_exit = True
        await task


async def exchange(port: int, request: bytes, *, until: bytes | None = None) -> bytes:
    """Send ``request``; read until ``until`` appears, or until the server closes."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(request)
    got = b""
    try:
        while until is None or until not in got:
            chunk = await asyncio.wait_for(reader.read(65536), 5)
            if not chunk:
                break
            got += chunk
    finally:
        writer.close()
    return got


async def test_keep_alive_answers_leave_in_one_write_each(server: int) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", server)
    try:
        for body in (b"first", b"second"):
            writer.write(b"POST /x HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n" % len(body))
            writer.write(body)
            answer = await asyncio.wait_for(reader.readuntil(b"echo:" + body), 5)
            assert answer.startswith(b"HTTP/1.1 200 OK\r\n")
            assert b"content-length: %d\r\n" % (5 + len(body)) in answer
    finally:
        writer.close()
    assert len(writes) == 2
    assert all(w.startswith(b"HTTP/1.1 200 OK\r\n") and b"\r\n\r\necho:" in w for w in writes)


async def test_head_answers_are_not_held(server: int) -> None:
    got = await exchange(server, b"HEAD /x HTTP/1.1\r\nHost: t\r\n\r\n", until=b"\r\n\r\n")
    assert got.startswith(b"HTTP/1.1 200 OK\r\n")
    assert got.endswith(b"\r\n\r\n")  # a head and no body


async def test_100_continue_leaves_before_the_body_is_sent(server: int) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", server)
    try:
        writer.write(
            b"POST /x HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n"
        )
        interim = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        assert interim == b"HTTP/1.1 100 Continue\r\n\r\n"
        writer.write(b"body")
        answer = await asyncio.wait_for(reader.readuntil(b"echo:body"), 5)
        assert answer.startswith(b"HTTP/1.1 200 OK\r\n")
    finally:
        writer.close()


async def test_a_streamed_answer_sends_its_head_with_the_first_part(server: int) -> None:
    got = await exchange(server, b"GET /stream HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
    assert got.startswith(b"HTTP/1.1 200 OK\r\n")
    assert b"transfer-encoding: chunked\r\n" in got
    assert got.endswith(b"4\r\none,\r\n3\r\ntwo\r\n0\r\n\r\n")
    assert writes[0].startswith(b"HTTP/1.1 200 OK") and writes[0].endswith(b"4\r\none,\r\n")


async def test_an_answer_broken_after_its_head_still_sends_the_head_and_closes(
    server: int,
) -> None:
    got = await exchange(server, b"GET /broken HTTP/1.1\r\nHost: t\r\n\r\n")
    assert got.startswith(b"HTTP/1.1 200 OK\r\n")  # the head, then the connection closes
    assert got.endswith(b"\r\n\r\n")


async def test_a_malformed_request_gets_uvicorns_400(server: int) -> None:
    got = await exchange(server, b"NOT HTTP AT ALL\r\n\r\n")
    assert got.startswith(b"HTTP/1.1 400 Bad Request\r\n")
