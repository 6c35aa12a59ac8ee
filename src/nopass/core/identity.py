"""Normalising the identifiers users type: email addresses and E.164 phone numbers.

Addresses are parsed strictly (email-validator, no DNS) and lower-cased, so mail only ever goes
to the canonical stored address (NextAuth CVE-2022-35924, GitLab CVE-2023-7028).
"""

from __future__ import annotations

import functools
import re

from email_validator import EmailNotValidError, validate_email

PHONE_PATTERN = r"^\+[0-9]{1,15}$"
_PHONE = re.compile(PHONE_PATTERN)
MAX_EMAIL_LENGTH = 254


@functools.lru_cache(maxsize=4096)  # a login normalises its address twice (start, token)
def normalize_email(value: str) -> str | None:
    """The canonical address, or None when ``value`` is not one plain mailbox."""
    if len(value) > MAX_EMAIL_LENGTH or value != value.strip():
        return None
    try:
        parsed = validate_email(
            value,
            check_deliverability=False,
            allow_smtputf8=True,
            allow_quoted_local=False,
            allow_domain_literal=False,
            allow_display_name=False,
        )
    except EmailNotValidError:
        return None
    return parsed.normalized.lower()


def is_phone_number(value: str) -> bool:
    return _PHONE.fullmatch(value) is not None
