"""The load generator's network parts: a lean HTTP/1.1 client and an SMTP sink.

Both are deliberately small: the generator must spend its core on sending load, not on a
general-purpose client library (httpx costs about as much CPU per request as the server).
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import json
import re
from dataclasses import dataclass, field
from typing import Any


@dataclass(slots=True)
class Response:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class HttpConnection:
    """One keep-alive HTTP/1.1 connection (requests on it are sequential)."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def _connect(self) -> None:
        self._reader, self._writer = await asyncio.open_connection(self.host, self.port)

    async def request(
        self,
        method: str,
        path: str,
        *,
        body: bytes = b"",
        content_type: str = "application/json",
        headers: dict[str, str] | None = None,
    ) -> Response:
        for attempt in (1, 2):  # a keep-alive connection the server closed: reconnect once
            if self._writer is None:
                await self._connect()
            try:
                return await self._exchange(method, path, body, content_type, headers or {})
            except (ConnectionError, asyncio.IncompleteReadError):
                self.close()
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    async def _exchange(
        self, method: str, path: str, body: bytes, content_type: str, headers: dict[str, str]
    ) -> Response:
        assert self._reader is not None and self._writer is not None
        head = [f"{method} {path} HTTP/1.1", f"Host: {self.host}:{self.port}"]
        if body or method == "POST":
            head += [f"Content-Type: {content_type}", f"Content-Length: {len(body)}"]
        head += [f"{k}: {v}" for k, v in headers.items()]
        self._writer.write(("\r\n".join(head) + "\r\n\r\n").encode() + body)
        status_line = await self._reader.readuntil(b"\r\n")
        status = int(status_line.split(b" ", 2)[1])
        response_headers: dict[str, str] = {}
        while True:
            line = await self._reader.readuntil(b"\r\n")
            if line == b"\r\n":
                break
            name, _, value = line.decode("latin-1").partition(":")
            response_headers[name.strip().lower()] = value.strip()
        if response_headers.get("transfer-encoding") == "chunked":
            payload = await self._chunked()
        else:
            payload = await self._reader.readexactly(int(response_headers.get("content-length", 0)))
        if response_headers.get("connection") == "close":
            self.close()
        return Response(status, response_headers, payload)

    async def _chunked(self) -> bytes:
        assert self._reader is not None
        parts = []
        while True:
            size = int((await self._reader.readuntil(b"\r\n")).split(b";")[0], 16)
            if size == 0:
                await self._reader.readuntil(b"\r\n")
                return b"".join(parts)
            parts.append(await self._reader.readexactly(size))
            await self._reader.readexactly(2)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
        self._reader = self._writer = None


class ConnectionPool:
    """Connections handed out one request-sequence at a time (grows on demand)."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self._idle: list[HttpConnection] = []

    def take(self) -> HttpConnection:
        return self._idle.pop() if self._idle else HttpConnection(self.host, self.port)

    def give(self, connection: HttpConnection) -> None:
        self._idle.append(connection)

    def close(self) -> None:
        for connection in self._idle:
            connection.close()
        self._idle.clear()


@dataclass
class SmtpSink:
    """An SMTP server on loopback that hands each message's code to whoever waits for it.

    ``code_pattern`` finds the code in the plain-text body; messages are matched to waiters
    by recipient, so one login per recipient may be in flight at a time.
    """

    code_pattern: re.Pattern[str]
    received: int = 0
    unclaimed: int = 0  # messages nobody waited for (single-endpoint runs send those)
    _waiters: dict[str, asyncio.Future[str]] = field(default_factory=dict)
    _server: asyncio.Server | None = None

    async def start(self, port: int = 0) -> int:
        self._server = await asyncio.start_server(self._session, "127.0.0.1", port, backlog=1024)
        return int(self._server.sockets[0].getsockname()[1])

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()

    def expect(self, recipient: str) -> asyncio.Future[str]:
        """A future for the next code sent to ``recipient`` (call before triggering it)."""
        future: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._waiters[recipient.lower()] = future
        return future

    def forget(self, recipient: str) -> None:
        self._waiters.pop(recipient.lower(), None)

    async def drain(self, quiet: float = 1.5, limit: float = 60.0) -> None:
        """Wait until no message arrived for ``quiet`` seconds: a server's backlog from one
        phase must not hand stale codes to the next."""
        deadline = asyncio.get_running_loop().time() + limit
        seen = -1
        while self.received != seen and asyncio.get_running_loop().time() < deadline:
            seen = self.received
            await asyncio.sleep(quiet)

    async def _session(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Like a production MTA (Postfix): PIPELINING offered, and the replies to commands
        that arrived together leave together."""
        writer.write(b"220 bench-sink ESMTP\r\n")
        recipients: list[str] = []
        pending = b""
        in_data = False
        try:
            while chunk := await reader.read(65536):
                pending += chunk
                replies: list[bytes] = []
                while True:
                    if in_data:
                        end = pending.find(b"\r\n.\r\n")
                        if end < 0:
                            break
                        self._deliver(recipients, pending[: end + 2])
                        pending, in_data = pending[end + 5 :], False
                        replies.append(b"250 OK queued\r\n")
                        continue
                    end = pending.find(b"\r\n")
                    if end < 0:
                        break
                    line, pending = pending[: end + 2], pending[end + 2 :]
                    verb = line[:4].upper()
                    if verb in (b"EHLO", b"HELO"):
                        replies.append(
                            b"250-bench-sink\r\n250-PIPELINING\r\n250-8BITMIME\r\n250 SMTPUTF8\r\n"
                        )
                    elif verb == b"MAIL":
                        recipients = []
                        replies.append(b"250 OK\r\n")
                    elif verb == b"RCPT":
                        address = line[line.index(b"<") + 1 : line.rindex(b">")]
                        recipients.append(address.decode().lower())
                        replies.append(b"250 OK\r\n")
                    elif verb == b"DATA":
                        in_data = True
                        replies.append(b"354 go ahead\r\n")
                    elif verb == b"QUIT":
                        writer.write(b"".join(replies) + b"221 bye\r\n")
                        await writer.drain()
                        return
                    else:  # RSET, NOOP, ...
                        replies.append(b"250 OK\r\n")
                if replies:
                    writer.write(b"".join(replies))
                    await writer.drain()
        except (ConnectionError, asyncio.CancelledError):
            pass  # cancelled: the run is over and its loop closing (nothing left to report)
        finally:
            writer.close()

    def _deliver(self, recipients: list[str], data: bytes) -> None:
        self.received += 1
        code = self._code(data)
        for recipient in recipients:
            waiter = self._waiters.pop(recipient, None)
            if waiter is not None and not waiter.done():
                waiter.set_result(code)
            else:
                self.unclaimed += 1

    def _code(self, data: bytes) -> str:
        # Fast path: the code is plain in a 7bit or quoted-printable body.
        found = self.code_pattern.search(data.decode("latin-1"))
        if found:
            return found.group(1)
        message = email.message_from_bytes(data, policy=email.policy.default)
        part = message.get_body(preferencelist=("plain",)) or message
        text = part.get_content() if hasattr(part, "get_content") else str(part)
        found = self.code_pattern.search(text)
        return found.group(1) if found else ""
