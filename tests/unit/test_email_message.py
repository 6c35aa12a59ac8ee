"""The email nopass writes for SMTP (``delivery.smtp.build_email``), read back with the
standard library's parser: parts, headers, encodings, and no header injection."""

from __future__ import annotations

import email
import email.policy
from email.message import EmailMessage

import pytest

from nopass.core.clock import SystemClock
from nopass.core.models import Channel, Message
from nopass.delivery.smtp import Envelope, build_email


def parse(message: Message) -> tuple[str, EmailMessage, bytes]:
    envelope = build_email(message, SystemClock())
    assert isinstance(envelope.content, bytes)
    parsed = email.message_from_bytes(envelope.content, policy=email.policy.default)
    assert isinstance(parsed, EmailMessage)
    assert parsed.defects == []
    return envelope.sender, parsed, envelope.content


def mail(**changes: object) -> Message:
    fields: dict[str, object] = {
        "channel": Channel.EMAIL,
        "recipient": "bob@example.com",
        "subject": "Your code",
        "text": "Your code is 123456.\n",
        "html": "<p>Your code is <b>123456</b>.</p>",
        "sender": "Acme <no-reply@acme.test>",
    }
    return Message(**{**fields, **changes})  # type: ignore[arg-type]


def body(parsed: EmailMessage, kind: str) -> str:
    part = parsed.get_body(preferencelist=(kind,))
    assert part is not None
    assert part["Content-Transfer-Encoding"] == "quoted-printable"
    assert part.get_content_charset() == "utf-8"
    return str(part.get_content()).replace("\r\n", "\n")


def test_text_and_html_alternatives_with_the_headers() -> None:
    sender, parsed, raw = parse(mail())
    assert sender == "no-reply@acme.test"
    assert parsed.get_content_type() == "multipart/alternative"
    assert (parsed["From"], parsed["To"], parsed["Subject"]) == (
        "Acme <no-reply@acme.test>",
        "bob@example.com",
        "Your code",
    )
    assert parsed["Auto-Submitted"] == "auto-generated"
    assert parsed["Message-ID"].endswith("@acme.test>") and parsed["Date"]
    assert body(parsed, "plain") == "Your code is 123456.\n"
    assert body(parsed, "html") == "<p>Your code is <b>123456</b>.</p>"
    assert b"\n" not in raw.replace(b"\r\n", b""), "CRLF line ends only"
    assert max(len(line) for line in raw.split(b"\r\n")) <= 998


def test_text_only_is_a_single_part() -> None:
    _, parsed, _ = parse(mail(html=None))
    assert parsed.get_content_type() == "text/plain"
    assert body(parsed, "plain") == "Your code is 123456.\n"


def test_non_ascii_text_subject_and_name_are_encoded() -> None:
    subject = "Ihr Anmeldecode für Ünïcode GmbH " * 4
    _, parsed, raw = parse(mail(subject=subject, sender="Zoë <a@acme.test>", text="Grüße\r\n…"))
    assert raw.isascii()
    assert parsed["Subject"] == subject
    assert parsed["From"] == "Zoë <a@acme.test>"
    assert body(parsed, "plain") == "Grüße\n…"


@pytest.mark.parametrize("field", ["subject", "sender"])
def test_line_breaks_cannot_add_headers(field: str) -> None:
    value = {
        "subject": "Hi\r\nBcc: eve@example.com",
        "sender": "A\nBcc: eve@example.com <a@x.test>",
    }
    _, parsed, _ = parse(mail(**{field: value[field]}))
    assert parsed["Bcc"] is None


def test_long_lines_are_soft_wrapped_and_dots_kept() -> None:
    text = ".starts with a dot\n" + "word " * 100 + "\nend = sign"
    _, parsed, raw = parse(mail(text=text, html=None))
    assert body(parsed, "plain") == text
    assert max(len(line) for line in raw.split(b"\r\n")) <= 78


def test_an_international_address_takes_the_smtputf8_path() -> None:
    envelope = build_email(mail(recipient="zoë@example.com"), SystemClock())
    assert isinstance(envelope.content, EmailMessage)
    assert envelope.content["To"] == "zoë@example.com"
    assert envelope.sender == "no-reply@acme.test"


@pytest.mark.parametrize("recipient", ["bob@example.com", "zoë@example.com"])
def test_the_message_id_comes_from_the_outbox_id_the_same_on_every_attempt(
    recipient: str,
) -> None:
    """Two attempts of one outbox message (other clocks, other processes) carry one
    Message-ID, so a resend is recognisable; without an id each build gets its own."""
    ids = {
        str(_headers(build_email(mail(recipient=recipient), SystemClock(), message_id=i)))
        for i in ("0123456789abcdef01234567", "0123456789abcdef01234567")
    }
    assert ids == {"<0123456789abcdef01234567@acme.test>"}
    random = {str(_headers(build_email(mail(recipient=recipient), SystemClock()))) for _ in "ab"}
    assert len(random) == 2


def _headers(envelope: Envelope) -> object:
    content = envelope.content
    if isinstance(content, bytes):
        content = email.message_from_bytes(content, policy=email.policy.default)
    return content["Message-ID"]
