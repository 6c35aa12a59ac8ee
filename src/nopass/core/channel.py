"""The two passwordless channels and what differs between them, in one place.

An ``email`` connection and an ``sms`` connection run the same flows; only these differ: the
request field (and link parameter) that carries the identifier, how a typed identifier is
normalised and which pattern it must match, whether a link may be sent instead of a code, the
audit event of a sent message (Auth0's ``cls`` / ``cs``) and the ``user_id`` prefix.
"""

from __future__ import annotations

from enum import StrEnum

from nopass.core.identity import PHONE_PATTERN, is_phone_number, normalize_email


class Channel(StrEnum):
    """A passwordless connection's channel; its value is the connection's ``strategy``."""

    EMAIL = "email"
    SMS = "sms"

    @property
    def field(self) -> str:
        """The ``/passwordless/start`` body field and magic-link parameter of the identifier."""
        return "email" if self is Channel.EMAIL else "phone_number"

    @property
    def pattern(self) -> str | None:
        """The pattern a malformed identifier is told to match (Auth0 names none for email)."""
        return None if self is Channel.EMAIL else PHONE_PATTERN

    @property
    def links(self) -> bool:
        """May a magic link be sent (``send: link``)? Only by email: an SMS carries a code."""
        return self is Channel.EMAIL

    @property
    def sent_event(self) -> str:
        """Auth0's audit event for a message sent: ``cls`` (code/link sent) or ``cs``."""
        return "cls" if self is Channel.EMAIL else "cs"

    @property
    def user_id_prefix(self) -> str:
        """``email|...`` or ``sms|...`` (docs/specs/auth0-wire.md §6.5)."""
        return self.value

    def normalize(self, typed: str) -> str | None:
        """The canonical identity for a typed identifier, or None when it cannot be one: a
        lower-case, strictly parsed address, or an E.164 number as typed."""
        if self is Channel.EMAIL:
            return normalize_email(typed)
        return typed if is_phone_number(typed) else None
