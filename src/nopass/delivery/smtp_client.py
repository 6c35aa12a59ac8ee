"""A small asyncio SMTP client (RFC 5321) that pipelines (RFC 2920) when the server allows.

With ``PIPELINING`` advertised a batch of N messages (``send_many``) costs N+1 writes, each
awaiting its replies: ``MAIL FROM``, every ``RCPT TO`` and ``DATA`` of the first message; then
the dot-stuffed body of each message together with the next message's envelope (RFC 2920
§3.1: "the actual transfer of message content is explicitly allowed to be the first command
in a group"); then the last body alone. One message (``send``) costs two. Without it the
client goes command by command. STARTTLS (RFC 3207), AUTH PLAIN and LOGIN (RFC 4954, 4616)
and SMTPUTF8 (RFC 6531) are supported; AUTH goes only over TLS unless the caller allows it in
clear; nothing is logged, so credentials never are.

Errors::

    SmtpError                  connection or protocol trouble (``retryable``)
    ├── SmtpTimeout            no reply within the timeout
    ├── SmtpDisconnected       the connection was closed or reset (``before_reply``)
    ├── SmtpProtocolError      a malformed or oversized reply, or data nobody asked for
    ├── SmtpNotSupported       the server lacks an extension the session needs
    │   └── SmtpCleartextAuth  AUTH refused: the session has no TLS (not retryable)
    ├── SmtpInvalidMessage     an unsafe address or no recipient (also a ``ValueError``)
    └── SmtpReplyError         the server answered with an error (``code``, ``message``)
        └── SmtpRecipientsRefused   one or more RCPT TO refused (``refused``)

After a ``SmtpReplyError`` for a message the session is reset and usable (or, if the reset
failed, closed); after any other error during a command it is closed.
"""

from __future__ import annotations

import asyncio
import base64
import re
import socket
import ssl
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import cast

__all__ = [
    "Reply",
    "SmtpCleartextAuth",
    "SmtpClient",
    "SmtpDisconnected",
    "SmtpError",
    "SmtpInvalidMessage",
    "SmtpMessage",
    "SmtpNotSupported",
    "SmtpProtocolError",
    "SmtpRecipientsRefused",
    "SmtpReplyError",
    "SmtpTimeout",
]

MAX_LINE = 8 * 1024  # a reply line (RFC 5321 says 512; servers are generous with text)
MAX_REPLY = 64 * 1024  # all the lines of one reply
MAX_QUEUED = 1024 * 1024  # replies received but not yet read (a flooding server)

_LINE_END = re.compile(rb"\r\n|\r|\n")
_UNSAFE = re.compile(r"[\r\n\0<>]")


class SmtpError(Exception):
    """A connection or protocol problem; worth trying again later unless said otherwise."""

    retryable: bool = True


class SmtpTimeout(SmtpError):
    pass


class SmtpDisconnected(SmtpError):
    def __init__(self, message: str, *, before_reply: bool = False) -> None:
        super().__init__(message)
        # True: lost before the server answered anything of this transaction, so the
        # message was certainly not accepted and may go out again on a new session.
        self.before_reply = before_reply


class SmtpProtocolError(SmtpError):
    pass


class SmtpNotSupported(SmtpError):
    def __init__(self, message: str, *, retryable: bool = True) -> None:
        super().__init__(message)
        self.retryable = retryable


class SmtpCleartextAuth(SmtpNotSupported):
    """``login`` on a session without TLS (the server offered no STARTTLS, or it was turned
    off) and without ``allow_plaintext``: nothing was sent, so no credential went out."""

    def __init__(self) -> None:
        super().__init__(
            "AUTH refused: the session is not encrypted (no STARTTLS), so the credentials "
            "would be sent in clear",
            retryable=False,
        )


class SmtpInvalidMessage(SmtpError, ValueError):
    """The message cannot go out as given (an address that could inject commands, or no
    recipient); nothing of it was sent."""

    retryable = False


class SmtpReplyError(SmtpError):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(f"{code} {message}")
        self.code = code
        self.message = message
        self.retryable = 400 <= code < 500


class SmtpRecipientsRefused(SmtpReplyError):
    """Carries the first refusal's code and message; ``refused`` lists them all. Worth
    trying again only if every refusal was temporary (4xx)."""

    def __init__(self, refused: list[tuple[str, Reply]]) -> None:
        first = refused[0][1]
        super().__init__(first.code, first.message)
        self.refused = refused
        self.retryable = all(400 <= reply.code < 500 for _, reply in refused)


@dataclass(frozen=True, slots=True)
class Reply:
    code: int
    message: str  # the lines' text joined with "\n"

    @property
    def ok(self) -> bool:
        return 200 <= self.code < 300


@dataclass(frozen=True, slots=True)
class SmtpMessage:
    """One message for ``send_many``: ``content`` is the message (headers and body);
    ``smtputf8``: it needs SMTPUTF8 (non-ASCII addresses imply it)."""

    sender: str
    recipients: list[str]
    content: bytes
    smtputf8: bool = False


@dataclass(frozen=True, slots=True)
class _Transaction:
    mail: bytes
    rcpts: list[bytes]
    recipients: list[str]
    body: bytes  # dot-stuffed, ending ".\r\n"

    @property
    def envelope(self) -> bytes:
        return b"".join([self.mail, *self.rcpts, b"DATA\r\n"])


@dataclass(frozen=True, slots=True)
class _Tail:
    """What ends a message, written with the next envelope: its body (``index``: the
    message's), or after a refusal "." (``dot``: DATA was accepted) and RSET."""

    data: bytes
    index: int | None = None
    dot: bool = False


class _ReplyReader(asyncio.Protocol):
    """Splits what the server sends into replies and queues them; ``next`` awaits one.
    Several replies may come in one read (pipelining) and one reply over several reads."""

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._code = b""  # of the multi-line reply being read
        self._lines: list[str] = []
        self._size = 0
        self._replies: deque[Reply] = deque()
        self._queued = 0
        self._waiter: asyncio.Future[None] | None = None
        self.error: SmtpError | None = None
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    def connection_lost(self, exc: Exception | None) -> None:
        reason = f"connection lost: {exc}" if exc else "the server closed the connection"
        self._fail(SmtpDisconnected(reason))

    def data_received(self, data: bytes) -> None:
        if self.error is not None:
            return
        buffer = self._buffer
        buffer += data
        start = 0
        while (end := buffer.find(b"\n", start)) >= 0:
            stop = end - 1 if end > start and buffer[end - 1] == 13 else end  # CRLF or LF
            line = bytes(buffer[start:stop])
            start = end + 1
            if not self._line(line):
                return
        del buffer[:start]
        if len(buffer) > MAX_LINE:
            self._fail(SmtpProtocolError("reply line too long"))

    def _line(self, line: bytes) -> bool:
        code, separator = line[:3], line[3:4]
        if (
            len(code) != 3
            or not code.isdigit()
            or code[:1] not in b"2345"
            or separator not in (b"", b" ", b"-")
            or (self._code and code != self._code)
        ):
            self._fail(SmtpProtocolError(f"malformed reply: {line[:80]!r}"))
            return False
        self._size += len(line)
        if len(line) > MAX_LINE or self._size > MAX_REPLY:
            self._fail(SmtpProtocolError("reply too long"))
            return False
        self._lines.append(line[4:].decode("utf-8", "replace"))
        if separator == b"-":
            self._code = code
            return True
        reply = Reply(int(code), "\n".join(self._lines))
        self._replies.append(reply)
        self._queued += len(reply.message)
        self._code, self._lines, self._size = b"", [], 0
        if self._queued > MAX_QUEUED:
            self._fail(SmtpProtocolError("too many replies"))
            return False
        self._wake()
        return True

    def _fail(self, error: SmtpError) -> None:
        if self.error is None:
            self.error = error
        if self.transport is not None:
            self.transport.close()
        self._wake()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    @property
    def idle(self) -> bool:
        """Nothing received that was not read (an idle server may say 421, then close)."""
        return not (self._replies or self._buffer or self._lines)

    async def next(self, timeout: float) -> Reply:
        """The next reply in order: queued ones first, then the connection's error."""
        while not self._replies:
            if self.error is not None:
                raise self.error
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                async with asyncio.timeout(timeout):
                    await self._waiter
            except TimeoutError:
                raise SmtpTimeout(f"timed out after {timeout:g} s waiting for a reply") from None
            finally:
                self._waiter = None
        reply = self._replies.popleft()
        self._queued -= len(reply.message)
        return reply


class SmtpClient:
    """One SMTP session. Every wait (connect, handshake, each reply) is bounded by
    ``timeout`` seconds. ``connect``, then ``login`` if needed, then ``send`` any number of
    messages, then ``quit``."""

    def __init__(self, *, timeout: float = 10.0) -> None:
        self.timeout = timeout
        self.extensions: dict[str, str] = {}  # EHLO keyword (upper case) -> its parameters
        self._reader = _ReplyReader()
        self._transport: asyncio.Transport | None = None
        self._hostname = ""
        self.encrypted = False  # TLS is on (STARTTLS went through)

    @property
    def is_connected(self) -> bool:
        transport = self._transport
        return transport is not None and not transport.is_closing() and self._reader.error is None

    def supports(self, extension: str) -> bool:
        return extension.upper() in self.extensions

    async def connect(
        self,
        host: str,
        port: int,
        *,
        starttls: bool | None = None,
        ssl_context: ssl.SSLContext | None = None,
        local_hostname: str | None = None,
    ) -> None:
        """Greeting, EHLO (or HELO), and STARTTLS then EHLO again when ``starttls`` is True
        (required), or None (if advertised); never when False."""
        if self._transport is not None:
            raise RuntimeError("an SmtpClient connects once")
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self.timeout):
                self._hostname = local_hostname or await _local_hostname()
                transport, _ = await loop.create_connection(lambda: self._reader, host, port)
        except TimeoutError:
            raise SmtpTimeout(f"timed out connecting to {host}:{port}") from None
        except (OSError, UnicodeError) as exc:  # UnicodeError: a name IDNA cannot encode
            raise SmtpDisconnected(f"cannot connect to {host}:{port}: {exc}") from exc
        self._transport = transport
        try:
            greeting = await self._reader.next(self.timeout)
            if not greeting.ok:
                raise SmtpReplyError(greeting.code, greeting.message)
            await self._ehlo()
            if starttls is False or (starttls is None and not self.supports("STARTTLS")):
                return
            if not self.supports("STARTTLS"):
                raise SmtpNotSupported("the server does not offer STARTTLS")
            await self._starttls(host, ssl_context or ssl.create_default_context())
            await self._ehlo()
        except BaseException:
            self.close()
            raise

    async def login(self, user: str, password: str, *, allow_plaintext: bool = False) -> None:
        """AUTH PLAIN if offered, else AUTH LOGIN; only over TLS unless ``allow_plaintext``
        (``SmtpCleartextAuth``, before any AUTH is written). Any failure closes the session."""
        methods = self.extensions.get("AUTH", "").upper().split()
        try:
            if not (self.encrypted or allow_plaintext):
                raise SmtpCleartextAuth()
            if not self.supports("AUTH"):
                raise SmtpNotSupported("the server does not offer AUTH")
            if "PLAIN" in methods:
                token = _b64(f"\0{user}\0{password}")
                reply = await self._command(f"AUTH PLAIN {token}\r\n".encode())
            elif "LOGIN" in methods:
                reply = await self._command(b"AUTH LOGIN\r\n")
                for secret in (user, password):
                    if reply.code != 334:
                        break
                    reply = await self._command(f"{_b64(secret)}\r\n".encode())
            else:
                raise SmtpNotSupported(f"no supported AUTH mechanism in {methods}")
            if reply.code != 235:
                raise SmtpReplyError(reply.code, reply.message)
        except BaseException:
            self.close()
            raise

    async def send(
        self, sender: str, recipients: list[str], content: bytes, *, smtputf8: bool = False
    ) -> None:
        """One transaction (``send_many`` of one) that raises its error. ``content`` is the
        message (headers and body); line ends are normalised to CRLF and lines starting with
        '.' are dot-stuffed. ``smtputf8``: the message needs SMTPUTF8 (non-ASCII addresses
        imply it)."""
        [error] = await self.send_many([SmtpMessage(sender, recipients, content, smtputf8)])
        if error is not None:
            raise error

    async def send_many(self, messages: Sequence[SmtpMessage]) -> list[SmtpError | None]:
        """Sends each message in its own transaction and returns each one's error (None: the
        server accepted it), in order. A refusal fails only its message (the session is RSET
        and goes on). An invalid message (``SmtpInvalidMessage``) or one that needs SMTPUTF8
        from a server without it fails alone, unsent. A connection-level error (disconnect,
        timeout, protocol error) closes the session and fails every message not yet
        answered with it: a message whose body was written gets the error as is (it may
        have been accepted), one whose envelope got no reply at all (and the connection
        dropped) a ``SmtpDisconnected`` with ``before_reply``, one refused before the error
        its refusal, and the messages never written the error itself. Pipelined,
        a message refused after DATA was accepted for some of its recipients closes the
        session too (rather than send them an empty message): the rest then fail with a
        ``SmtpDisconnected`` (retryable)."""
        outcomes: list[SmtpError | None] = []
        todo: list[tuple[int, _Transaction]] = []
        for index, message in enumerate(messages):
            prepared = self._prepare(message)
            outcomes.append(prepared if isinstance(prepared, SmtpError) else None)
            if isinstance(prepared, _Transaction):
                todo.append((index, prepared))
        if not todo:
            return outcomes
        if not self.is_connected or not self._reader.idle:
            reason = "not connected" if not self.is_connected else "the server spoke out of turn"
            self.close()
            for index, _ in todo:
                outcomes[index] = SmtpDisconnected(reason, before_reply=True)
            return outcomes
        try:
            if "PIPELINING" in self.extensions:
                await self._pipelined(todo, outcomes)
            else:
                for index, transaction in todo:
                    outcomes[index] = await self._lockstep(transaction)
        except BaseException:  # cancelled: where the session stands is unknown
            self.close()
            raise
        return outcomes

    def _prepare(self, message: SmtpMessage) -> _Transaction | SmtpError:
        """The commands and data of one message, or why it cannot be sent."""
        sender, recipients = message.sender, message.recipients
        for address in (sender, *recipients):
            if _UNSAFE.search(address):
                return SmtpInvalidMessage(f"unsafe address: {address!r}")
        if not recipients:
            return SmtpInvalidMessage("no recipients")
        smtputf8 = message.smtputf8 or not all(a.isascii() for a in (sender, *recipients))
        if smtputf8 and not self.supports("SMTPUTF8"):
            return SmtpNotSupported("the server does not offer SMTPUTF8", retryable=False)
        content = _crlf(message.content)
        options = ""
        if "SIZE" in self.extensions:
            options += f" SIZE={len(content)}"
        if smtputf8:
            options += " SMTPUTF8"
        if not content.isascii() and "8BITMIME" in self.extensions:
            options += " BODY=8BITMIME"
        encoding = "utf-8" if smtputf8 else "ascii"
        return _Transaction(
            mail=f"MAIL FROM:<{sender}>{options}\r\n".encode(encoding),
            rcpts=[f"RCPT TO:<{r}>\r\n".encode(encoding) for r in recipients],
            recipients=list(recipients),
            body=_dot_stuffed(content),
        )

    async def _pipelined(
        self, todo: list[tuple[int, _Transaction]], outcomes: list[SmtpError | None]
    ) -> None:
        """Each write carries what ends the previous message (its body, or "." and RSET if
        it failed) and the next message's envelope; then the replies to both are read."""
        tail: _Tail | None = None  # what ends the previous message, not yet answered
        flight: tuple[int, _Transaction] | None = None  # an envelope written, not answered
        replies: list[Reply] = []  # to the envelope in flight, as far as they got
        position = 0  # todo[position:] are not written yet
        try:
            while position < len(todo) or tail is not None:
                flight, replies, envelope = None, [], b""
                if position < len(todo):
                    flight = todo[position]
                    envelope = flight[1].envelope
                    position += 1
                self._write((tail.data if tail is not None else b"") + envelope)
                if tail is not None:
                    await self._settle(tail, outcomes)
                    tail = None
                if flight is None:
                    break
                index, transaction = flight
                for _ in range(len(transaction.rcpts) + 2):
                    replies.append(await self._reader.next(self.timeout))
                flight = None
                error = _envelope_error(replies, transaction.recipients)
                if error is None:
                    tail = _Tail(transaction.body, index)
                    continue
                outcomes[index] = error
                data_accepted = replies[-1].code == 354
                if data_accepted and any(reply.ok for reply in replies[1:-1]):
                    # Some recipients were accepted: the single dot would send them an empty
                    # message. Hanging up before the end of the data aborts it instead.
                    raise SmtpDisconnected(
                        "the session was closed to abort a refused message", before_reply=True
                    )
                # RFC 2920 §3.1: "if the DATA command was accepted the client SMTP should
                # send a single dot" (an empty message), then RSET keeps the session usable.
                end = b".\r\n" if data_accepted else b""
                tail = _Tail(end + b"RSET\r\n", dot=data_accepted)
        except SmtpError as exc:
            self.close()
            if tail is not None and tail.index is not None:
                outcomes[tail.index] = exc  # the body was written: it may have arrived
            if flight is not None:
                outcomes[flight[0]] = _lost(exc, replies, flight[1].recipients)
            for index, _ in todo[position:]:
                outcomes[index] = exc

    async def _settle(self, tail: _Tail, outcomes: list[SmtpError | None]) -> None:
        """Reads the replies to what ended a message: its body's (its outcome), or those to
        "." (whatever they say) and RSET (a refusal spoils the session)."""
        if tail.index is not None:
            outcomes[tail.index] = _data_error(await self._reader.next(self.timeout))
            return
        if tail.dot:
            await self._reader.next(self.timeout)
        reply = await self._reader.next(self.timeout)
        if not reply.ok:
            raise SmtpProtocolError(f"RSET refused: {reply.code} {reply.message}")

    async def _lockstep(self, transaction: _Transaction) -> SmtpError | None:
        """One transaction, command by command (DATA only when all went well)."""
        replies: list[Reply] = []  # to MAIL, each RCPT, DATA: as far as they got
        try:
            replies.append(await self._command(transaction.mail))
            if replies[0].ok:
                for rcpt in transaction.rcpts:
                    replies.append(await self._command(rcpt))
                if all(reply.ok for reply in replies):
                    replies.append(await self._command(b"DATA\r\n"))
            error = _envelope_error(replies, transaction.recipients)
            if error is not None:  # DATA was not accepted: RSET keeps the session usable
                if not (await self._command(b"RSET\r\n")).ok:
                    self.close()
                return error
            return _data_error(await self._command(transaction.body))
        except SmtpError as exc:
            self.close()
            return _lost(exc, replies, transaction.recipients)

    async def quit(self) -> None:
        """QUIT politely, then close (whatever the server answers)."""
        try:
            await self._command(b"QUIT\r\n")
        finally:
            self.close()

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()

    async def _ehlo(self) -> None:
        reply = await self._command(f"EHLO {self._hostname}\r\n".encode())
        self.extensions = {}
        if 500 <= reply.code < 600:
            reply = await self._command(f"HELO {self._hostname}\r\n".encode())
            if not reply.ok:
                raise SmtpReplyError(reply.code, reply.message)
            return
        if not reply.ok:
            raise SmtpReplyError(reply.code, reply.message)
        for line in reply.message.split("\n")[1:]:
            keyword, _, params = line.strip().partition(" ")
            keyword = keyword.upper()
            if keyword.startswith("AUTH="):  # an old form, maybe besides "AUTH ..."
                keyword, params = "AUTH", f"{keyword[5:]} {params}"
            if keyword == "AUTH" and "AUTH" in self.extensions:
                params = f"{self.extensions['AUTH']} {params}"
            self.extensions[keyword] = params.strip()

    async def _starttls(self, host: str, context: ssl.SSLContext) -> None:
        reply = await self._command(b"STARTTLS\r\n")
        if reply.code != 220:
            raise SmtpReplyError(reply.code, reply.message)
        if not self._reader.idle:  # no replies may be injected before TLS (RFC 3207 §6)
            raise SmtpProtocolError("data after the STARTTLS reply")
        plain = self._connected()
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self.timeout):
                transport = await loop.start_tls(plain, self._reader, context, server_hostname=host)
        except TimeoutError:
            raise SmtpTimeout("timed out in the TLS handshake") from None
        except OSError as exc:
            raise SmtpDisconnected(f"TLS handshake failed: {exc}") from exc
        if transport is None:
            raise SmtpDisconnected("the connection closed in the TLS handshake")
        self._transport = self._reader.transport = transport
        self.encrypted = True

    async def _command(self, line: bytes) -> Reply:
        self._write(line)
        return await self._reader.next(self.timeout)

    def _write(self, data: bytes) -> None:
        self._connected().write(data)

    def _connected(self) -> asyncio.Transport:
        transport = self._transport
        if transport is None or not self.is_connected:
            raise self._reader.error or SmtpDisconnected("not connected")
        return transport


def _envelope_error(replies: list[Reply], recipients: list[str]) -> SmtpReplyError | None:
    """The error of the first failing command among the replies to MAIL, RCPTs, DATA."""
    if not replies:
        return None
    mail, rcpts, data = replies[0], replies[1 : 1 + len(recipients)], replies[1 + len(recipients) :]
    if not mail.ok:
        return SmtpReplyError(mail.code, mail.message)
    refused = [(r, reply) for r, reply in zip(recipients, rcpts, strict=False) if not reply.ok]
    if refused:
        return SmtpRecipientsRefused(refused)
    if data and data[0].code != 354:
        return SmtpReplyError(data[0].code, data[0].message)
    return None


def _data_error(reply: Reply) -> SmtpReplyError | None:
    """The error of the reply to a message's data, if it is one."""
    return None if reply.ok else SmtpReplyError(reply.code, reply.message)


def _lost(exc: SmtpError, replies: list[Reply], recipients: list[str]) -> SmtpError:
    """A message's error when the session failed (``exc``) during its envelope."""
    error = _envelope_error(replies, recipients)
    if error is not None:  # the server refused, then hung up: its refusal counts
        error.__cause__ = exc
        return error
    if isinstance(exc, SmtpDisconnected) and not replies:
        lost = SmtpDisconnected(str(exc), before_reply=True)
        lost.__cause__ = exc
        return lost
    return exc


def _crlf(content: bytes) -> bytes:
    """Lone CR or LF become CRLF (a check first: the content is usually CRLF already)."""
    crlf = content.count(b"\r\n")
    if content.count(b"\r") == crlf == content.count(b"\n"):
        return content
    return _LINE_END.sub(b"\r\n", content)


def _dot_stuffed(content: bytes) -> bytes:
    """The DATA payload: a '.' doubled at the start of a line, a final CRLF, then '.'."""
    if content.startswith(b"."):
        content = b"." + content
    content = content.replace(b"\r\n.", b"\r\n..")
    if content and not content.endswith(b"\r\n"):
        content += b"\r\n"
    return content + b".\r\n"


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode("ascii")


_fqdn: str | None = None


async def _local_hostname() -> str:
    """The name for EHLO: this host's FQDN, looked up once (in a thread, it may block)."""
    global _fqdn
    if _fqdn is None:
        name = await asyncio.to_thread(socket.getfqdn)
        _fqdn = name if name.isascii() and " " not in name else "localhost"
    return _fqdn
