"""``BodyDeadline`` under a real uvicorn on loopback (``nopass serve``'s protocol), around a
small Starlette app: what the app reads and what the access log is told.

The live-server tests (tests/e2e/test_request_body.py) cover the 408 and the log lines of
``nopass serve``; these cover the paths no nopass route can be held in: a request without a
body whose client leaves while it is served, and an app that reads its empty body or asks
whether its client is still there.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import uvicorn
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from nopass.api.body_deadline import BodyDeadline
from nopass.api.http_protocol import OneWriteHttpToolsProtocol
from nopass.core.errors import ClientDisconnected
from tests.support.services import free_port

SECONDS = 5.0


@dataclass
class Probe:
    """What the app saw, and how each request ended for the middleware outside."""

    entered: asyncio.Event = field(default_factory=asyncio.Event)
    hold: asyncio.Event = field(default_factory=asyncio.Event)
    seen: list[Any] = field(default_factory=list)
    endings: list[str] = field(default_factory=list)


def _app(probe: Probe) -> ASGIApp:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        if scope["path"] == "/held":  # no body read; held until the test lets it go
            probe.entered.set()
            await probe.hold.wait()
        elif scope["path"] == "/body":
            probe.seen.append(await request.body())
        elif scope["path"] == "/still-there":
            probe.seen.append(await request.body())
            probe.seen.append(await request.is_disconnected())
        await PlainTextResponse("ok")(scope, receive, send)

    return app


def _ending(probe: Probe, app: ASGIApp) -> ASGIApp:
    """Where the access log sits: records whether ``ClientDisconnected`` came up."""

    async def outer(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        try:
            await app(scope, receive, send)
        except ClientDisconnected:
            probe.endings.append("client_disconnected")
        else:
            probe.endings.append("returned")

    return outer


@dataclass
class Running:
    port: int
    server: uvicorn.Server
    probe: Probe


@pytest.fixture
async def running() -> AsyncIterator[Running]:
    probe = Probe()
    port = free_port()
    config = uvicorn.Config(
        _ending(probe, BodyDeadline(_app(probe), seconds=SECONDS)),
        host="127.0.0.1",
        port=port,
        http=OneWriteHttpToolsProtocol,
        log_level="critical",
        lifespan="off",
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.01)
    try:
        yield Running(port, server, probe)
    finally:
        probe.hold.set()
        server.should_exit = True
        await task


async def _until(check: Any, timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not check():
            await asyncio.sleep(0.01)


async def _ask(port: int, request: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request)
        return await asyncio.wait_for(reader.readuntil(b"\r\n\r\nok"), 5)
    finally:
        writer.close()


async def test_a_client_that_leaves_a_bodiless_request_while_it_is_served_is_told_apart(
    running: Running,
) -> None:
    _, writer = await asyncio.open_connection("127.0.0.1", running.port)
    writer.write(b"GET /held HTTP/1.1\r\nHost: t\r\n\r\n")
    await asyncio.wait_for(running.probe.entered.wait(), 5)
    writer.close()
    await _until(lambda: not running.server.server_state.connections)  # the server saw it go
    running.probe.hold.set()  # the app answers now, to nobody
    await _until(lambda: running.probe.endings)
    assert running.probe.endings == ["client_disconnected"]


async def test_a_served_request_returns_as_usual(running: Running) -> None:
    running.probe.hold.set()
    got = await _ask(running.port, b"GET /held HTTP/1.1\r\nHost: t\r\n\r\n")
    assert got.startswith(b"HTTP/1.1 200 OK\r\n")
    await _until(lambda: running.probe.endings)
    assert running.probe.endings == ["returned"]


async def test_an_app_that_reads_a_bodiless_request_gets_its_empty_body(
    running: Running,
) -> None:
    got = await _ask(running.port, b"GET /body HTTP/1.1\r\nHost: t\r\n\r\n")
    assert got.startswith(b"HTTP/1.1 200 OK\r\n")
    assert running.probe.seen == [b""]


async def test_an_app_that_asks_after_its_body_hears_its_client_is_still_there(
    running: Running,
) -> None:
    got = await _ask(
        running.port, b"POST /still-there HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\n\r\nbody"
    )
    assert got.startswith(b"HTTP/1.1 200 OK\r\n")
    assert running.probe.seen == [b"body", False]
    await _until(lambda: running.probe.endings)
    assert running.probe.endings == ["returned"]
