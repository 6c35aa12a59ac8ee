"""Signing and verifying our JWTs (RFC 7519) the way RFC 8725 asks.

Signing: RS256 only, ``kid`` always, ``typ`` ``JWT`` for ID tokens and ``at+jwt`` for access
tokens (RFC 9068). Verifying: the algorithm is pinned (never taken from the header alone, never
``none`` or HS*), the key comes only from our own key set by ``kid`` (``jku``/``x5u``/``jwk``
headers are refused, not followed), and ``typ``, ``iss``, ``aud`` and ``exp`` are checked.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa

from nopass.core.errors import InvalidAccessToken, InvalidIdTokenHint
from nopass.core.models import SigningKey
from nopass.tokens.keys import ALGORITHM

ID_TOKEN_TYPE = "JWT"  # noqa: S105 (a media type, not a secret)
ACCESS_TOKEN_TYPE = "at+jwt"  # noqa: S105
FORBIDDEN_HEADERS = ("jku", "x5u", "jwk", "x5c", "crit")
LEEWAY_SECONDS = 0


def sign(claims: Mapping[str, Any], key: SigningKey, *, typ: str) -> str:
    return jwt.encode(
        dict(claims), key.private, algorithm=ALGORITHM, headers={"kid": key.kid, "typ": typ}
    )


def _key_for(
    token: str,
    public_keys: Mapping[str, rsa.RSAPublicKey],
    typ: str,
    kind: str,
    error: type[InvalidAccessToken] | type[InvalidIdTokenHint],
) -> rsa.RSAPublicKey:
    """The key of ours that ``token``'s header names, after the header checks of RFC 8725
    §3.1 and §3.11 (pinned algorithm, no key-location headers, explicit ``typ``)."""
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError as exc:
        raise error("malformed token") from exc
    if header.get("alg") != ALGORITHM:
        raise error(f"algorithm {header.get('alg')!r} refused")
    if any(name in header for name in FORBIDDEN_HEADERS):
        raise error("token carries key-location headers")
    if header.get("typ") != typ:
        raise error(f"not {kind}")
    kid = header.get("kid")
    key = public_keys.get(kid) if isinstance(kid, str) else None
    if key is None:
        raise error("unknown kid")
    return key


def verify_access_token(
    token: str,
    public_keys: Mapping[str, rsa.RSAPublicKey],
    *,
    issuer: str,
    audience: str,
    now: datetime,
) -> dict[str, Any]:
    """Claims of a valid access token of ours, or ``InvalidAccessToken``. Time comes from
    ``now`` (the injected clock), not from PyJWT's own reading of the system clock."""
    key = _key_for(token, public_keys, ACCESS_TOKEN_TYPE, "an access token", InvalidAccessToken)
    try:
        claims: dict[str, Any] = jwt.decode(
            token,
            key,
            algorithms=[ALGORITHM],
            issuer=issuer,
            audience=audience,
            options={
                "require": ["exp", "iat", "iss", "sub", "aud"],
                "verify_exp": False,
                "verify_iat": False,
                "verify_nbf": False,
            },
        )
    except jwt.PyJWTError as exc:
        raise InvalidAccessToken(type(exc).__name__) from exc
    exp = claims.get("exp")
    if not isinstance(exp, int | float) or exp + LEEWAY_SECONDS <= now.timestamp():
        raise InvalidAccessToken("expired")
    nbf = claims.get("nbf")
    if isinstance(nbf, int | float) and nbf - LEEWAY_SECONDS > now.timestamp():
        raise InvalidAccessToken("not yet valid")
    return claims


def unverified_kid(token: str) -> str | None:
    """The ``kid`` a token's header claims, to pick (or refresh) the keys it is checked with."""
    try:
        kid = jwt.get_unverified_header(token).get("kid")
    except jwt.PyJWTError:
        return None
    return kid if isinstance(kid, str) else None


def verify_id_token_hint(
    token: str, public_keys: Mapping[str, rsa.RSAPublicKey], *, issuer: str
) -> dict[str, Any]:
    """Claims of an ID token this issuer signed, or ``InvalidIdTokenHint``. Expiry is not
    checked: RP-Initiated Logout 1.0 §2 lets an expired ID token serve as a hint. The
    audience is left to the caller, which reads the client from it."""
    key = _key_for(token, public_keys, ID_TOKEN_TYPE, "an ID token", InvalidIdTokenHint)
    try:
        claims: dict[str, Any] = jwt.decode(
            token,
            key,
            algorithms=[ALGORITHM],
            issuer=issuer,
            options={
                "require": ["iss", "sub", "aud"],
                "verify_aud": False,
                "verify_exp": False,
                "verify_iat": False,
                "verify_nbf": False,
            },
        )
    except jwt.PyJWTError as exc:
        raise InvalidIdTokenHint(type(exc).__name__) from exc
    return claims
