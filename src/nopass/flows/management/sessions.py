"""Sessions and refresh tokens by their id, and revoking a user's access
(docs/specs/management-api.md §3.9).

A session is a browser's sign-in at nopass (its cookie), a refresh token what a client holds
to get new tokens; both are found only while usable (open, unexpired; not rotated nor
revoked), as a user's lists show them. Deleting one ends it at once: its cookie or its value
no longer works. Every deletion is one transaction with its ``sapi`` event; nothing to delete
is ``ObjectNotFound`` and writes nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol, TypeVar

from nopass.core.errors import ObjectNotFound
from nopass.core.models import RefreshGrant, Session, TenantConfig
from nopass.core.ports import UnitOfWork
from nopass.flows.management.caller import ApiCall, ManagementDeps
from nopass.flows.management.users import existing_user

SESSION = "session"
REFRESH_TOKEN = "refresh_token"  # noqa: S105 (an object kind, not a secret)

_Found = TypeVar("_Found", Session, RefreshGrant)
_Row = TypeVar("_Row", Session, RefreshGrant, covariant=True)


class _ById(Protocol[_Row]):
    async def get(self, tenant_id: str, object_id: str, now: datetime, /) -> _Row | None: ...

    async def delete(self, tenant_id: str, object_id: str, /) -> bool: ...


def _sessions(uow: UnitOfWork) -> _ById[Session]:
    return uow.sessions


def _refresh_tokens(uow: UnitOfWork) -> _ById[RefreshGrant]:
    return uow.refresh_tokens


async def _get(
    tenant: TenantConfig,
    kind: str,
    object_id: str,
    rows: Callable[[UnitOfWork], _ById[_Found]],
    deps: ManagementDeps,
) -> _Found:
    async with deps.uow() as uow:
        found = await rows(uow).get(tenant.tenant.id, object_id, deps.clock.now())
    if found is None:
        raise ObjectNotFound(kind, object_id)
    return found


async def _delete(
    tenant: TenantConfig,
    kind: str,
    object_id: str,
    rows: Callable[[UnitOfWork], _ById[_Found]],
    call: ApiCall,
    deps: ManagementDeps,
    description: str,
) -> None:
    tenant_id = tenant.tenant.id
    now = deps.clock.now()
    async with deps.uow() as uow:
        found = await rows(uow).get(tenant_id, object_id, now)
        if found is None:
            raise ObjectNotFound(kind, object_id)
        await rows(uow).delete(tenant_id, object_id)
        event = call.audit(tenant_id, description, user_id=found.user_id, id=object_id)
        await uow.audit.add(event, now)
        await uow.commit()


async def get_session(tenant: TenantConfig, session_id: str, deps: ManagementDeps) -> Session:
    return await _get(tenant, SESSION, session_id, _sessions, deps)


async def delete_session(
    tenant: TenantConfig, session_id: str, call: ApiCall, deps: ManagementDeps
) -> None:
    await _delete(tenant, SESSION, session_id, _sessions, call, deps, "Delete a session")


async def get_refresh_token(
    tenant: TenantConfig, grant_id: str, deps: ManagementDeps
) -> RefreshGrant:
    return await _get(tenant, REFRESH_TOKEN, grant_id, _refresh_tokens, deps)


async def delete_refresh_token(
    tenant: TenantConfig, grant_id: str, call: ApiCall, deps: ManagementDeps
) -> None:
    await _delete(
        tenant, REFRESH_TOKEN, grant_id, _refresh_tokens, call, deps, "Delete a refresh token"
    )


@dataclass(frozen=True, slots=True)
class RevokeAccess:
    """``POST /api/v2/users/{id}/revoke-access``: one session of the user (None: all of them)
    and, unless preserved, the refresh tokens that go with it. nopass binds no refresh token
    to a session, so only revoking every session revokes refresh tokens too."""

    session_id: str | None = None
    preserve_refresh_tokens: bool = False


async def revoke_access(
    tenant: TenantConfig, user_id: str, revoke: RevokeAccess, call: ApiCall, deps: ManagementDeps
) -> None:
    tenant_id = tenant.tenant.id
    now = deps.clock.now()
    async with deps.uow() as uow:
        await existing_user(uow, tenant, user_id)
        removed_tokens = 0
        if revoke.session_id is None:
            removed_sessions = await uow.sessions.delete_for_user(tenant_id, user_id)
            if not revoke.preserve_refresh_tokens:
                removed_tokens = await uow.refresh_tokens.delete_for_user(tenant_id, user_id)
        else:
            session = await uow.sessions.get(tenant_id, revoke.session_id, now)
            if session is None or session.user_id != user_id:
                raise ObjectNotFound(SESSION, revoke.session_id)
            removed_sessions = int(await uow.sessions.delete(tenant_id, revoke.session_id))
        event = call.audit(
            tenant_id,
            "Revoke a user's access",
            user_id=user_id,
            session_id=revoke.session_id,
            sessions_removed=removed_sessions,
            refresh_tokens_removed=removed_tokens,
        )
        await uow.audit.add(event, now)
        await uow.commit()
