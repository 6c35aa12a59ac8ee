"""Brute-force blocks, as ``/api/v2/user-blocks`` shows and clears them
(docs/specs/management-api.md §6).

nopass blocks an identity, not an IP (Auth0's "account lockout" mode): once its failure window
is full (``failures_per_identity_per_15min``, default 10 failures in 15 minutes) every code of
that identity is refused from every IP until the window passes (``flows/code_check.py``).
A block is therefore a full failure window of one (connection, identifier); it is shown
without an ``ip``, which Auth0 omits in that mode. Clearing it deletes the window (audited
``ublkdu``), so the next right code signs in at once. An administrator's ``blocked`` flag on
the user is another thing and is not touched here.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime

from nopass.core.errors import UserNotFound
from nopass.core.models import AuditEvent, Connection, TenantConfig
from nopass.core.ports import UnitOfWork
from nopass.flows.code_check import FAILURE_WINDOW, normalize_identifier
from nopass.flows.management.caller import ApiCall, ManagementDeps
from nopass.flows.management.users import existing_user


@dataclass(frozen=True, slots=True)
class Block:
    identifier: str
    connection: str  # the connection's name


async def _identities_of_user(
    uow: UnitOfWork, config: TenantConfig, user_id: str
) -> list[tuple[Connection, str]]:
    user = await existing_user(uow, config, user_id)
    connection = config.connection_by_id(user.connection_id)
    if connection is None:
        raise UserNotFound(user_id)
    return [(connection, user.identifier)]


def _identities_of(config: TenantConfig, identifier: str) -> list[tuple[Connection, str]]:
    """Each passwordless connection's reading of ``identifier`` (an email address or a phone
    number; one that cannot be either is simply no identity there)."""
    found = []
    for connection in config.connections.values():
        if connection.is_passwordless:
            normalized = normalize_identifier(connection, identifier)
            if normalized is not None:
                found.append((connection, normalized))
    return found


async def _blocks(
    uow: UnitOfWork, config: TenantConfig, identities: list[tuple[Connection, str]], now: datetime
) -> list[Block]:
    limit = config.tenant.rate_limits.failures_per_identity_per_15min
    if not limit:
        return []
    blocks = []
    for connection, identifier in identities:
        failures, started = await uow.failures.current(
            config.tenant.id, connection.id, identifier, FAILURE_WINDOW, now
        )
        if failures >= limit and started is not None:
            blocks.append(Block(identifier=identifier, connection=connection.name))
    return blocks


async def blocks_for_identifier(
    tenant: TenantConfig, identifier: str, deps: ManagementDeps
) -> list[Block]:
    async with deps.uow() as uow:
        return await _blocks(uow, tenant, _identities_of(tenant, identifier), deps.clock.now())


async def blocks_for_user(tenant: TenantConfig, user_id: str, deps: ManagementDeps) -> list[Block]:
    """Raises ``UserNotFound`` for a user the tenant does not have."""
    async with deps.uow() as uow:
        identities = await _identities_of_user(uow, tenant, user_id)
        return await _blocks(uow, tenant, identities, deps.clock.now())


async def _unblock(
    uow: UnitOfWork,
    tenant: TenantConfig,
    identities: list[tuple[Connection, str]],
    now: datetime,
    event: AuditEvent,
) -> None:
    """Clear the identities' windows (the full ones are audited ``ublkdu``; those below the
    limit go too: "remove all blocks" leaves none about to trip), audit the call, commit."""
    for block in await _blocks(uow, tenant, identities, now):
        released = replace(
            event,
            type="ublkdu",
            description="User login block released",
            connection=block.connection,
            user_name=block.identifier,
        )
        await uow.audit.add(released, now)
    for connection, identifier in identities:
        await uow.failures.reset(tenant.tenant.id, connection.id, identifier)
    await uow.audit.add(event, now)
    await uow.commit()


async def unblock_identifier(
    tenant: TenantConfig, identifier: str, call: ApiCall, deps: ManagementDeps
) -> None:
    """Idempotent: nothing to clear is no error."""
    event = call.audit(tenant.tenant.id, "Unblock an identifier", identifier=identifier)
    async with deps.uow() as uow:
        identities = _identities_of(tenant, identifier)
        await _unblock(uow, tenant, identities, deps.clock.now(), event)


async def unblock_user(
    tenant: TenantConfig, user_id: str, call: ApiCall, deps: ManagementDeps
) -> None:
    """Raises ``UserNotFound`` for a user the tenant does not have."""
    event = call.audit(tenant.tenant.id, "Unblock a user", user_id=user_id)
    async with deps.uow() as uow:
        identities = await _identities_of_user(uow, tenant, user_id)
        await _unblock(uow, tenant, identities, deps.clock.now(), event)
