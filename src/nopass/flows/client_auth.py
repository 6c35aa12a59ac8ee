"""Client authentication for confidential clients, shared by every endpoint that needs it.

Methods: ``client_secret_post`` and ``client_secret_basic`` (RFC 6749 §2.3.1; either carrier is
accepted for a secret client, since auth0-python always posts the secret in the body) and
``private_key_jwt`` (RFC 7523 §3, OIDC Core §9): a JWT signed by a key registered for the
client, ``iss`` = ``sub`` = client_id, ``aud`` = the issuer (``https://{domain}/``, what Auth0
SDKs send) or the token endpoint, short-lived, each ``jti`` accepted once.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import jwt
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from nopass.core.errors import ClientAuthenticationFailed
from nopass.core.keyring import client_secret_matches
from nopass.core.models import AuthMethod, Client
from nopass.core.ports import AssertionRepo

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
ASSERTION_ALGORITHMS = ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384"]
MAX_ASSERTION_LIFETIME = timedelta(minutes=10)
LEEWAY_SECONDS = 30


@dataclass(frozen=True, slots=True)
class ClientCredentials:
    secret: str | None = None
    basic: tuple[str, str] | None = None  # (client_id, secret) from an Authorization header
    assertion: str | None = None
    assertion_type: str | None = None


async def authenticate_client(
    client: Client,
    creds: ClientCredentials,
    *,
    issuer: str,
    assertions: AssertionRepo,
    now: datetime,
) -> None:
    """Return quietly when the client proved itself (or needs not); raise otherwise."""
    if client.auth_method is AuthMethod.NONE:
        return
    if client.auth_method is AuthMethod.PRIVATE_KEY_JWT:
        await _check_assertion(client, creds, issuer=issuer, assertions=assertions, now=now)
        return
    secret = creds.secret
    if creds.basic is not None:
        basic_id, basic_secret = creds.basic
        if basic_id != client.client_id:
            raise ClientAuthenticationFailed("basic credentials name another client")
        if secret is not None and secret != basic_secret:
            raise ClientAuthenticationFailed("two different secrets")
        secret = basic_secret
    if secret is None:
        raise ClientAuthenticationFailed("no client secret")
    if client.secret_hash is None or not client_secret_matches(secret, client.secret_hash):
        raise ClientAuthenticationFailed("wrong client secret")


async def _check_assertion(
    client: Client,
    creds: ClientCredentials,
    *,
    issuer: str,
    assertions: AssertionRepo,
    now: datetime,
) -> None:
    if creds.assertion is None:
        raise ClientAuthenticationFailed("no client assertion")
    if creds.assertion_type != ASSERTION_TYPE:
        raise ClientAuthenticationFailed("wrong client_assertion_type")
    claims = _verified_claims(client, creds.assertion, issuer=issuer, now=now)
    if claims.get("sub") != client.client_id:
        raise ClientAuthenticationFailed("assertion sub is not the client")
    jti = claims.get("jti")
    if not isinstance(jti, str) or not jti or len(jti) > 255:
        raise ClientAuthenticationFailed("assertion without a usable jti")
    exp = claims["exp"]
    if not isinstance(exp, int | float):
        raise ClientAuthenticationFailed("assertion exp is not a number")
    expires_at = datetime.fromtimestamp(exp, UTC)
    if expires_at - now > MAX_ASSERTION_LIFETIME:
        raise ClientAuthenticationFailed("assertion lives too long")
    if not await assertions.claim_jti(client.tenant_id, client.client_id, jti, expires_at, now):
        raise ClientAuthenticationFailed("assertion jti replayed")


def _verified_claims(
    client: Client, token: str, *, issuer: str, now: datetime
) -> dict[str, object]:
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError as exc:
        raise ClientAuthenticationFailed("malformed assertion") from exc
    alg = header.get("alg")
    if alg not in ASSERTION_ALGORITHMS:
        raise ClientAuthenticationFailed(f"assertion algorithm {alg!r} not allowed")
    audiences = [issuer, issuer + "oauth/token"]
    for pem in client.public_keys:
        try:
            key = load_pem_public_key(pem.encode())
            claims: dict[str, object] = jwt.decode(
                token,
                key,  # type: ignore[arg-type]
                algorithms=[alg],
                audience=audiences,
                issuer=client.client_id,
                leeway=LEEWAY_SECONDS,
                options={
                    "require": ["exp", "iat", "iss", "sub", "aud", "jti"],
                    "verify_iat": False,
                },
            )
        except (jwt.PyJWTError, ValueError, TypeError):
            continue
        iat = claims.get("iat")
        if isinstance(iat, int | float) and iat > now.timestamp() + LEEWAY_SECONDS:
            raise ClientAuthenticationFailed("assertion issued in the future")
        exp = claims.get("exp")
        if isinstance(exp, int | float) and exp < now.timestamp() - LEEWAY_SECONDS:
            raise ClientAuthenticationFailed("assertion expired")
        return claims
    raise ClientAuthenticationFailed("assertion not signed by a registered key")
