"""Server-side secrets derived from ``NOPASS_SECRET_KEY`` (docs/specs/security.md §6 "Storage").

Each configured key yields independent sub-keys by HKDF-SHA256 (RFC 5869), one per purpose:
``code`` for the HMAC of one-time codes, ``seal`` for AES-256-GCM encryption of data at rest
(outbox payloads, signing keys), ``form`` for the CSRF tokens of the hosted login page. The
first key writes; every key is tried when reading, so a comma-separated ``NOPASS_SECRET_KEY``
rotates without invalidating what is stored.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
from collections.abc import Sequence
from dataclasses import dataclass

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF


def _derive(key: bytes, purpose: str) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=b"nopass", info=purpose.encode()).derive(
        key
    )


@dataclass(frozen=True, slots=True)
class _Key:
    id: str
    code: bytes
    seal: AESGCM
    form: bytes


class SealError(ValueError):
    """Sealed data could not be opened with any configured key."""


class Keyring:
    def __init__(self, keys: Sequence[bytes]) -> None:
        if not keys:
            raise ValueError("at least one secret key is needed")
        self._keys = [
            _Key(
                id=_derive(k, "id").hex()[:12],
                code=_derive(k, "code"),
                seal=AESGCM(_derive(k, "seal")),
                form=_derive(k, "form"),
            )
            for k in keys
        ]
        self._by_id = {k.id: k for k in self._keys}

    @property
    def current_id(self) -> str:
        return self._keys[0].id

    def code_mac(self, challenge_id: str, code: str) -> tuple[str, str]:
        """HMAC-SHA256 over (challenge id, code) with the current key: ``(key_id, hex)``."""
        key = self._keys[0]
        return key.id, _mac(key.code, challenge_id, code)

    def code_mac_with(self, key_id: str, challenge_id: str, code: str) -> str | None:
        """The MAC a guess must have to match a code stored under ``key_id`` (None when that
        key is no longer configured: nothing can match)."""
        key = self._by_id.get(key_id)
        return _mac(key.code, challenge_id, code) if key is not None else None

    def code_matches(self, challenge_id: str, code: str, key_id: str, stored: str) -> bool:
        """Constant-time check of a guess against a stored code MAC."""
        key = self._by_id.get(key_id)
        candidates = [key] if key is not None else self._keys
        return any(
            hmac.compare_digest(_mac(k.code, challenge_id, code), stored) for k in candidates
        )

    def form_token(self, transaction_id: str) -> str:
        """The CSRF token of a login transaction's forms: HMAC-SHA256 of its id."""
        return _form_mac(self._keys[0].form, transaction_id)

    def form_token_matches(self, transaction_id: str, token: str) -> bool:
        """Constant-time check of a submitted CSRF token, under every configured key."""
        given = token.encode("utf-8", "replace")
        return any(
            hmac.compare_digest(_form_mac(k.form, transaction_id).encode(), given)
            for k in self._keys
        )

    def seal(self, plaintext: bytes, *, context: str) -> str:
        """AES-256-GCM with a random nonce; ``context`` is bound as associated data."""
        key = self._keys[0]
        nonce = os.urandom(12)
        blob = nonce + key.seal.encrypt(nonce, plaintext, context.encode())
        return f"{key.id}.{base64.urlsafe_b64encode(blob).decode()}"

    def open(self, sealed: str, *, context: str) -> bytes:
        key_id, _, payload = sealed.partition(".")
        key = self._by_id.get(key_id)
        if key is None:
            raise SealError("sealed with a key that is no longer configured")
        blob = base64.urlsafe_b64decode(payload)
        try:
            return key.seal.decrypt(blob[:12], blob[12:], context.encode())
        except Exception as exc:  # cryptography raises InvalidTag
            raise SealError("sealed data is corrupt") from exc


def _mac(key: bytes, challenge_id: str, code: str) -> str:
    return hmac.new(key, f"{challenge_id}\x00{code}".encode(), hashlib.sha256).hexdigest()


def _form_mac(key: bytes, transaction_id: str) -> str:
    digest = hmac.new(key, f"login-form\x00{transaction_id}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def opaque_hash(value: str) -> str:
    """How high-entropy bearer values (refresh tokens, sessions, tickets, authorization codes,
    client secrets) are stored: SHA-256; with ≥ 128 random bits a plain hash suffices
    (ASVS 6.5.2)."""
    return hashlib.sha256(value.encode()).hexdigest()


def hash_client_secret(secret: str) -> str:
    return opaque_hash(secret)


def client_secret_matches(secret: str, stored_hash: str) -> bool:
    return hmac.compare_digest(hash_client_secret(secret), stored_hash)
