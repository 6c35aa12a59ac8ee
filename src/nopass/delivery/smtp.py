"""Email over SMTP (RFC 5321) with aiosmtplib; STARTTLS per the provider's settings.

Failures are classified for the outbox: connection problems and 4xx replies are retryable,
5xx replies (the server refused the message for good) are not.
"""

from __future__ import annotations

import binascii
import contextlib
import email.message
import secrets
import time
from dataclasses import dataclass
from email.header import Header
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, formataddr, make_msgid, parseaddr

import aiosmtplib

from nopass.core.clock import Clock, SystemClock
from nopass.core.errors import DeliveryFailed, DeliveryFailure
from nopass.core.models import EmailProvider, Message

__all__ = ["Envelope", "SmtpTransport", "build_email"]

STARTTLS = {"auto": None, "always": True, "never": False}
SUBJECT_FOLD_AT = 900  # longer (or non-ASCII) subjects are folded as RFC 2047 words


@dataclass(frozen=True, slots=True)
class Envelope:
    sender: str  # the address for MAIL FROM
    content: email.message.Message | bytes  # bytes: ready for DATA (CRLF lines)


def build_email(message: Message, clock: Clock) -> Envelope:
    """The MIME message: text (and HTML) in UTF-8, quoted-printable, written straight to
    bytes (the ``email`` package's generator cost more CPU than the rest of a send). An
    internationalised address (SMTPUTF8) takes ``EmailMessage``'s path."""
    name, address = parseaddr(message.sender or "")
    if not address or "@" not in address:
        name, address = name or (message.sender or ""), "nopass@localhost"
    local, _, domain = address.rpartition("@")
    if not (address.isascii() and message.recipient.isascii()):
        return Envelope(address, _build_international(message, clock, name, local, domain))
    headers = [
        ("From", formataddr((_one_line(name), address), charset="utf-8")),
        ("To", _one_line(message.recipient)),
        ("Subject", _subject(_one_line(message.subject))),
        ("Date", format_datetime(clock.now())),
        ("Message-ID", make_msgid(domain=domain or None)),
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
    message: Message, clock: Clock, name: str, local: str, domain: str
) -> EmailMessage:
    mail = EmailMessage()
    mail["From"] = Address(display_name=name, username=local, domain=domain)
    mail["To"] = message.recipient
    mail["Subject"] = message.subject
    _common_headers(mail, clock, domain)
    mail.set_content(message.text)
    if message.html:
        mail.add_alternative(message.html, subtype="html")
    return mail


def _common_headers(mail: EmailMessage, clock: Clock, domain: str) -> None:
    mail["Date"] = format_datetime(clock.now())
    mail["Message-ID"] = make_msgid(domain=domain or None)
    mail["Auto-Submitted"] = "auto-generated"


Key = tuple[str, int, str | None, str | None, bool | None]


class SmtpTransport:
    """Sends over kept-alive SMTP sessions (one per server and account, reused for
    ``keep_seconds``), so a busy outbox does not pay a TCP connect, EHLO and QUIT per email."""

    def __init__(
        self, *, timeout: float = 10.0, clock: Clock | None = None, keep_seconds: float = 10.0
    ) -> None:
        self._timeout = timeout
        self._clock = clock or SystemClock()
        self._keep_seconds = keep_seconds
        self._idle: dict[Key, tuple[aiosmtplib.SMTP, float]] = {}

    async def send(self, provider: EmailProvider, message: Message) -> None:
        creds = provider.credentials
        mail = build_email(message, self._clock)
        recipients = [message.recipient]
        key: Key = (
            str(creds.get("smtp_host", "localhost")),
            int(creds.get("smtp_port", 587)),
            creds.get("smtp_user") or None,
            creds.get("smtp_pass") or None,
            STARTTLS[str(provider.settings.get("starttls", "auto"))],
        )
        try:
            kept = self._take(key)
            if kept is not None:
                try:
                    await _send(kept, mail, recipients)
                except aiosmtplib.SMTPServerDisconnected:
                    kept.close()  # the server dropped the idle session: a new one below
                except BaseException:
                    kept.close()
                    raise
                else:
                    self._keep(key, kept)
                    return
            client = aiosmtplib.SMTP(
                hostname=key[0],
                port=key[1],
                username=key[2],
                password=key[3],
                start_tls=key[4],
                timeout=self._timeout,
            )
            with contextlib.ExitStack() as stack:
                stack.callback(client.close)  # dropped on any failure, kept on success
                await client.connect()
                await _send(client, mail, recipients)
                stack.pop_all()
            self._keep(key, client)
        except aiosmtplib.SMTPResponseException as exc:
            raise DeliveryFailed(
                DeliveryFailure.REJECTED,
                status=exc.code,
                provider_message=f"SMTP {exc.code}: {exc.message}",
                retryable=400 <= exc.code < 500,
            ) from exc
        except aiosmtplib.SMTPRecipientsRefused as exc:
            codes = [e.code for e in exc.recipients]
            raise DeliveryFailed(
                DeliveryFailure.REJECTED,
                status=codes[0] if codes else None,
                provider_message="recipient refused",
                retryable=all(400 <= c < 500 for c in codes),
            ) from exc
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            raise DeliveryFailed(
                DeliveryFailure.UNEXPECTED,
                provider_message=f"{type(exc).__name__}: {exc}",
                retryable=True,
            ) from exc

    def _take(self, key: Key) -> aiosmtplib.SMTP | None:
        kept = self._idle.pop(key, None)
        if kept is None:
            return None
        client, since = kept
        if time.monotonic() - since > self._keep_seconds or not client.is_connected:
            client.close()
            return None
        return client

    def _keep(self, key: Key, client: aiosmtplib.SMTP) -> None:
        previous = self._idle.pop(key, None)
        if previous is not None:
            previous[0].close()
        self._idle[key] = (client, time.monotonic())

    async def aclose(self) -> None:
        idle, self._idle = list(self._idle.values()), {}
        for client, _ in idle:
            await _close(client)


async def _send(client: aiosmtplib.SMTP, mail: Envelope, recipients: list[str]) -> None:
    if isinstance(mail.content, bytes):
        await client.sendmail(mail.sender, recipients, mail.content)
    else:
        await client.send_message(mail.content, sender=mail.sender, recipients=recipients)


async def _close(client: aiosmtplib.SMTP) -> None:
    """QUIT politely, or just drop the connection."""
    try:
        await client.quit()
    except (aiosmtplib.SMTPException, OSError, TimeoutError):
        client.close()
