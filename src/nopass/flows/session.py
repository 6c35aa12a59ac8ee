"""The browser session at nopass: a random cookie value, stored as SHA-256, 7 days."""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta

from nopass.core.keyring import opaque_hash
from nopass.core.models import AuditEvent, Session, TenantConfig, User
from nopass.core.otp import new_id
from nopass.core.ports import UnitOfWork
from nopass.flows.authorization_request import (
    AuthorizationResponse,
    AuthorizeRequest,
    BrowserDeps,
    respond,
)
from nopass.flows.code_check import LoginResult

SESSION_LIFETIME = timedelta(days=7)


async def open_session(uow: UnitOfWork, tenant_id: str, user: User, now: datetime) -> str:
    token = secrets.token_urlsafe(32)
    session = Session(
        id=new_id(), user_id=user.user_id, created_at=now, expires_at=now + SESSION_LIFETIME
    )
    await uow.sessions.add(tenant_id, session, opaque_hash(token))
    return token


async def current_session(
    uow: UnitOfWork, tenant_id: str, token: str | None, now: datetime
) -> tuple[Session, User] | None:
    if not token:
        return None
    session = await uow.sessions.find(tenant_id, opaque_hash(token), now)
    if session is None:
        return None
    user = await uow.users.get(tenant_id, session.user_id)
    return (session, user) if user is not None else None


async def close_session(uow: UnitOfWork, tenant_id: str, token: str | None, now: datetime) -> None:
    if token:
        await uow.sessions.revoke(tenant_id, opaque_hash(token), now)


async def sign_in(
    uow: UnitOfWork,
    deps: BrowserDeps,
    config: TenantConfig,
    issuer: str,
    request: AuthorizeRequest,
    login: LoginResult,
    *,
    audit: AuditEvent,
) -> tuple[AuthorizationResponse, str]:
    """A browser whose code was just consumed (magic link, hosted page): open a session,
    answer the authorization request, audit ``ss``/``s`` — all in ``uow``. Returns the
    authorization response and the session cookie value."""
    user, now = login.user, login.at
    session = await open_session(uow, config.tenant.id, user, now)
    response = await respond(uow, deps.keys, config, issuer, request, user, auth_time=now, now=now)
    if login.created:
        await uow.audit.add(audit.but("ss", "Successful signup", user_id=user.user_id), now)
    await uow.audit.add(audit.but("s", "Successful login", user_id=user.user_id), now)
    return response, session
