"""``POST /oauth/revoke`` (RFC 7009): revoke a refresh token and every token rotated from it.
An unknown token is not an error (RFC 7009 §2.2), so the answer reveals nothing."""

from __future__ import annotations

from nopass.core.keyring import opaque_hash
from nopass.core.models import TenantConfig
from nopass.flows.client_auth import authenticate_client
from nopass.flows.token import TokenCommand, TokenDeps, client_of, required


async def revoke(cmd: TokenCommand, config: TenantConfig, deps: TokenDeps) -> None:
    client, creds = client_of(cmd, config)
    token = required(cmd.body, "token")
    async with deps.uow() as uow:
        now = deps.clock.now()
        await authenticate_client(
            client, creds, issuer=cmd.issuer, assertions=uow.assertions, now=now
        )
        stored = await uow.refresh_tokens.find(config.tenant.id, opaque_hash(token))
        if stored is not None and stored.client_id == client.client_id:
            await uow.refresh_tokens.revoke_family(config.tenant.id, stored.family_id, now)
        await uow.commit()
