"""``grant_type=client_credentials`` (RFC 6749 §4.4): machine-to-machine access tokens for the
Management API and the tenant's own APIs (docs/specs/management-api.md §2.1-2.2).

Order of checks: the client exists → it is confidential → it authenticates → it holds the
``client_credentials`` grant type → the audience (sent, or the tenant's default) is an API →
the client has a client grant for it → the scope. Every refusal after the client proved itself
is audited ``feccft``; a success ``seccft``. Nothing else is written: no user, no refresh token.

Scope: the grant's scopes (those the API still defines), or, when ``scope`` is sent, the
intersection with them; requested scopes that are not granted are dropped, and a request none
of whose scopes is granted is refused ``invalid_scope`` rather than answered with an empty
token.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from nopass.core.errors import (
    AudienceRequired,
    ClientAuthenticationFailed,
    GrantNotAllowed,
    InvalidScope,
    NoClientGrant,
    UnknownAudience,
)
from nopass.core.management import (
    MANAGEMENT_API_NAME,
    MANAGEMENT_SCOPES,
    MANAGEMENT_TOKEN_LIFETIME,
    management_audience,
)
from nopass.core.models import AuditEvent, Client, ResourceServer, TenantConfig
from nopass.core.otp import new_id
from nopass.flows.audit import login_event
from nopass.flows.client_auth import authenticate_client
from nopass.flows.issue import TokenSet
from nopass.tokens.claims import client_credentials_claims
from nopass.tokens.jwt import ACCESS_TOKEN_TYPE, sign

if TYPE_CHECKING:
    from nopass.flows.token import ClientCredentialsGrant, TokenCommand, TokenDeps

CLIENT_CREDENTIALS_GRANT = "client_credentials"
NO_SCOPE_GRANTED = "None of the requested scopes is granted to the client"
REFUSALS = (GrantNotAllowed, AudienceRequired, UnknownAudience, NoClientGrant, InvalidScope)


def management_api(origin: str, stored: ResourceServer | None = None) -> ResourceServer:
    """The built-in Management API at one of the tenant's origins (§5.3). Its scopes are
    always ``MANAGEMENT_SCOPES``; a stored record at its identifier may only set the
    token lifetime."""
    return ResourceServer(
        identifier=management_audience(origin),
        name=MANAGEMENT_API_NAME,
        token_lifetime=stored.token_lifetime if stored else MANAGEMENT_TOKEN_LIFETIME,
        allow_offline_access=False,
        scopes=MANAGEMENT_SCOPES,
    )


def resource_server(config: TenantConfig, audience: str, origin: str) -> ResourceServer:
    """The API ``audience`` names at ``origin``: the built-in Management API or a stored one."""
    stored = config.resource_servers.get(audience)
    if audience == management_audience(origin):
        return management_api(origin, stored)
    if stored is None:
        raise UnknownAudience(audience)
    return stored


def granted_scopes(
    api: ResourceServer, granted: tuple[str, ...], requested: tuple[str, ...] | None
) -> list[str]:
    """The scopes a token gets: the grant's that the API defines, narrowed to ``requested``."""
    defined = set(api.scopes)
    scopes = [s for s in dict.fromkeys(granted) if s in defined]
    if requested is None:
        return scopes
    wanted = set(requested)
    narrowed = [s for s in scopes if s in wanted]
    if not narrowed:
        raise InvalidScope(NO_SCOPE_GRANTED)
    return narrowed


def _event(
    audit: AuditEvent, type_: str, text: str, audience: str | None, scope: str | None
) -> AuditEvent:
    details = {**audit.details, "audience": audience, "scope": scope}
    return replace(audit.but(type_, text), details=details)


async def client_credentials(
    cmd: TokenCommand, grant: ClientCredentialsGrant, config: TenantConfig, deps: TokenDeps
) -> TokenSet:
    client = config.clients.get(cmd.client_id)
    if client is None:  # §2.1: answered like a wrong secret
        raise ClientAuthenticationFailed("unknown client")
    if not client.is_confidential:  # RFC 6749 §4.4: confidential clients only
        raise GrantNotAllowed(CLIENT_CREDENTIALS_GRANT)
    origin = cmd.issuer.rstrip("/")
    async with deps.uow() as uow:
        now = deps.clock.now()
        await authenticate_client(
            client, cmd.credentials, issuer=cmd.issuer, assertions=uow.assertions, now=now
        )
        audit = login_event(config.tenant.id, cmd.request, client, None, None)
        audience = grant.audience or config.tenant.default_audience
        try:
            api, scopes = _admit(config, client, audience, grant.scope, origin)
        except REFUSALS as exc:
            requested = " ".join(grant.scope) if grant.scope is not None else None
            await uow.audit.add(_event(audit, "feccft", str(exc), audience, requested), now)
            await uow.commit()
            raise
        scope = " ".join(scopes)
        text = "Client Credentials for Access Token"
        await uow.audit.add(_event(audit, "seccft", text, api.identifier, scope), now)
        await uow.commit()
    key = await deps.keys.signing_key(config.tenant.id)
    claims = client_credentials_claims(
        issuer=cmd.issuer,
        audience=api.identifier,
        client_id=client.client_id,
        scope=scope,
        issued_at=int(now.timestamp()),
        lifetime=api.token_lifetime,
        token_id=new_id(),
    )
    token = sign(claims, key, typ=ACCESS_TOKEN_TYPE)
    return TokenSet(access_token=token, expires_in=api.token_lifetime, scope=scope)


def _admit(
    config: TenantConfig,
    client: Client,
    audience: str | None,
    requested: tuple[str, ...] | None,
    origin: str,
) -> tuple[ResourceServer, list[str]]:
    if CLIENT_CREDENTIALS_GRANT not in client.grant_types:
        raise GrantNotAllowed(CLIENT_CREDENTIALS_GRANT)
    if audience is None:
        raise AudienceRequired
    api = resource_server(config, audience, origin)
    client_grant = config.client_grant(client.client_id, api.identifier)
    if client_grant is None:
        raise NoClientGrant(client.client_id, api.identifier)
    return api, granted_scopes(api, client_grant.scope, requested)
