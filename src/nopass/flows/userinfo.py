"""``GET /userinfo`` (OIDC Core §5.3): the claims an access token's scopes allow."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import jwt

from nopass.core.clock import Clock
from nopass.core.errors import InvalidAccessToken
from nopass.core.models import Resolved
from nopass.core.ports import KeyStore, UnitOfWorkFactory
from nopass.tokens.claims import user_claims
from nopass.tokens.jwt import verify_access_token


@dataclass(frozen=True, slots=True)
class UserinfoDeps:
    uow: UnitOfWorkFactory
    keys: KeyStore
    clock: Clock


async def userinfo(token: str, tenant: Resolved, deps: UserinfoDeps) -> dict[str, Any]:
    tenant_id = tenant.config.tenant.id
    try:
        kid = jwt.get_unverified_header(token).get("kid")
    except jwt.PyJWTError as exc:
        raise InvalidAccessToken("malformed token") from exc
    claims = verify_access_token(
        token,
        await deps.keys.public_keys(tenant_id, kid=kid if isinstance(kid, str) else None),
        issuer=tenant.issuer,
        audience=tenant.issuer + "userinfo",
        now=deps.clock.now(),
    )
    subject = claims.get("sub")
    scope = claims.get("scope")
    if not isinstance(subject, str) or not isinstance(scope, str):
        raise InvalidAccessToken("claims of the wrong type")
    async with deps.uow() as uow:
        user = await uow.users.get(tenant_id, subject)
    if user is None:
        raise InvalidAccessToken("the user no longer exists")
    return user_claims(user, frozenset(scope.split()))
