"""``POST /oauth/revoke`` (RFC 7009): revoke a refresh token and every token rotated from it.
An unknown token is not an error (RFC 7009 §2.2), so the answer reveals nothing."""

from __future__ import annotations

from dataclasses import dataclass

from nopass.core.errors import UnknownClient
from nopass.core.keyring import opaque_hash
from nopass.core.models import TenantConfig
from nopass.flows.client_auth import ClientCredentials, authenticate_client
from nopass.flows.token import TokenDeps


@dataclass(frozen=True, slots=True)
class RevokeCommand:
    """A parsed ``/oauth/revoke`` request (``api/commands.py`` builds it)."""

    client_id: str
    credentials: ClientCredentials
    token: str
    issuer: str


async def revoke(cmd: RevokeCommand, config: TenantConfig, deps: TokenDeps) -> None:
    client = config.clients.get(cmd.client_id)
    if client is None:
        raise UnknownClient(cmd.client_id)
    async with deps.uow() as uow:
        now = deps.clock.now()
        await authenticate_client(
            client, cmd.credentials, issuer=cmd.issuer, assertions=uow.assertions, now=now
        )
        stored = await uow.refresh_tokens.find(config.tenant.id, opaque_hash(cmd.token))
        if stored is not None and stored.client_id == client.client_id:
            await uow.refresh_tokens.revoke_family(config.tenant.id, stored.family_id, now)
        await uow.commit()
