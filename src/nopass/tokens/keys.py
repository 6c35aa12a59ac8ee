"""RSA signing keys and their public JWKs (RFC 7517), with RFC 7638 thumbprints as ``kid``."""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from nopass.core.models import SigningKey

ALGORITHM = "RS256"
KEY_BITS = 2048


def _b64uint(value: int) -> str:
    raw = value.to_bytes((value.bit_length() + 7) // 8, "big")
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def public_jwk(key: rsa.RSAPublicKey) -> dict[str, str]:
    numbers = key.public_numbers()
    members = {"e": _b64uint(numbers.e), "kty": "RSA", "n": _b64uint(numbers.n)}
    thumbprint = hashlib.sha256(
        json.dumps(members, separators=(",", ":"), sort_keys=True).encode()
    ).digest()
    kid = base64.urlsafe_b64encode(thumbprint).decode().rstrip("=")
    return {**members, "kid": kid, "alg": ALGORITHM, "use": "sig"}


def generate_key() -> tuple[SigningKey, bytes]:
    """A new key and its private PEM (PKCS#8) to be sealed for storage."""
    private = rsa.generate_private_key(public_exponent=65537, key_size=KEY_BITS)
    jwk = public_jwk(private.public_key())
    pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return SigningKey(kid=jwk["kid"], private=private, jwk=jwk), pem


def load_key(pem: bytes, jwk: dict[str, Any]) -> SigningKey:
    private = serialization.load_pem_private_key(pem, password=None)
    if not isinstance(private, rsa.RSAPrivateKey):
        raise ValueError("signing keys are RSA")
    return SigningKey(kid=str(jwk["kid"]), private=private, jwk=jwk)
