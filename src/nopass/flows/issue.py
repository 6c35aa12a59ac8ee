"""Minting tokens for a signed-in user: ID tokens (OIDC Core §2, §3.1.3.6 ``at_hash``) and
access tokens (RFC 9068), signed with the tenant's current key. Shared by every grant and by
the implicit authorization responses."""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from nopass.core.models import Client, TenantConfig, User
from nopass.core.otp import new_id
from nopass.core.ports import KeyStore
from nopass.tokens.claims import access_token_claims, id_token_claims
from nopass.tokens.jwt import ACCESS_TOKEN_TYPE, ID_TOKEN_TYPE, sign


@dataclass(frozen=True, slots=True)
class Grant:
    """What a token request was granted: scopes, audience, access-token lifetime, and
    whether a refresh token goes with it."""

    scopes: list[str]
    audience: str | None
    access_lifetime: int
    offline: bool = False


@dataclass(frozen=True, slots=True)
class TokenSet:
    access_token: str | None
    expires_in: int
    scope: str
    id_token: str | None = None
    refresh_token: str | None = None

    def as_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {}
        if self.access_token is not None:
            body["access_token"] = self.access_token
        if self.id_token is not None:
            body["id_token"] = self.id_token
        if self.refresh_token is not None:
            body["refresh_token"] = self.refresh_token
        body.update({"scope": self.scope, "expires_in": self.expires_in, "token_type": "Bearer"})
        return body


def at_hash(access_token: str) -> str:
    digest = hashlib.sha256(access_token.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest[: len(digest) // 2]).decode().rstrip("=")


async def issue_tokens(
    keys: KeyStore,
    config: TenantConfig,
    issuer: str,
    client: Client,
    user: User,
    grant: Grant,
    now: datetime,
    refresh_token: str | None,
    *,
    access: bool = True,
    nonce: str | None = None,
    auth_time: datetime | None = None,
    with_at_hash: bool = False,
) -> TokenSet:
    key = await keys.signing_key(config.tenant.id)
    issued_at = int(now.timestamp())
    scopes = frozenset(grant.scopes)
    scope = " ".join(grant.scopes)
    access_token = None
    if access:
        audiences = [grant.audience] if grant.audience else []
        if "openid" in scopes or not audiences:
            audiences.append(issuer + "userinfo")
        access_token = sign(
            access_token_claims(
                subject=user.user_id,
                issuer=issuer,
                audiences=audiences,
                client_id=client.client_id,
                scope=scope,
                issued_at=issued_at,
                lifetime=grant.access_lifetime,
                token_id=new_id(),
            ),
            key,
            typ=ACCESS_TOKEN_TYPE,
        )
    id_token = None
    if "openid" in scopes:
        extra: dict[str, Any] = {}
        if auth_time is not None:
            extra["auth_time"] = int(auth_time.timestamp())
        if with_at_hash and access_token is not None:
            extra["at_hash"] = at_hash(access_token)
        lifetime = client.jwt_configuration.lifetime_in_seconds
        id_token = sign(
            id_token_claims(
                user,
                issuer=issuer,
                client_id=client.client_id,
                scopes=scopes,
                issued_at=issued_at,
                lifetime=int(lifetime),
                nonce=nonce,
                extra=extra,
            ),
            key,
            typ=ID_TOKEN_TYPE,
        )
    return TokenSet(
        access_token=access_token,
        expires_in=grant.access_lifetime,
        scope=scope,
        id_token=id_token,
        refresh_token=refresh_token,
    )
