"""The SMTP client (``delivery.smtp_client``) and ``SmtpTransport`` against real servers on
loopback: aiosmtpd (with and without PIPELINING, STARTTLS, AUTH) and a raw asyncio server
that scripts replies byte by byte and records how the client's writes arrive."""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import re
import ssl
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from nopass.core.clock import SystemClock
from nopass.core.errors import DeliveryFailed, DeliveryFailure
from nopass.core.models import Channel, EmailProvider, Message
from nopass.delivery.smtp import SmtpTransport
from nopass.delivery.smtp_client import (
    Reply,
    SmtpCleartextAuth,
    SmtpClient,
    SmtpDisconnected,
    SmtpError,
    SmtpInvalidMessage,
    SmtpMessage,
    SmtpNotSupported,
    SmtpProtocolError,
    SmtpRecipientsRefused,
    SmtpReplyError,
    SmtpTimeout,
)
from tests.support.services import free_port

BODY = b"Subject: hi\r\n\r\n.hidden line\r\n..two dots\r\nlone LF\nlone CR\rlast line"
ARRIVES = b"Subject: hi\r\n\r\n.hidden line\r\n..two dots\r\nlone LF\r\nlone CR\r\nlast line\r\n"


# --- aiosmtpd ---------------------------------------------------------------------------


@dataclass
class Mail:
    sender: str
    recipients: list[str]
    content: bytes
    options: list[str]


@dataclass
class Handler:
    """Records what arrives; refuses the recipients in ``refuse``; optionally says
    PIPELINING in its EHLO reply (aiosmtpd reads commands line by line, so it copes)."""

    pipelining: bool = False
    refuse: dict[str, str] = field(default_factory=dict)
    received: list[Mail] = field(default_factory=list)
    logins: list[tuple[str, bytes, bytes]] = field(default_factory=list)

    async def handle_EHLO(
        self, server: Any, session: Any, envelope: Any, hostname: str, responses: list[str]
    ) -> list[str]:
        session.host_name = hostname
        if self.pipelining:
            responses.insert(-1, "250-PIPELINING")
        return responses

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: list[str]
    ) -> str:
        if address in self.refuse:
            return self.refuse[address]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.received.append(
            Mail(
                envelope.mail_from,
                list(envelope.rcpt_tos),
                envelope.original_content,
                list(envelope.mail_options),
            )
        )
        return "250 OK queued"

    def authenticate(
        self, server: Any, session: Any, envelope: Any, mechanism: str, data: Any
    ) -> AuthResult:
        self.logins.append((mechanism, data.login, data.password))
        return AuthResult(success=data.password == b"s3cret p\xc3\xa4ss", handled=False)


@contextmanager
def aiosmtpd(handler: Handler, **kwargs: Any) -> Iterator[int]:
    port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port, **kwargs)
    controller.start()
    try:
        yield port
    finally:
        controller.stop()


async def connected(port: int, **kwargs: Any) -> SmtpClient:
    client = SmtpClient(timeout=kwargs.pop("timeout", 5.0))
    await client.connect("127.0.0.1", port, **kwargs)
    return client


@pytest.mark.parametrize("pipelining", [False, True], ids=["lockstep", "pipelining"])
async def test_messages_arrive_intact(pipelining: bool) -> None:
    handler = Handler(pipelining=pipelining)
    with aiosmtpd(handler) as port:
        client = await connected(port)
        assert client.supports("pipelining") is pipelining
        assert client.supports("8BITMIME")
        for n in range(3):
            await client.send("from@example.com", [f"to{n}@example.com"], BODY)
        await client.send("", ["x@example.com", "y@example.com"], b".\r\n")
        await client.quit()
        assert not client.is_connected
    assert [m.recipients for m in handler.received[:3]] == [
        [f"to{n}@example.com"] for n in range(3)
    ]
    assert {m.content for m in handler.received[:3]} == {ARRIVES}
    assert handler.received[0].sender == "from@example.com"
    last = handler.received[3]
    assert (last.sender, last.recipients, last.content) == (
        "<>",
        ["x@example.com", "y@example.com"],
        b".\r\n",
    )


@pytest.mark.parametrize("pipelining", [False, True], ids=["lockstep", "pipelining"])
async def test_refused_recipient_raises_and_the_session_stays_usable(pipelining: bool) -> None:
    handler = Handler(
        pipelining=pipelining, refuse={"bounce@example.com": "550 5.1.1 No such user"}
    )
    with aiosmtpd(handler) as port:
        client = await connected(port)
        with pytest.raises(SmtpRecipientsRefused) as caught:
            await client.send("from@example.com", ["bounce@example.com"], BODY)
        assert (caught.value.code, caught.value.message) == (550, "5.1.1 No such user")
        assert not caught.value.retryable
        assert [r for r, _ in caught.value.refused] == ["bounce@example.com"]
        assert client.is_connected
        await client.send("from@example.com", ["ok@example.com"], BODY)  # RSET worked
        with pytest.raises(SmtpRecipientsRefused):  # one refused of two: the message fails
            await client.send("from@example.com", ["ok@example.com", "bounce@example.com"], BODY)
        # Pipelined, DATA was accepted for ok@: the client hangs up rather than send it an
        # empty message. In lockstep DATA was never sent, and the session goes on.
        assert client.is_connected is not pipelining
        if not pipelining:
            await client.quit()
        await asyncio.sleep(0.1)  # the server notices a hang-up
    assert [(m.recipients, m.content) for m in handler.received] == [(["ok@example.com"], ARRIVES)]


async def test_unsafe_addresses_are_refused_before_anything_is_sent() -> None:
    handler = Handler()
    with aiosmtpd(handler) as port:
        client = await connected(port)
        for sender, recipient in [
            ("a@example.com\r\nRCPT TO:<evil@example.com>", "b@example.com"),
            ("a@example.com", "b@example.com>\nDATA"),
            ("a@example.com", "b\0@example.com"),
            ("a<b@example.com", "b@example.com"),
        ]:
            with pytest.raises(ValueError, match="unsafe address"):
                await client.send(sender, [recipient], BODY)
        await client.send("a@example.com", ["b@example.com"], BODY)
        await client.quit()
    assert len(handler.received) == 1


async def test_smtputf8_when_advertised_and_a_permanent_error_when_not() -> None:
    handler = Handler(pipelining=True)
    with aiosmtpd(handler, enable_SMTPUTF8=True) as port:
        client = await connected(port)
        await client.send(
            "ré@example.com", ["用户@例子.example"], "Subject: é\r\n\r\nü\r\n".encode()
        )
        await client.quit()
    [mail] = handler.received
    assert (mail.sender, mail.recipients) == ("ré@example.com", ["用户@例子.example"])
    assert {"SMTPUTF8", "BODY=8BITMIME"} <= set(mail.options)
    with aiosmtpd(Handler(), enable_SMTPUTF8=False) as port:
        client = await connected(port)
        with pytest.raises(SmtpNotSupported) as caught:
            await client.send("a@example.com", ["用户@例子.example"], b"x\r\n")
        assert not caught.value.retryable
        assert client.is_connected
        await client.quit()


# --- STARTTLS and AUTH ------------------------------------------------------------------


@dataclass(frozen=True)
class Tls:
    server: ssl.SSLContext
    client: ssl.SSLContext


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> Tls:
    """A self-signed certificate for 127.0.0.1 (an IP address SAN), and a client context
    that trusts it (verification and host name checks on, as in production)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    directory: Path = tmp_path_factory.mktemp("tls")
    cert_pem = cert.public_bytes(serialization.Encoding.PEM)
    (directory / "cert.pem").write_bytes(cert_pem)
    (directory / "key.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(directory / "cert.pem", directory / "key.pem")
    return Tls(server, ssl.create_default_context(cadata=cert_pem.decode()))


@pytest.mark.parametrize("mechanism", ["PLAIN", "LOGIN"])
async def test_starttls_then_auth(tls: Tls, mechanism: str) -> None:
    handler = Handler(pipelining=True)
    excluded = ["PLAIN"] if mechanism == "LOGIN" else []
    with aiosmtpd(
        handler,
        tls_context=tls.server,
        authenticator=handler.authenticate,
        auth_require_tls=True,
        auth_exclude_mechanism=excluded,
    ) as port:
        client = await connected(port, ssl_context=tls.client)  # starttls: auto
        assert not client.supports("STARTTLS")  # the EHLO after TLS no longer offers it
        assert mechanism in client.extensions["AUTH"].split()
        await client.login("alice", "s3cret päss")
        await client.send("from@example.com", ["to@example.com"], BODY)
        await client.quit()
        assert handler.logins == [(mechanism, b"alice", "s3cret päss".encode())]
        assert [m.content for m in handler.received] == [ARRIVES]

        client = await connected(port, ssl_context=tls.client, starttls=True)
        with pytest.raises(SmtpReplyError) as caught:
            await client.login("alice", "wrong")
        assert caught.value.code == 535
        assert not client.is_connected

        client = await connected(port, starttls=False)  # no TLS: no AUTH offered
        assert client.supports("STARTTLS")
        with pytest.raises(SmtpNotSupported, match="AUTH"):
            await client.login("alice", "s3cret päss")

        with pytest.raises(SmtpDisconnected, match="TLS handshake failed"):
            await connected(port)  # the default context does not trust the certificate


async def test_starttls_always_needs_a_server_that_offers_it() -> None:
    with aiosmtpd(Handler()) as port, pytest.raises(SmtpNotSupported, match="STARTTLS"):
        await connected(port, starttls=True)


# --- a raw server ------------------------------------------------------------------------

CLOSE = b"<close>"  # a scripted answer ending so: hang up (after writing what comes before)
EHLO_PIPELINING = b"250-raw.test\r\n250-PIPELINING\r\n250 8BITMIME\r\n"
DEFAULTS = {
    b"EHLO": EHLO_PIPELINING,
    b"MAIL": b"250 2.1.0 Ok\r\n",
    b"RCPT": b"250 2.1.5 Ok\r\n",
    b"DATA": b"354 Go ahead\r\n",
    b".": b"250 2.0.0 Queued\r\n",
    b"RSET": b"250 2.0.0 Reset\r\n",
    b"QUIT": b"221 Bye\r\n",
}
# (connection number from 1, command line) -> the answer, or None for the default
Script = Callable[[int, bytes], bytes | None]


@dataclass
class RawServer:
    script: Script = lambda _n, _line: None
    greeting: bytes = b"220 raw.test ESMTP\r\n"
    chunks: list[bytes] = field(default_factory=list)  # as each read returned them
    commands: list[bytes] = field(default_factory=list)
    messages: list[bytes] = field(default_factory=list)
    connections: int = 0
    handlers: list[asyncio.Task[None]] = field(default_factory=list)
    writers: list[asyncio.StreamWriter] = field(default_factory=list)

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.handlers.append(cast(asyncio.Task[None], asyncio.current_task()))
        self.writers.append(writer)
        number, buffer = self.connections, b""
        body: list[bytes] | None = None  # the lines of a message being received
        writer.write(self.greeting)
        while chunk := await reader.read(65536):
            self.chunks.append(chunk)
            buffer += chunk
            out = b""  # all the replies to one read go out in one write
            while b"\r\n" in buffer:
                line, buffer = buffer.split(b"\r\n", 1)
                if body is not None and line != b".":
                    body.append(line)
                    continue
                self.commands.append(line)
                if body is not None:
                    self.messages.append(b"\r\n".join(body))
                    body = None
                verb = line.split(b" ", 1)[0].split(b":", 1)[0].upper()
                answer = self.script(number, line)
                answer = DEFAULTS.get(verb, b"500 What?\r\n") if answer is None else answer
                if answer.endswith(CLOSE):  # what comes before it is written first
                    writer.write(out + answer.removesuffix(CLOSE))
                    writer.close()
                    return
                if verb == b"DATA" and answer.startswith(b"354"):
                    body = []
                out += answer
            writer.write(out)
            await writer.drain()
        writer.close()


@asynccontextmanager
async def raw_server(server: RawServer) -> AsyncIterator[int]:
    listener = await asyncio.start_server(server.serve, "127.0.0.1", 0)
    try:
        yield listener.sockets[0].getsockname()[1]
    finally:
        listener.close()
        for writer in server.writers:  # the handlers see EOF and end (none is cancelled)
            writer.close()
        await asyncio.gather(*server.handlers, return_exceptions=True)


def answer(
    verb: bytes,
    reply: bytes,
    *,
    connection: int | None = None,
    after: int = 0,
    until: int | None = None,
) -> Script:
    """Answer ``verb`` with ``reply`` (on one connection; its uses after+1 to until)."""
    seen: dict[int, int] = {}

    def script(number: int, line: bytes) -> bytes | None:
        if not line.upper().startswith(verb) or connection not in (None, number):
            return None
        seen[number] = seen.get(number, 0) + 1
        return reply if after < seen[number] <= (until or seen[number]) else None

    return script


@pytest.mark.parametrize("pipelining", [False, True], ids=["lockstep", "pipelining"])
async def test_pipelining_writes_the_envelope_at_once(pipelining: bool) -> None:
    ehlo = EHLO_PIPELINING if pipelining else b"250-raw.test\r\n250 8BITMIME\r\n"
    server = RawServer(script=answer(b"EHLO", ehlo))
    async with raw_server(server) as port:
        client = await connected(port)
        await client.send("a@example.com", ["b@example.com", "c@example.com"], BODY)
        await client.quit()
    envelope = [b"MAIL FROM:<a@example.com>\r\n", b"RCPT TO:<b@example.com>\r\n"]
    envelope += [b"RCPT TO:<c@example.com>\r\n", b"DATA\r\n"]
    first = server.chunks.index(envelope[0] if not pipelining else b"".join(envelope))
    expected = [b"".join(envelope)] if pipelining else envelope
    body = b"Subject: hi\r\n\r\n..hidden line\r\n...two dots\r\nlone LF\r\nlone CR\r\nlast line\r\n"
    assert server.chunks[first:] == [*expected, body + b".\r\n", b"QUIT\r\n"]


async def test_replies_split_across_reads_and_several_in_one_read() -> None:
    pieces = [b"25", b"0-raw.test\r\n250-PIPE", b"LINING\r", b"\n250-SIZE 1000\r\n250 AUTH=LOGIN"]

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"220-raw.test ESMTP\r\n220 a two-line greeting\r\n")
        await reader.readline()
        for piece in [*pieces, b"\r\n"]:
            writer.write(piece)
            await writer.drain()
            await asyncio.sleep(0.02)
        await reader.readuntil(b"DATA\r\n")
        writer.write(b"250 sender ok\r\n250 rcpt ok\r\n354 go\r\n")  # three in one write
        await reader.readuntil(b"\r\n.\r\n")
        writer.write(b"250-queued\r\n250 as 12345\r\n")
        await reader.readline()
        writer.write(b"221 bye\r\n")
        writer.close()

    listener = await asyncio.start_server(serve, "127.0.0.1", 0)
    async with listener:
        client = await connected(listener.sockets[0].getsockname()[1])
        assert client.extensions == {"PIPELINING": "", "SIZE": "1000", "AUTH": "LOGIN"}
        await client.send("a@example.com", ["b@example.com"], BODY)
        await client.quit()


async def test_4xx_on_mail_is_raised_after_rset() -> None:
    server = RawServer(
        script=lambda n, line: (
            answer(b"MAIL", b"451 4.3.0 Try later\r\n")(n, line)
            or answer(b"RCPT", b"503 5.5.1 Need MAIL\r\n")(n, line)
            or answer(b"DATA", b"503 5.5.1 Need RCPT\r\n")(n, line)
        )
    )
    async with raw_server(server) as port:
        client = await connected(port)
        with pytest.raises(SmtpReplyError) as caught:
            await client.send("a@example.com", ["b@example.com"], BODY)
        assert (caught.value.code, caught.value.message, caught.value.retryable) == (
            451,
            "4.3.0 Try later",
            True,
        )
        assert server.commands[-1] == b"RSET"
        assert client.is_connected
        await client.quit()


async def test_data_accepted_without_recipients_gets_an_empty_message() -> None:
    """RFC 2920 §3.1: DATA accepted although no RCPT was: send a single dot, then RSET."""
    server = RawServer(script=answer(b"RCPT", b"450 4.2.1 Busy\r\n", until=1))
    async with raw_server(server) as port:
        client = await connected(port)
        with pytest.raises(SmtpRecipientsRefused) as caught:
            await client.send("a@example.com", ["b@example.com"], BODY)
        assert (caught.value.code, caught.value.retryable) == (450, True)
        assert server.commands[-3:] == [b"DATA", b".", b"RSET"]
        assert server.messages == [b""]
        await client.send("a@example.com", ["b@example.com"], BODY)  # still usable
        await client.quit()


@pytest.mark.parametrize(
    ("script", "stage"),
    [
        (answer(b"EHLO", b"250-raw.test\r\n250-PIPE" + CLOSE), "connect"),
        (answer(b"MAIL", b"250-half a reply\r\n" + CLOSE), "send"),
        (answer(b"MAIL", CLOSE), "send"),
    ],
    ids=["mid-ehlo-reply", "mid-mail-reply", "on-mail"],
)
async def test_server_hanging_up_is_a_disconnect(script: Script, stage: str) -> None:
    server = RawServer(script=script)
    async with raw_server(server) as port:
        if stage == "connect":
            with pytest.raises(SmtpDisconnected):
                await connected(port)
            return
        client = await connected(port)
        with pytest.raises(SmtpDisconnected) as caught:
            await client.send("a@example.com", ["b@example.com"], BODY)
        assert caught.value.before_reply  # nothing of the transaction was answered
        assert not client.is_connected


async def test_no_reply_times_out() -> None:
    server = RawServer(greeting=b"")
    async with raw_server(server) as port:
        began = time.monotonic()
        with pytest.raises(SmtpTimeout, match="timed out"):
            await connected(port, timeout=0.3)
        assert time.monotonic() - began < 2.0
    server = RawServer(script=answer(b"DATA", b""))  # DATA is never answered
    async with raw_server(server) as port:
        client = await connected(port, timeout=0.3)
        with pytest.raises(SmtpTimeout):
            await client.send("a@example.com", ["b@example.com"], BODY)
        assert not client.is_connected


@pytest.mark.parametrize(
    "greeting",
    [b"hello there\r\n", b"220" + b"x" * 9000, b"2200 no separator\r\n", b"220-a\r\n250 b\r\n"],
    ids=["no-code", "line-too-long", "bad-separator", "codes-differ"],
)
async def test_malformed_replies_are_protocol_errors(greeting: bytes) -> None:
    async with raw_server(RawServer(greeting=greeting)) as port:
        with pytest.raises(SmtpProtocolError):
            await connected(port)


async def test_refused_greeting_and_helo_fallback() -> None:
    async with raw_server(RawServer(greeting=b"554 5.3.2 Go away\r\n")) as port:
        with pytest.raises(SmtpReplyError) as caught:
            await connected(port)
        assert caught.value.code == 554
    server = RawServer(
        script=lambda n, line: (
            answer(b"EHLO", b"502 5.5.2 What's that\r\n")(n, line)
            or answer(b"HELO", b"250 raw.test\r\n")(n, line)
        )
    )
    async with raw_server(server) as port:
        client = await connected(port)
        assert client.extensions == {}
        await client.send("a@example.com", ["b@example.com"], BODY)  # lockstep
        await client.quit()
    assert [c.split(b" ")[0] for c in server.commands[:4]] == [b"EHLO", b"HELO", b"MAIL", b"RCPT"]


# --- SmtpTransport ----------------------------------------------------------------------


def provider(port: int) -> EmailProvider:
    return EmailProvider(
        name="smtp",
        enabled=True,
        default_from_address="login@acme.example",
        credentials={"smtp_host": "127.0.0.1", "smtp_port": port},
        settings={},
    )


def message(recipient: str = "bob@example.com") -> Message:
    return Message(
        Channel.EMAIL, recipient, "Your code", "Code: 123456\n", None, "Acme <a@acme.example>"
    )


async def test_a_dropped_idle_session_is_replaced_and_the_message_sent_once() -> None:
    server = RawServer(script=answer(b"MAIL", CLOSE, connection=1, after=1))
    async with raw_server(server) as port:
        transport = SmtpTransport(timeout=2.0, clock=SystemClock())
        await transport.send(provider(port), message())
        await transport.send(provider(port), message())  # connection 1 hangs up on MAIL
        await transport.aclose()
    assert server.connections == 2
    assert len(server.messages) == 2


async def test_a_session_lost_after_the_body_is_not_retried() -> None:
    server = RawServer(script=answer(b".", CLOSE, after=1))
    async with raw_server(server) as port:
        transport = SmtpTransport(timeout=2.0, clock=SystemClock())
        await transport.send(provider(port), message())
        with pytest.raises(DeliveryFailed) as caught:
            await transport.send(provider(port), message())
        assert caught.value.kind is DeliveryFailure.UNEXPECTED
        assert caught.value.retryable
        assert (caught.value.provider_message or "").startswith("SmtpDisconnected: ")
        await transport.aclose()
    assert server.connections == 1
    assert len(server.messages) == 2  # the server got it; we cannot know: no resend


@pytest.mark.parametrize(
    ("reply", "retryable"), [(b"550 5.1.1 No such user\r\n", False), (b"452 4.2.2 Full\r\n", True)]
)
async def test_transport_refused_recipient_keeps_the_session(reply: bytes, retryable: bool) -> None:
    server = RawServer(script=answer(b"RCPT", reply, until=1))  # pipelined: DATA gets 354
    async with raw_server(server) as port:
        transport = SmtpTransport(timeout=2.0)
        with pytest.raises(DeliveryFailed) as caught:
            await transport.send(provider(port), message())
        failed = caught.value
        assert (failed.kind, failed.status) == (DeliveryFailure.REJECTED, int(reply[:3]))
        assert (failed.provider_message, failed.retryable) == ("recipient refused", retryable)
        await transport.send(provider(port), message())
        await transport.aclose()
    assert server.connections == 1  # RSET, not a new session
    assert server.messages == [b"", server.messages[1]]  # RFC 2920's empty message, then it
    assert b"Code: 123456" in server.messages[1]


async def test_transport_international_address() -> None:
    handler = Handler()
    with aiosmtpd(handler, enable_SMTPUTF8=True) as port:
        transport = SmtpTransport(timeout=5.0)
        await transport.send(provider(port), message("用户@例子.example"))
        await transport.aclose()
    [mail] = handler.received
    assert mail.recipients == ["用户@例子.example"]
    assert "To: 用户@例子.example".encode() in mail.content
    with aiosmtpd(Handler(), enable_SMTPUTF8=False) as port:
        transport = SmtpTransport(timeout=5.0)
        with pytest.raises(DeliveryFailed) as caught:
            await transport.send(provider(port), message("用户@例子.example"))
        assert not caught.value.retryable
        await transport.aclose()


# --- send_many: a batch over one session --------------------------------------------------


class CountingClient(SmtpClient):
    """Records each write the client makes (a write is a round trip: its replies are
    awaited before the next)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.writes: list[bytes] = []

    def _write(self, data: bytes) -> None:
        self.writes.append(data)
        super()._write(data)


async def counting(port: int) -> CountingClient:
    client = CountingClient(timeout=5.0)
    await client.connect("127.0.0.1", port)
    client.writes.clear()  # EHLO and the like
    return client


def batch(count: int = 3) -> list[SmtpMessage]:
    return [
        SmtpMessage(f"from{n}@example.com", [f"to{n}@example.com"], BODY + f" {n}".encode())
        for n in range(1, count + 1)
    ]


def envelope(n: int) -> bytes:
    return b"MAIL FROM:<from%d@example.com>\r\nRCPT TO:<to%d@example.com>\r\nDATA\r\n" % (n, n)


def writes(client: CountingClient) -> list[bytes]:
    """The client's writes, without MAIL's SIZE parameter (where the server offers it)."""
    return [re.sub(rb" SIZE=\d+", b"", w) for w in client.writes]


STUFFED = b"Subject: hi\r\n\r\n..hidden line\r\n...two dots\r\nlone LF\r\nlone CR\r\nlast line"


def body(n: int) -> bytes:
    return STUFFED + f" {n}\r\n.\r\n".encode()


async def test_send_many_pipelines_a_batch_in_n_plus_one_writes() -> None:
    handler = Handler(pipelining=True)
    with aiosmtpd(handler) as port:
        client = await counting(port)
        assert await client.send_many(batch()) == [None, None, None]
        assert client.is_connected
        assert writes(client) == [
            envelope(1),
            body(1) + envelope(2),  # RFC 2920 §3.1: the data, then the next envelope
            body(2) + envelope(3),
            body(3),
        ]
        await client.quit()
    assert [(m.sender, m.recipients) for m in handler.received] == [
        (f"from{n}@example.com", [f"to{n}@example.com"]) for n in (1, 2, 3)
    ]
    assert [m.content for m in handler.received] == [
        ARRIVES[:-2] + f" {n}\r\n".encode() for n in (1, 2, 3)
    ]


async def test_send_many_a_refused_recipient_fails_only_its_message() -> None:
    handler = Handler(pipelining=True, refuse={"to2@example.com": "550 5.1.1 No such user"})
    with aiosmtpd(handler) as port:
        client = await counting(port)
        first, second, third = await client.send_many(batch())
        assert first is None and third is None
        assert isinstance(second, SmtpRecipientsRefused)
        assert (second.code, second.retryable) == (550, False)
        # aiosmtpd answers DATA with 503 (no valid recipient): RSET goes with envelope 3.
        assert writes(client)[2] == b"RSET\r\n" + envelope(3)
        assert len(client.writes) == 4
        assert client.is_connected
        await client.quit()
    assert [m.recipients for m in handler.received] == [["to1@example.com"], ["to3@example.com"]]


async def test_send_many_data_accepted_without_recipients_gets_a_dot_then_rset() -> None:
    server = RawServer(script=answer(b"RCPT", b"550 5.1.1 No such user\r\n", after=1, until=2))
    async with raw_server(server) as port:
        client = await counting(port)
        first, second, third = await client.send_many(batch())
        assert first is None and third is None
        assert isinstance(second, SmtpRecipientsRefused) and second.code == 550
        assert writes(client) == [
            envelope(1),
            body(1) + envelope(2),
            b".\r\nRSET\r\n" + envelope(3),  # RFC 2920 §3.1's empty message, then RSET
            body(3),
        ]
        await client.quit()
    verbs = [c.split(b" ")[0].split(b":")[0] for c in server.commands]
    assert verbs[verbs.index(b"MAIL") :] == [
        *[b"MAIL", b"RCPT", b"DATA", b"."],
        *[b"MAIL", b"RCPT", b"DATA", b".", b"RSET"],
        *[b"MAIL", b"RCPT", b"DATA", b"."],
        b"QUIT",
    ]
    assert server.messages == [body(1)[:-5], b"", body(3)[:-5]]


async def test_send_many_a_disconnect_fails_the_rest_retryably() -> None:
    server = RawServer(script=answer(b".", b"250 2.0.0 Queued\r\n" + CLOSE))
    async with raw_server(server) as port:
        client = await counting(port)
        first, second, third = await client.send_many(batch())
        assert first is None
        assert isinstance(second, SmtpDisconnected) and second.retryable
        assert second.before_reply  # its envelope went with body 1 and got no reply
        assert isinstance(third, SmtpError) and third.retryable
        assert not client.is_connected
        assert len(client.writes) == 2  # message 3 was never written
    assert len(server.messages) == 1


async def test_send_many_a_disconnect_after_a_body_is_not_a_before_reply() -> None:
    server = RawServer(script=answer(b".", CLOSE, after=1))  # body 2 is never answered
    async with raw_server(server) as port:
        client = await counting(port)
        first, second, third = await client.send_many(batch())
        assert first is None
        assert isinstance(second, SmtpDisconnected) and not second.before_reply
        assert isinstance(third, SmtpDisconnected) and third.before_reply
    assert len(server.messages) == 2  # the server got message 2: it must not go again


async def test_send_many_without_pipelining_goes_in_lockstep() -> None:
    handler = Handler(pipelining=False, refuse={"to2@example.com": "550 5.1.1 No such user"})
    with aiosmtpd(handler) as port:
        client = await counting(port)
        first, second, third = await client.send_many(batch())
        assert first is None and third is None
        assert isinstance(second, SmtpRecipientsRefused)
        assert len(client.writes) == 4 + 3 + 4  # command by command; RSET after the refusal
        await client.quit()
    assert [m.recipients for m in handler.received] == [["to1@example.com"], ["to3@example.com"]]


async def test_send_many_an_unsafe_address_fails_only_its_message() -> None:
    handler = Handler(pipelining=True)
    with aiosmtpd(handler) as port:
        client = await counting(port)
        messages = batch()
        messages[1] = SmtpMessage("a@example.com", ["b@example.com>\r\nDATA"], BODY)
        first, second, third = await client.send_many(messages)
        assert first is None and third is None
        assert isinstance(second, SmtpInvalidMessage) and isinstance(second, ValueError)
        assert not second.retryable
        assert writes(client) == [envelope(1), body(1) + envelope(3), body(3)]
        await client.quit()
    assert len(handler.received) == 2


async def test_transport_send_many_replaces_a_dropped_idle_session_once() -> None:
    server = RawServer(script=answer(b"MAIL", CLOSE, connection=1, after=1))
    async with raw_server(server) as port:
        transport = SmtpTransport(timeout=2.0, clock=SystemClock())
        await transport.send(provider(port), message())
        results = await transport.send_many(
            provider(port), [message(f"u{n}@example.com") for n in range(3)]
        )
        assert results == [None, None, None]
        await transport.aclose()
    assert server.connections == 2
    assert len(server.messages) == 4


async def test_transport_send_many_classifies_each_failure() -> None:
    server = RawServer(script=answer(b"RCPT", b"452 4.2.2 Full\r\n", after=1, until=2))
    async with raw_server(server) as port:
        transport = SmtpTransport(timeout=2.0)
        first, second, third = await transport.send_many(
            provider(port), [message(f"u{n}@example.com") for n in range(3)]
        )
        assert first is None and third is None
        assert isinstance(second, DeliveryFailed)
        assert (second.kind, second.status, second.retryable) == (
            DeliveryFailure.REJECTED,
            452,
            True,
        )
        await transport.aclose()
    assert server.connections == 1


def test_a_refusal_of_recipients_is_retryable_only_if_every_refusal_is_temporary() -> None:
    def refused(*codes: int) -> SmtpRecipientsRefused:
        return SmtpRecipientsRefused([(f"r{c}@example.com", Reply(c, "no")) for c in codes])

    assert refused(450, 451).retryable
    assert not refused(450, 550).retryable
    assert not refused(550).retryable
    assert refused(550, 450).code == 550  # the first refusal's code


# --- AUTH only over TLS (issue 13) ------------------------------------------------------


class RecordingSmtp(SMTP):
    """aiosmtpd's server, recording every AUTH command it receives (before handling it)."""

    def __init__(self, handler: Any, auth_commands: list[str], **kwargs: Any) -> None:
        super().__init__(handler, **kwargs)
        self.auth_commands = auth_commands

    async def smtp_AUTH(self, arg: str) -> None:
        self.auth_commands.append(arg)
        await super().smtp_AUTH(arg)


class RecordingController(Controller):
    def __init__(self, handler: Handler, **kwargs: Any) -> None:
        super().__init__(handler, **kwargs)
        self.auth_commands: list[str] = []

    def factory(self) -> SMTP:
        return RecordingSmtp(self.handler, self.auth_commands, **self.SMTP_kwargs)


@contextmanager
def plaintext_auth_server(handler: Handler) -> Iterator[RecordingController]:
    """Offers AUTH PLAIN and LOGIN without TLS (no STARTTLS at all)."""
    controller = RecordingController(
        handler,
        hostname="127.0.0.1",
        port=free_port(),
        authenticator=handler.authenticate,
        auth_require_tls=False,
    )
    controller.start()
    try:
        yield controller
    finally:
        controller.stop()


def with_login(port: int, **settings: Any) -> EmailProvider:
    return EmailProvider(
        name="smtp",
        enabled=True,
        default_from_address="login@acme.example",
        credentials={
            "smtp_host": "127.0.0.1",
            "smtp_port": port,
            "smtp_user": "alice",
            "smtp_pass": "s3cret päss",
        },
        settings=settings,
    )


@pytest.mark.parametrize("starttls", ["auto", "never"])
async def test_no_auth_is_sent_over_a_session_without_tls(starttls: str) -> None:
    """A server without STARTTLS (or one a STARTTLS-stripping attacker answers for): by
    default the credentials never go out; the refusal is permanent, and says why."""
    handler = Handler()
    with plaintext_auth_server(handler) as server:
        transport = SmtpTransport(timeout=5.0)
        with pytest.raises(DeliveryFailed) as caught:
            await transport.send(with_login(server.port, starttls=starttls), message())
        await transport.aclose()
    assert server.auth_commands == []  # no AUTH command reached the server
    assert handler.logins == []
    assert handler.received == []
    assert not caught.value.retryable
    text = str(caught.value)
    assert "SmtpCleartextAuth" in text and "in clear" in text
    assert "s3cret" not in text and "alice" not in text


async def test_the_client_refuses_auth_without_tls_before_writing_it() -> None:
    handler = Handler()
    with plaintext_auth_server(handler) as server:
        client = await connected(server.port)
        assert client.supports("AUTH") and not client.encrypted
        with pytest.raises(SmtpCleartextAuth):
            await client.login("alice", "s3cret päss")
        assert not client.is_connected
    assert server.auth_commands == []


async def test_auth_in_clear_when_the_operator_allows_it() -> None:
    handler = Handler()
    with plaintext_auth_server(handler) as server:
        transport = SmtpTransport(timeout=5.0)
        await transport.send(with_login(server.port, allow_plaintext_auth=True), message())
        await transport.aclose()
    assert [a.split()[0] for a in server.auth_commands] == ["PLAIN"]
    assert handler.logins == [("PLAIN", b"alice", "s3cret päss".encode())]
    assert [m.recipients for m in handler.received] == [["bob@example.com"]]
