"""Email over SMTP (RFC 5321) with our pipelining client; STARTTLS per the provider's settings.

Failures are classified for the outbox: connection problems and 4xx replies are retryable,
5xx replies (the server refused the message for good) are not; nor is AUTH on a session
without TLS, which is refused unless the provider's ``settings.allow_plaintext_auth``.
The Message-ID is derived from the outbox message's id, the same on every attempt.
"""

from __future__ import annotations

import binascii
import email.policy
import io
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass
from email.generator import BytesGenerator
from email.header import Header
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, formataddr, make_msgid, parseaddr

from nopass.core.clock import Clock, SystemClock
from nopass.core.errors import DeliveryFailed, DeliveryFailure
from nopass.core.models import EmailProvider, Message
from nopass.delivery.smtp_client import (
    SmtpClient,
    SmtpDisconnected,
    SmtpError,
    SmtpInvalidMessage,
    SmtpMessage,
    SmtpNotSupported,
    SmtpRecipientsRefused,
    SmtpReplyError,
)

__all__ = ["Envelope", "SmtpTransport", "build_email"]

STARTTLS = {"auto": None, "always": True, "never": False}
SUBJECT_FOLD_AT = 900  # longer (or non-ASCII) subjects are folded as RFC 2047 words


@dataclass(frozen=True, slots=True)
class Envelope:
    sender: str  # the address for MAIL FROM
    content: EmailMessage | bytes  # bytes: ready for DATA (CRLF lines)


def build_email(message: Message, clock: Clock, *, message_id: str | None = None) -> Envelope:
    """The MIME message: text (and HTML) in UTF-8, quoted-printable, written straight to
    bytes (the ``email`` package's generator cost more CPU than the rest of a send). An
    internationalised address (SMTPUTF8) takes ``EmailMessage``'s path. ``message_id`` (the
    outbox message's id) makes the Message-ID ``<id@sender domain>``, the same on every
    attempt; without it, a random one."""
    name, address = parseaddr(message.sender or "")
    if not address or "@" not in address:
        name, address = name or (message.sender or ""), "nopass@localhost"
    local, _, domain = address.rpartition("@")
    if not (address.isascii() and message.recipient.isascii()):
        mail = _build_international(message, clock, name, local, domain, message_id)
        return Envelope(address, mail)
    headers = [
        ("From", formataddr((_one_line(name), address), charset="utf-8")),
        ("To", _one_line(message.recipient)),
        ("Subject", _subject(_one_line(message.subject))),
        ("Date", format_datetime(clock.now())),
        ("Message-ID", _message_id(message_id, domain)),
        ("Auto-Submitted", "auto-generated"),
        ("MIME-Version", "1.0"),
    ]
    lines = [f"{key}: {value}" for key, value in headers]
    if message.html:
        boundary = f"=_nopass_{secrets.token_hex(12)}"
        lines.append(f'Content-Type: multipart/alternative; boundary="{boundary}"')
        body = "\r\n".join(
            [
                "",
                f"--{boundary}",
                _part(message.text, "plain"),
                f"--{boundary}",
                _part(message.html, "html"),
                f"--{boundary}--",
                "",
            ]
        )
    else:
        body = _part(message.text, "plain")
    return Envelope(address, ("\r\n".join(lines) + "\r\n" + body).encode("ascii"))


def _message_id(outbox_id: str | None, domain: str) -> str:
    if outbox_id is None:
        return make_msgid(domain=domain or None)
    return f"<{_one_line(outbox_id)}@{_one_line(domain) or 'localhost'}>"


def _one_line(value: str) -> str:
    """No header injection: line breaks in a header value become spaces."""
    return value.replace("\r\n", " ").replace("\r", " ").replace("\n", " ")


def _subject(subject: str) -> str:
    if subject.isascii() and len(subject) <= SUBJECT_FOLD_AT:
        return subject
    return Header(subject, "utf-8").encode(linesep="\r\n")


def _part(body: str, subtype: str) -> str:
    """A text part's headers and quoted-printable UTF-8 body, CRLF line ends."""
    text = body.replace("\r\n", "\n").replace("\r", "\n")
    encoded = binascii.b2a_qp(text.encode(), istext=True).decode("ascii")
    return (
        f'Content-Type: text/{subtype}; charset="utf-8"\r\n'
        "Content-Transfer-Encoding: quoted-printable\r\n\r\n" + encoded.replace("\n", "\r\n")
    )


def _build_international(
    message: Message, clock: Clock, name: str, local: str, domain: str, message_id: str | None
) -> EmailMessage:
    mail = EmailMessage()
    mail["From"] = Address(display_name=name, username=local, domain=domain)
    mail["To"] = message.recipient
    mail["Subject"] = message.subject
    _common_headers(mail, clock, domain, message_id)
    mail.set_content(message.text)
    if message.html:
        mail.add_alternative(message.html, subtype="html")
    return mail


def _common_headers(mail: EmailMessage, clock: Clock, domain: str, message_id: str | None) -> None:
    mail["Date"] = format_datetime(clock.now())
    mail["Message-ID"] = _message_id(message_id, domain)
    mail["Auto-Submitted"] = "auto-generated"


# host, port, user, password, STARTTLS (True, None: if offered, False), AUTH allowed in clear
Key = tuple[str, int, str | None, str | None, bool | None, bool]


class SmtpTransport:
    """Sends over kept-alive SMTP sessions (one per server and account, reused for
    ``keep_seconds``), so a busy outbox does not pay a TCP connect, EHLO and QUIT per email."""

    def __init__(
        self, *, timeout: float = 10.0, clock: Clock | None = None, keep_seconds: float = 10.0
    ) -> None:
        self._timeout = timeout
        self._clock = clock or SystemClock()
        self._keep_seconds = keep_seconds
        self._idle: dict[Key, tuple[SmtpClient, float]] = {}

    async def send(
        self, provider: EmailProvider, message: Message, *, message_id: str | None = None
    ) -> None:
        ids = None if message_id is None else [message_id]
        [failure] = await self.send_many(provider, [message], message_ids=ids)
        if failure is not None:
            raise failure

    async def send_many(
        self,
        provider: EmailProvider,
        messages: list[Message],
        *,
        message_ids: Sequence[str] | None = None,
    ) -> list[DeliveryFailed | None]:
        """The messages over one session, pipelined when the server allows (N+1 round trips
        for N messages); each message's failure, in order (None: sent). ``message_ids``: the
        outbox ids, for Message-IDs stable across attempts."""
        if not messages:
            return []
        creds = provider.credentials
        key: Key = (
            str(creds.get("smtp_host", "localhost")),
            int(creds.get("smtp_port", 587)),
            creds.get("smtp_user") or None,
            creds.get("smtp_pass") or None,
            STARTTLS[str(provider.settings.get("starttls", "auto"))],
            provider.settings.get("allow_plaintext_auth") is True,
        )
        ids: Sequence[str | None] = message_ids or [None] * len(messages)
        outgoing = [_smtp_message(m, self._clock, i) for m, i in zip(messages, ids, strict=True)]
        errors = await self._deliver(key, outgoing)
        return [None if error is None else _failure(error) for error in errors]

    async def _deliver(self, key: Key, messages: list[SmtpMessage]) -> list[SmtpError | None]:
        client = self._take(key)
        if client is not None:
            try:
                errors = await client.send_many(messages)
            finally:
                self._release(key, client)
            # The server dropped the idle session before answering the first MAIL: nothing
            # of the batch can have been accepted, so it goes out once more on a new session.
            if not _dropped_at_once(errors):
                return errors
        host, port, user, password, starttls, plaintext_auth = key
        client = SmtpClient(timeout=self._timeout)
        try:
            await client.connect(host, port, starttls=starttls)
            if user is not None:
                await client.login(user, password or "", allow_plaintext=plaintext_auth)
        except SmtpError as exc:
            client.close()  # never kept unless logged in as the key says
            return [exc] * len(messages)
        except BaseException:
            client.close()
            raise
        try:
            return await client.send_many(messages)
        finally:
            self._release(key, client)

    def _take(self, key: Key) -> SmtpClient | None:
        kept = self._idle.pop(key, None)
        if kept is None:
            return None
        client, since = kept
        if time.monotonic() - since > self._keep_seconds or not client.is_connected:
            client.close()
            return None
        return client

    def _release(self, key: Key, client: SmtpClient) -> None:
        """Keeps a session that is still good (after a refusal too: it was RSET), or drops it."""
        if not client.is_connected:
            client.close()
            return
        previous = self._idle.pop(key, None)
        if previous is not None:
            previous[0].close()
        self._idle[key] = (client, time.monotonic())

    async def aclose(self) -> None:
        idle, self._idle = list(self._idle.values()), {}
        for client, _ in idle:
            await _close(client)


def _smtp_message(message: Message, clock: Clock, message_id: str | None) -> SmtpMessage:
    mail = build_email(message, clock, message_id=message_id)
    if isinstance(mail.content, bytes):
        return SmtpMessage(mail.sender, [message.recipient], mail.content)
    return SmtpMessage(mail.sender, [message.recipient], _flatten(mail.content), smtputf8=True)


def _dropped_at_once(errors: list[SmtpError | None]) -> bool:
    """Whether the session was lost before any reply to the batch: the first message that
    went out (those before it failed unsent) was lost before a reply."""
    for error in errors:
        if not isinstance(error, SmtpInvalidMessage | SmtpNotSupported):
            return isinstance(error, SmtpDisconnected) and error.before_reply
    return False


def _failure(error: SmtpError) -> DeliveryFailed:
    """An SMTP error as the outbox sees it; whether it is worth trying again is the
    error's own ``retryable`` (4xx replies and connection trouble, not 5xx replies)."""
    status = None
    if isinstance(error, SmtpReplyError):  # a refusal of recipients: the first one's code
        kind, status = DeliveryFailure.REJECTED, error.code
        text = (
            "recipient refused"
            if isinstance(error, SmtpRecipientsRefused)
            else f"SMTP {error.code}: {error.message}"
        )
    else:  # connection, timeout, protocol, a missing extension, an invalid address
        kind, text = DeliveryFailure.UNEXPECTED, f"{type(error).__name__}: {error}"
    failure = DeliveryFailed(kind, status=status, provider_message=text, retryable=error.retryable)
    failure.__cause__ = error
    return failure


def _flatten(message: EmailMessage) -> bytes:
    """An internationalised message as SMTPUTF8 bytes (UTF-8 headers, CRLF line ends)."""
    buffer = io.BytesIO()
    BytesGenerator(buffer, policy=email.policy.SMTPUTF8).flatten(message)
    return buffer.getvalue()


async def _close(client: SmtpClient) -> None:
    """QUIT politely, or just drop the connection."""
    try:
        await client.quit()
    except SmtpError:
        client.close()
