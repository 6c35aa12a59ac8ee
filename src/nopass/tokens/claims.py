"""Claims of ID tokens (OIDC Core §2, §5.4 scope mapping) and access tokens (RFC 9068), in
the shapes Auth0 issues (docs/specs/auth0-wire.md §6.5-6.6, §12.8)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from nopass.core.models import User

# given_name and family_name exist once the Management API set them (User.profile holds all)
PROFILE_CLAIMS = ("name", "nickname", "picture", "given_name", "family_name", "updated_at")
SCOPE_CLAIMS: dict[str, tuple[str, ...]] = {
    "profile": PROFILE_CLAIMS,
    "email": ("email", "email_verified"),
    "phone": ("phone_number", "phone_verified"),
}


def iso(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def user_claims(user: User, scopes: frozenset[str]) -> dict[str, Any]:
    """``sub`` plus the profile claims the scopes allow (also the /userinfo body)."""
    available: dict[str, Any] = {
        **user.profile,
        "updated_at": iso(user.updated_at),
    }
    claims: dict[str, Any] = {"sub": user.user_id}
    for scope, names in SCOPE_CLAIMS.items():
        if scope in scopes:
            claims.update({n: available[n] for n in names if n in available})
    return claims


def id_token_claims(
    user: User,
    *,
    issuer: str,
    client_id: str,
    scopes: frozenset[str],
    issued_at: int,
    lifetime: int,
    nonce: str | None = None,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    claims = user_claims(user, scopes)
    claims.update({"iss": issuer, "aud": client_id, "iat": issued_at, "exp": issued_at + lifetime})
    if nonce is not None:
        claims["nonce"] = nonce
    if extra:
        claims.update(extra)
    return claims


def access_token_claims(
    *,
    subject: str,
    issuer: str,
    audiences: list[str],
    client_id: str,
    scope: str,
    issued_at: int,
    lifetime: int,
    token_id: str,
) -> dict[str, Any]:
    return {
        "iss": issuer,
        "sub": subject,
        "aud": audiences[0] if len(audiences) == 1 else audiences,
        "iat": issued_at,
        "exp": issued_at + lifetime,
        "scope": scope,
        "azp": client_id,
        "client_id": client_id,
        "jti": token_id,
    }


CLIENT_SUBJECT_SUFFIX = "@clients"
CLIENT_CREDENTIALS_GTY = "client-credentials"


def client_credentials_claims(
    *,
    issuer: str,
    audience: str,
    client_id: str,
    scope: str,
    issued_at: int,
    lifetime: int,
    token_id: str,
) -> dict[str, Any]:
    """A machine-to-machine access token (docs/specs/management-api.md §2.2): the client is
    its own subject, ``<client_id>@clients``; ``aud`` is one string; ``gty`` tells the grant.
    ``client_id`` and ``jti`` are RFC 9068 §2.2's, as in every ``at+jwt`` nopass signs."""
    return {
        "iss": issuer,
        "sub": client_id + CLIENT_SUBJECT_SUFFIX,
        "aud": audience,
        "iat": issued_at,
        "exp": issued_at + lifetime,
        "scope": scope,
        "gty": CLIENT_CREDENTIALS_GTY,
        "azp": client_id,
        "client_id": client_id,
        "jti": token_id,
    }
