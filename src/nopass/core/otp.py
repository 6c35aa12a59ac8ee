"""One-time codes: drawn with ``secrets``, numeric, zero-padded (docs/specs/security.md §6)."""

from __future__ import annotations

import secrets

MIN_LENGTH, MAX_LENGTH = 6, 10
MIN_LIFETIME, MAX_LIFETIME = 60, 600
MAX_ATTEMPTS = 3  # failed guesses that kill a code (docs/specs/security.md §6)


def new_code(length: int) -> str:
    if not MIN_LENGTH <= length <= MAX_LENGTH:
        raise ValueError(f"code length must be {MIN_LENGTH}-{MAX_LENGTH}, not {length}")
    return str(secrets.randbelow(10**length)).zfill(length)


def new_id() -> str:
    """A 24 lower-case hex identifier, the shape of Auth0's ``_id`` (a Mongo ObjectId)."""
    return secrets.token_hex(12)
