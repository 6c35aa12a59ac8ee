"""uvicorn's httptools protocol, each answer sent in one write instead of two.

uvicorn writes a response's head (status line and headers) when the app starts the
response, and its body in a second write. On a keep-alive connection each write is a
``send`` system call and, on loopback, a wake-up of the reader: about 0.1 ms of CPU each on
the benchmark's machine (docs/benchmarks.md), for two small writes that always go together.
Here the head waits for the first body write (or the end of the connection) and leaves with
it. Nothing else changes: a ``100 Continue`` leaves at once (the client waits for it), and a
HEAD answer, which has no body write, is not held.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

__all__ = ["OneWriteHttpToolsProtocol"]


class _HeadWithBody:
    """The transport as one response's cycle sees it: the head is held until the body
    comes (``write``) or the connection ends (``close``)."""

    __slots__ = ("_head", "_transport")

    def __init__(self, transport: asyncio.Transport) -> None:
        self._transport = transport
        self._head: bytes | None = None

    def write(self, data: bytes) -> None:
        head = self._head
        if head is not None:
            self._head = None
            self._transport.write(head + data)
        elif data[:9] == b"HTTP/1.1 " and data[9:10] != b"1":  # a final answer's head
            self._head = data
        else:
            self._transport.write(data)

    def close(self) -> None:
        head, self._head = self._head, None
        if head is not None:
            self._transport.write(head)
        self._transport.close()

    def is_closing(self) -> bool:
        return self._transport.is_closing()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class OneWriteHttpToolsProtocol(HttpToolsProtocol):
    """``nopass serve``'s HTTP protocol (``uvicorn.run(..., http=...)``)."""

    def on_headers_complete(self) -> None:
        before = self.cycle
        super().on_headers_complete()
        cycle = self.cycle
        if cycle is not before and cycle.scope["method"] != "HEAD":  # a new request's cycle
            cycle.transport = _HeadWithBody(self.transport)  # type: ignore[assignment]
