"""Email over SMTP (RFC 5321) with aiosmtplib; STARTTLS per the provider's settings.

Failures are classified for the outbox: connection problems and 4xx replies are retryable,
5xx replies (the server refused the message for good) are not.
"""

from __future__ import annotations

from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid, parseaddr

import aiosmtplib

from nopass.core.clock import Clock, SystemClock
from nopass.core.errors import DeliveryFailed, DeliveryFailure
from nopass.core.models import EmailProvider, Message

__all__ = ["SmtpTransport", "build_email"]

STARTTLS = {"auto": None, "always": True, "never": False}


def build_email(message: Message, clock: Clock) -> EmailMessage:
    mail = EmailMessage()
    name, address = parseaddr(message.sender or "")
    if not address or "@" not in address:
        name, address = name or (message.sender or ""), "nopass@localhost"
    local, _, domain = address.rpartition("@")
    mail["From"] = Address(display_name=name, username=local, domain=domain)
    mail["To"] = message.recipient
    mail["Subject"] = message.subject
    mail["Date"] = format_datetime(clock.now())
    mail["Message-ID"] = make_msgid(domain=domain or None)
    mail["Auto-Submitted"] = "auto-generated"
    mail.set_content(message.text)
    if message.html:
        mail.add_alternative(message.html, subtype="html")
    return mail


class SmtpTransport:
    def __init__(self, *, timeout: float = 10.0, clock: Clock | None = None) -> None:
        self._timeout = timeout
        self._clock = clock or SystemClock()

    async def send(self, provider: EmailProvider, message: Message) -> None:
        creds = provider.credentials
        mail = build_email(message, self._clock)
        try:
            await aiosmtplib.send(
                mail,
                recipients=[message.recipient],
                hostname=str(creds.get("smtp_host", "localhost")),
                port=int(creds.get("smtp_port", 587)),
                username=creds.get("smtp_user") or None,
                password=creds.get("smtp_pass") or None,
                start_tls=STARTTLS[str(provider.settings.get("starttls", "auto"))],
                timeout=self._timeout,
            )
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
