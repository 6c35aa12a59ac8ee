"""``POST /oauth/token``: the passwordless OTP grant, the refresh-token and authorization-code
grants, and the client-credentials grant (``flows/client_credentials.py``).

docs/specs/auth0-wire.md §3 with the house decisions of §12.6-12.8; refresh rotation with reuse
detection per RFC 9700 §4.14. Order of checks: grant_type → client_id → grant parameters → client
exists → client authentication → grant allowed for the client → realm → scope/audience → the code.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import NoReturn

from nopass.core.clock import Clock
from nopass.core.errors import (
    AuthorizationCodeRejected,
    CodeGrantFailure,
    GrantNotAllowed,
    InvalidRefreshToken,
    InvalidScope,
    UnknownAudience,
    UnknownClient,
    UserBlocked,
)
from nopass.core.keyring import Keyring, opaque_hash
from nopass.core.models import (
    PASSWORDLESS_OTP_GRANT,
    AuditEvent,
    AuthorizationCode,
    Client,
    RefreshGrant,
    TenantConfig,
    User,
)
from nopass.core.options import DEFAULT_ACCESS_TOKEN_LIFETIME
from nopass.core.otp import new_id
from nopass.core.ports import KeyStore, RequestInfo, UnitOfWork, UnitOfWorkFactory
from nopass.flows.audit import login_event
from nopass.flows.client_auth import ClientCredentials, authenticate_client
from nopass.flows.client_credentials import (
    CLIENT_CREDENTIALS_GRANT as CLIENT_CREDENTIALS_GRANT,
    client_credentials,
)
from nopass.flows.code_check import (
    OTP_GRANT_FAILURES,
    CodeAttempt,
    CodeCheck,
    realm_connection,
)
from nopass.flows.issue import Grant, TokenSet, issue_tokens
from nopass.flows.limits import Limits, limit_ip

REFRESH_GRANT = "refresh_token"
CODE_GRANT = "authorization_code"
SUPPORTED_GRANTS = (PASSWORDLESS_OTP_GRANT, REFRESH_GRANT, CODE_GRANT, CLIENT_CREDENTIALS_GRANT)
DEFAULT_SCOPE = "openid"
REFRESH_TOKEN_PREFIX = "v1."  # noqa: S105 (a format prefix)


@dataclass(frozen=True, slots=True)
class OtpGrant:
    """``grant_type=http://auth0.com/oauth/grant-type/passwordless/otp`` (auth0-wire §3)."""

    username: str
    otp: str
    realm: str
    scope: tuple[str, ...] | None  # None: not sent
    audience: str | None


@dataclass(frozen=True, slots=True)
class RefreshTokenGrant:
    """``grant_type=refresh_token`` (RFC 6749 §6)."""

    refresh_token: str
    scope: tuple[str, ...] | None  # None: not sent (the original grant's)


@dataclass(frozen=True, slots=True)
class AuthorizationCodeGrant:
    """``grant_type=authorization_code`` (RFC 6749 §4.1.3, RFC 7636 §4.5)."""

    code: str
    redirect_uri: str | None
    code_verifier: str | None


@dataclass(frozen=True, slots=True)
class ClientCredentialsGrant:
    """``grant_type=client_credentials`` (RFC 6749 §4.4, docs/specs/management-api.md §2.1)."""

    audience: str | None  # ``audience`` or ``resource``; None: the tenant's default_audience
    scope: tuple[str, ...] | None  # None: not sent (everything the client grant holds)


@dataclass(frozen=True, slots=True)
class TokenCommand:
    """A parsed ``/oauth/token`` request (``api/commands.py`` builds it)."""

    client_id: str
    credentials: ClientCredentials
    grant: OtpGrant | RefreshTokenGrant | AuthorizationCodeGrant | ClientCredentialsGrant
    issuer: str
    request: RequestInfo


@dataclass(frozen=True, slots=True)
class TokenDeps:
    uow: UnitOfWorkFactory
    keyring: Keyring
    keys: KeyStore
    clock: Clock
    limits: Limits

    @property
    def codes(self) -> CodeCheck:
        return CodeCheck(self.keyring, self.limits, self.clock)


def _client(cmd: TokenCommand, config: TenantConfig) -> Client:
    client = config.clients.get(cmd.client_id)
    if client is None:
        raise UnknownClient(cmd.client_id)
    return client


async def _admit(
    uow: UnitOfWork,
    cmd: TokenCommand,
    client: Client,
    grant_type: str,
    now: datetime,
) -> None:
    """The client proves itself, then must hold the grant."""
    await authenticate_client(
        client, cmd.credentials, issuer=cmd.issuer, assertions=uow.assertions, now=now
    )
    _allow(client, grant_type)


def _allow(client: Client, grant_type: str) -> None:
    spa_otp = grant_type == PASSWORDLESS_OTP_GRANT and client.app_type == "spa"
    if grant_type not in client.grant_types or spa_otp:
        raise GrantNotAllowed(grant_type)


async def exchange(cmd: TokenCommand, config: TenantConfig, deps: TokenDeps) -> TokenSet:
    match cmd.grant:
        case OtpGrant():
            return await _otp_grant(cmd, cmd.grant, config, deps)
        case AuthorizationCodeGrant():
            return await _code_grant(cmd, cmd.grant, config, deps)
        case RefreshTokenGrant():
            return await _refresh_grant(cmd, cmd.grant, config, deps)
        case ClientCredentialsGrant():
            return await client_credentials(cmd, cmd.grant, config, deps)


def pkce_matches(verifier: str, challenge: str) -> bool:
    """RFC 7636 §4.6, S256 only (plain is refused at /authorize)."""
    digest = hashlib.sha256(verifier.encode("ascii", "replace")).digest()
    computed = base64.urlsafe_b64encode(digest).decode().rstrip("=")
    return hmac.compare_digest(computed, challenge)


async def _code_grant(
    cmd: TokenCommand, exchanged: AuthorizationCodeGrant, config: TenantConfig, deps: TokenDeps
) -> TokenSet:
    """RFC 6749 §4.1.3 with RFC 7636: the code works once, within 60 s, for its client and
    redirect_uri; a replay revokes what the first redemption issued (RFC 6749 §4.1.2)."""
    client = _client(cmd, config)
    code, redirect_uri, verifier = exchanged.code, exchanged.redirect_uri, exchanged.code_verifier
    async with deps.uow() as uow:
        now = deps.clock.now()
        await _admit(uow, cmd, client, CODE_GRANT, now)
        audit = login_event(config.tenant.id, cmd.request, client, None, None)
        try:
            stored, user = await _redeem_code(uow, config, client, code, now)
            if redirect_uri != stored.redirect_uri:
                raise AuthorizationCodeRejected(CodeGrantFailure.REDIRECT_MISMATCH)
            if stored.code_challenge is None:
                if verifier is not None:  # PKCE downgrade (RFC 9700 §4.8)
                    raise AuthorizationCodeRejected(CodeGrantFailure.PKCE)
            elif verifier is None or not pkce_matches(verifier, stored.code_challenge):
                raise AuthorizationCodeRejected(CodeGrantFailure.PKCE)
        except (AuthorizationCodeRejected, UserBlocked) as exc:
            await uow.audit.add(audit.but("feacft", str(exc)), now)
            await uow.commit()
            raise
        scopes = stored.scope.split()
        grant = Grant(
            scopes=scopes,
            audience=stored.audience,
            access_lifetime=_access_lifetime(config, stored.audience),
            offline="offline_access" in scopes,
        )
        refresh, family = await _new_refresh_token(uow, config, client, user, grant, now, None)
        if family is not None:
            await uow.authorization_codes.remember_refresh_family(
                config.tenant.id, stored.id, family
            )
        await uow.audit.add(
            audit.but("seacft", "Authorization code exchanged", user_id=user.user_id), now
        )
        await uow.commit()
    return await issue_tokens(
        deps.keys,
        config,
        cmd.issuer,
        client,
        user,
        grant,
        now,
        refresh,
        nonce=stored.nonce,
        auth_time=stored.auth_time,
    )


async def _redeem_code(
    uow: UnitOfWork, config: TenantConfig, client: Client, code: str, now: datetime
) -> tuple[AuthorizationCode, User]:
    tenant_id = config.tenant.id
    stored, first = await uow.authorization_codes.redeem(tenant_id, opaque_hash(code), now)
    if stored is None or stored.client_id != client.client_id:
        raise AuthorizationCodeRejected(CodeGrantFailure.INVALID)
    if not first:
        if stored.refresh_family_id is not None:
            await uow.refresh_tokens.revoke_family(tenant_id, stored.refresh_family_id, now)
        raise AuthorizationCodeRejected(CodeGrantFailure.INVALID)
    if stored.expires_at <= now:
        raise AuthorizationCodeRejected(CodeGrantFailure.INVALID)
    user = await uow.users.get(tenant_id, stored.user_id)
    if user is None:
        raise AuthorizationCodeRejected(CodeGrantFailure.INVALID)
    if user.blocked:  # blocked since the code was issued: the code is spent all the same
        raise UserBlocked(user.user_id)
    return stored, user


def _grant_scope(
    config: TenantConfig, client: Client, requested: tuple[str, ...] | None, audience: str | None
) -> Grant:
    scopes = list(dict.fromkeys(requested or DEFAULT_SCOPE.split()))
    audience = audience or config.tenant.default_audience
    lifetime = DEFAULT_ACCESS_TOKEN_LIFETIME
    may_refresh = REFRESH_GRANT in client.grant_types
    if audience is not None:
        api = config.resource_servers.get(audience)
        if api is None:
            raise UnknownAudience(audience)
        lifetime = api.token_lifetime
        may_refresh = may_refresh and api.allow_offline_access
    offline = "offline_access" in scopes and may_refresh
    if "offline_access" in scopes and not offline:
        scopes.remove("offline_access")
    return Grant(scopes=scopes, audience=audience, access_lifetime=lifetime, offline=offline)


async def _otp_grant(
    cmd: TokenCommand, otp: OtpGrant, config: TenantConfig, deps: TokenDeps
) -> TokenSet:
    client = _client(cmd, config)
    username = otp.username
    async with deps.uow() as uow:
        await _admit(uow, cmd, client, PASSWORDLESS_OTP_GRANT, deps.clock.now())
        connection = realm_connection(config, client, otp.realm)
        grant = _grant_scope(config, client, otp.scope, otp.audience)
        attempt = CodeAttempt(
            connection=connection,
            username=username,
            code=otp.otp,
            limit_ip=limit_ip(cmd.request, client, authenticated=True),
            user_ip=cmd.request.ip,
            audit=login_event(config.tenant.id, cmd.request, client, connection, username),
            failures=OTP_GRANT_FAILURES,
        )
        login = await deps.codes.sign_in(uow, config.tenant, attempt)
        now, audit = login.at, attempt.audit
        refresh, _ = await _new_refresh_token(uow, config, client, login.user, grant, now, None)
        user_audit = audit.but("s", "Successful login", user_id=login.user.user_id)
        if login.created:
            await uow.audit.add(
                audit.but("ss", "Successful signup", user_id=login.user.user_id), now
            )
        await uow.audit.add(user_audit, now)
        await uow.commit()
    return await issue_tokens(
        deps.keys, config, cmd.issuer, client, login.user, grant, now, refresh
    )


async def _new_refresh_token(
    uow: UnitOfWork,
    config: TenantConfig,
    client: Client,
    user: User,
    grant: Grant,
    now: datetime,
    parent: RefreshGrant | None,
) -> tuple[str | None, str | None]:
    """A new refresh token and its family id, or ``(None, None)`` without offline access."""
    if not grant.offline:
        return None, None
    policy = client.refresh_token
    if parent is not None:
        family, expires_at = parent.family_id, parent.expires_at
    else:
        family = new_id()
        expires_at = None
        if policy.expiring:
            expires_at = now + timedelta(seconds=policy.token_lifetime)
    token = REFRESH_TOKEN_PREFIX + secrets.token_urlsafe(48)
    record = RefreshGrant(
        id=new_id(),
        family_id=family,
        client_id=client.client_id,
        user_id=user.user_id,
        scope=" ".join(grant.scopes),
        audience=grant.audience,
        created_at=now,
        expires_at=expires_at,
        rotated_at=None,
        revoked_at=None,
    )
    await uow.refresh_tokens.add(config.tenant.id, record, opaque_hash(token))
    return token, family


async def _refresh_grant(
    cmd: TokenCommand, refresh: RefreshTokenGrant, config: TenantConfig, deps: TokenDeps
) -> TokenSet:
    client = _client(cmd, config)
    token, requested = refresh.refresh_token, refresh.scope
    async with deps.uow() as uow:
        now = deps.clock.now()
        await _admit(uow, cmd, client, REFRESH_GRANT, now)
        audit = login_event(config.tenant.id, cmd.request, client, None, None)
        try:
            stored, user = await _redeem(uow, config, client, token, requested, now, audit)
        except (InvalidRefreshToken, InvalidScope, UserBlocked) as exc:
            await uow.audit.add(audit.but("fertft", str(exc)), now)
            await uow.commit()
            raise
        scopes = list(requested or stored.scope.split())
        grant = Grant(
            scopes=scopes,
            audience=stored.audience,
            access_lifetime=_access_lifetime(config, stored.audience),
            offline=_rotating(client),
        )
        # The rotated token keeps the scope of the one presented (RFC 6749 §6), however
        # narrow this access token is.
        kept = replace(grant, scopes=stored.scope.split())
        new_token, _ = await _new_refresh_token(uow, config, client, user, kept, now, stored)
        await uow.audit.add(audit.but("sertft", "Successful exchange", user_id=user.user_id), now)
        await uow.commit()
    return await issue_tokens(deps.keys, config, cmd.issuer, client, user, grant, now, new_token)


def _rotating(client: Client) -> bool:
    return client.refresh_token.rotating


def _access_lifetime(config: TenantConfig, audience: str | None) -> int:
    api = config.resource_servers.get(audience) if audience else None
    return api.token_lifetime if api is not None else DEFAULT_ACCESS_TOKEN_LIFETIME


async def _redeem(
    uow: UnitOfWork,
    config: TenantConfig,
    client: Client,
    token: str,
    requested: tuple[str, ...] | None,
    now: datetime,
    audit: AuditEvent,
) -> tuple[RefreshGrant, User]:
    """The grant and user of a usable refresh token, marking it rotated when the client
    rotates. Every refusal but reuse is decided before anything is written: a refused
    request (a wider ``scope``, say) leaves the token as it was. A rotated token used again
    outside the leeway revokes its whole family (RFC 9700 §4.14.2), audited ``ferrt``."""
    tenant_id = config.tenant.id
    stored = await uow.refresh_tokens.find(tenant_id, opaque_hash(token))
    if stored is None or stored.client_id != client.client_id:
        raise InvalidRefreshToken("unknown refresh token")
    if stored.revoked_at is not None:
        raise InvalidRefreshToken("revoked refresh token")
    if stored.expires_at is not None and stored.expires_at <= now:
        raise InvalidRefreshToken("expired refresh token")
    leeway = timedelta(seconds=client.refresh_token.leeway)
    in_leeway = bool(leeway) and stored.rotated_at is not None and now - stored.rotated_at <= leeway
    if stored.rotated_at is not None and not in_leeway:
        await _reused(uow, tenant_id, stored, now, audit)
    if requested is not None and not set(requested) <= set(stored.scope.split()):
        raise InvalidScope("The requested scope exceeds the original grant")
    user = await uow.users.get(tenant_id, stored.user_id)
    if user is None:
        raise InvalidRefreshToken("the user no longer exists")
    if user.blocked:  # refused, the token left as it was: it works again once unblocked
        raise UserBlocked(user.user_id)
    if _rotating(client) or stored.rotated_at is not None:
        rotated_now = await uow.refresh_tokens.mark_rotated(tenant_id, stored.id, now)
        if not rotated_now and not in_leeway:  # another request rotated it meanwhile
            await _reused(uow, tenant_id, stored, now, audit)
    return stored, user


async def _reused(
    uow: UnitOfWork, tenant_id: str, stored: RefreshGrant, now: datetime, audit: AuditEvent
) -> NoReturn:
    await uow.refresh_tokens.revoke_family(tenant_id, stored.family_id, now)
    await uow.audit.add(
        audit.but("ferrt", "Reused rotated refresh token: family revoked", user_id=stored.user_id),
        now,
    )
    raise InvalidRefreshToken("reused rotated refresh token")
