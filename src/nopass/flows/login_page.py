"""The hosted login page behind ``GET /authorize`` (issue 4 item 3; docs/specs/interface.md "The
hosted login page"; docs/specs/auth0-wire.md §4, §12.9; docs/specs/security.md §6), without HTTP.

A visit is a *login transaction*: a random token kept in the browser's cookie and stored as its
SHA-256, with the validated authorization request, for 30 minutes. The page sends a code (or a
link, when the request says ``send=link``) through the start flow as a trusted first-party
caller, checks the code with the very counters of the OTP grant (``flows.code_check``), signs the
browser in and answers the client as ``/authorize`` does. A resend waits 30 seconds after the
previous send. ``prompt=none`` and single sign-on answer from the nopass session alone.
"""

from __future__ import annotations

import math
import re
import secrets
from dataclasses import dataclass, replace
from datetime import timedelta

from nopass.core.channel import Channel
from nopass.core.errors import (
    AuthorizeInvalid,
    AuthorizeProblem,
    MissingProperty,
    ResendTooSoon,
    UserBlocked,
)
from nopass.core.keyring import opaque_hash
from nopass.core.models import AuditEvent, Connection, LoginTransaction, TenantConfig, User
from nopass.core.otp import new_id
from nopass.core.ports import RequestInfo
from nopass.flows.authorization_request import (
    AuthorizationResponse,
    AuthorizeFailed,
    AuthorizeRequest,
    BrowserDeps,
    respond,
)
from nopass.flows.code_check import BROWSER_FAILURES, CodeAttempt
from nopass.flows.session import current_session, sign_in
from nopass.flows.start import StartCommand, StartDeps, start_passwordless

TRANSACTION_LIFETIME = timedelta(minutes=30)
RESEND_COOLDOWN = timedelta(seconds=30)
# What a link sent from the page carries, so that clicking it finishes this very request.
LINK_PARAMS = (
    "response_type",
    "response_mode",
    "redirect_uri",
    "scope",
    "state",
    "nonce",
    "audience",
    "code_challenge",
    "code_challenge_method",
)
_PHONE_DECORATION = re.compile(r"[\s().\-]")


@dataclass(frozen=True, slots=True)
class PageDeps:
    browser: BrowserDeps
    start: StartDeps


@dataclass(frozen=True, slots=True)
class Sender:
    """Who asks for a message: the tenant origin links are built from, and the browser."""

    origin: str
    info: RequestInfo
    language: str


def page_connection(config: TenantConfig, request: AuthorizeRequest) -> Connection:
    """The request's ``connection``, else ``email``, else ``sms``, else any passwordless
    connection enabled for the client (email first)."""
    usable = {
        c.name: c
        for c in config.connections.values()
        if c.is_passwordless and request.client_id in c.enabled_clients
    }
    names = [request.connection] if request.connection else ["email", "sms"]
    for name in names:
        if name in usable:
            return usable[name]
    fallback = sorted(usable.values(), key=lambda c: (c.channel is not Channel.EMAIL, c.name))
    if fallback and not request.connection:
        return fallback[0]
    raise AuthorizeFailed(
        request, AuthorizeInvalid(AuthorizeProblem.CONNECTION, request.connection or "")
    )


def transaction_connection(config: TenantConfig, tx: LoginTransaction) -> Connection | None:
    connection = config.connections.get(tx.connection or "")
    if connection is None or not connection.is_passwordless:
        return None
    return connection if tx.client_id in connection.enabled_clients else None


def _may_sign_in(config: TenantConfig, request: AuthorizeRequest, user: User) -> bool:
    """A session counts for a request only through a connection the client may use."""
    for connection in config.connections.values():
        if connection.id == user.connection_id:
            return (
                connection.is_passwordless
                and request.client_id in connection.enabled_clients
                and request.connection in (None, connection.name)
            )
    return False


async def _ready_to_sign(
    deps: BrowserDeps, config: TenantConfig, request: AuthorizeRequest
) -> None:
    """Tokens from the front channel need the tenant's signing key, which is made on first
    need in a transaction of its own: make it before ours holds the (SQLite) write lock."""
    if "code" not in request.types:
        await deps.keys.signing_key(config.tenant.id)


async def answer_from_session(
    deps: BrowserDeps,
    config: TenantConfig,
    issuer: str,
    request: AuthorizeRequest,
    session_token: str | None,
    *,
    audit: AuditEvent,
) -> AuthorizationResponse | None:
    """Answer at once from the browser's nopass session: silently for ``prompt=none``
    (audited ``ssa``), else as single sign-on. Without a usable session ``prompt=none`` fails
    with ``login_required`` (audited ``fsa``) and any other prompt gets None: show the page."""
    silent = request.prompt == "none"
    await _ready_to_sign(deps, config, request)
    async with deps.uow() as uow:
        now = deps.clock.now()
        found = await current_session(uow, config.tenant.id, session_token, now)
        if found is None or not _may_sign_in(config, request, found[1]):
            if not silent:
                return None
            await uow.audit.add(audit.but("fsa", "Login required"), now)
            await uow.commit()
            raise AuthorizeFailed(request, AuthorizeInvalid(AuthorizeProblem.LOGIN_REQUIRED))
        session, user = found
        if user.blocked:  # blocked since this session began (the session stays, refused)
            refused = UserBlocked(user.user_id)
            await uow.audit.add(audit.but("f", str(refused), user_id=user.user_id), now)
            await uow.commit()
            raise AuthorizeFailed(request, refused)
        response = await respond(
            uow, deps.keys, config, issuer, request, user, auth_time=session.created_at, now=now
        )
        if silent:
            await uow.audit.add(
                audit.but("ssa", "Successful silent authentication", user_id=user.user_id), now
            )
        await uow.commit()
    return response


async def begin_login(
    deps: BrowserDeps, config: TenantConfig, request: AuthorizeRequest
) -> tuple[str, LoginTransaction]:
    """A new login transaction for ``request``: ``(cookie token, transaction)``."""
    connection = page_connection(config, request)
    token = secrets.token_urlsafe(32)
    async with deps.uow() as uow:
        now = deps.clock.now()
        tx = LoginTransaction(
            id=new_id(),
            client_id=request.client_id,
            params=request.as_params(),
            created_at=now,
            expires_at=now + TRANSACTION_LIFETIME,
            connection=connection.name,
        )
        await uow.transactions.add(config.tenant.id, tx, opaque_hash(token))
        await uow.commit()
    return token, tx


async def find_transaction(
    deps: BrowserDeps, tenant_id: str, token: str | None
) -> LoginTransaction | None:
    """The open (unexpired, not completed) transaction of a cookie value."""
    if not token:
        return None
    async with deps.uow() as uow:
        return await uow.transactions.find(tenant_id, opaque_hash(token), deps.clock.now())


def _typed_identifier(connection: Connection, typed: str) -> str:
    """Forgive what people type around an identifier: spaces, and phone punctuation."""
    typed = typed.strip()
    return _PHONE_DECORATION.sub("", typed) if connection.channel is Channel.SMS else typed


async def send_message(
    deps: PageDeps,
    config: TenantConfig,
    tx: LoginTransaction,
    connection: Connection,
    request: AuthorizeRequest,
    typed: str,
    sender: Sender,
) -> LoginTransaction:
    """Send a code (or a link) to what the user typed and remember it on the transaction.
    Raises the start flow's errors (``InvalidFormat`` for a bad email or phone number,
    ``DeliveryFailed``); nothing is sent then."""
    channel = connection.channel
    send = "link" if request.send == "link" and channel.links else "code"
    params = request.as_params()
    identifier = _typed_identifier(connection, typed)
    command = StartCommand(
        client_id=tx.client_id,
        connection=connection.name,
        send=send,
        auth_params={k: params[k] for k in LINK_PARAMS if k in params},
        origin=sender.origin,
        request=sender.info,
        request_language=sender.language,
        email=identifier if channel is Channel.EMAIL else None,
        phone_number=identifier if channel is Channel.SMS else None,
        trusted=True,
    )
    result = await start_passwordless(command, config, deps.start)
    async with deps.browser.uow() as uow:
        now = deps.browser.clock.now()
        updated = replace(
            tx,
            connection=connection.name,
            identifier=result.identifier,
            challenge_id=result.id,
            send=send,
            last_sent_at=now,
        )
        await uow.transactions.update(
            config.tenant.id,
            tx.id,
            {
                "connection": updated.connection,
                "identifier": updated.identifier,
                "challenge_id": updated.challenge_id,
                "send": updated.send,
                "last_sent_at": updated.last_sent_at,
            },
        )
        await uow.commit()
    return updated


async def resend_message(
    deps: PageDeps,
    config: TenantConfig,
    tx: LoginTransaction,
    connection: Connection,
    request: AuthorizeRequest,
    sender: Sender,
) -> LoginTransaction:
    """A new code or link to the transaction's identity (voiding the old one), at most once
    per ``RESEND_COOLDOWN``; earlier raises ``ResendTooSoon``."""
    if tx.identifier is None:
        raise MissingProperty(connection.channel.field)
    now = deps.browser.clock.now()
    if tx.last_sent_at is not None:
        wait = (tx.last_sent_at + RESEND_COOLDOWN - now).total_seconds()
        if wait > 0:
            raise ResendTooSoon(math.ceil(wait))
    return await send_message(deps, config, tx, connection, request, tx.identifier, sender)


async def verify_page_code(
    deps: BrowserDeps,
    config: TenantConfig,
    issuer: str,
    tx: LoginTransaction,
    connection: Connection,
    request: AuthorizeRequest,
    code: str,
    *,
    ip: str | None,
    audit: AuditEvent,
) -> tuple[AuthorizationResponse, str]:
    """Check the typed code like the OTP grant does, then sign in and complete the
    transaction: ``(authorization response, session token)``. Raises ``CodeRejected`` or
    ``IdentityBlocked`` (audited ``f``; the guess stays counted), ``UserBlocked`` (audited
    ``f``; the code stays usable), or ``RateLimited`` when the IP failed too often."""
    tenant = config.tenant
    attempt = CodeAttempt(
        connection=connection,
        username=tx.identifier,
        code="".join(code.split()),
        limit_ip=ip,
        user_ip=ip,
        audit=audit,
        failures=BROWSER_FAILURES,
    )
    await _ready_to_sign(deps, config, request)
    async with deps.uow() as uow:
        login = await deps.codes.sign_in(uow, tenant, attempt)
        response, session = await sign_in(uow, deps, config, issuer, request, login, audit=audit)
        await uow.transactions.update(tenant.id, tx.id, {"completed_at": login.at})
        await uow.commit()
    return response, session
