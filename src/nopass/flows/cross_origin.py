"""Cross-origin authentication, auth0.js' ``passwordlessLogin`` from an application's own page
(docs/specs/auth0-wire.md §5.2, §5.3, §12.11): ``POST /co/authenticate`` consumes a code and answers
a login ticket (``authenticate``), which ``GET /authorize?login_ticket=…`` turns into an
authorization response (``redeem_ticket``).

Codes follow the same rules as the OTP grant (``flows.code_check``): one guess budget per
identity across every endpoint.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from nopass.core.errors import (
    AuthorizeInvalid,
    AuthorizeProblem,
    CrossOriginDisabled,
    NopassError,
    OriginNotAllowed,
    RateLimited,
    RequestRejected,
    UnknownCredentialType,
    UnknownRealm,
    UserBlocked,
)
from nopass.core.keyring import opaque_hash
from nopass.core.models import (
    PASSWORDLESS_OTP_GRANT,
    AuditEvent,
    Client,
    Connection,
    LoginTicket,
    TenantConfig,
    User,
)
from nopass.core.otp import new_id
from nopass.core.ports import RequestInfo, UnitOfWork
from nopass.flows.audit import MAX_USER_NAME, login_event
from nopass.flows.authorization_request import (
    AuthorizationResponse,
    AuthorizeFailed,
    AuthorizeRequest,
    BrowserDeps,
    respond,
)
from nopass.flows.code_check import CROSS_ORIGIN_FAILURES, CodeAttempt
from nopass.flows.origins import client_origins, origin_allowed, tenant_origins
from nopass.flows.session import open_session

TICKET_LIFETIME = timedelta(minutes=5)
CO_FIELDS = ("client_id", "credential_type", "username", "otp", "realm")
VERIFIER_COOKIE_PREFIX = "nopass_co_"


# --- POST /co/authenticate (§5.2, §12.11) -----------------------------------------------


@dataclass(frozen=True, slots=True)
class CrossOriginFields:
    """The five fields of a well-formed ``/co/authenticate`` body (``CO_FIELDS``)."""

    client_id: str
    credential_type: str
    username: str
    otp: str
    realm: str


@dataclass(frozen=True, slots=True)
class CrossOriginCommand:
    """A parsed ``/co/authenticate`` request (``api/commands.py`` builds it). A malformed
    body is carried as its error: the origin is judged first (§12.11)."""

    fields: CrossOriginFields | RequestRejected
    client_id: str | None  # the body's client_id when it is a string, even in a bad body
    username: str | None  # likewise, for the audit events
    origin: str | None  # the request's Origin header
    request: RequestInfo


@dataclass(frozen=True, slots=True)
class IssuedTicket:
    login_ticket: str
    co_verifier: str
    co_id: str
    lifetime: int  # seconds

    def as_json(self) -> dict[str, str]:
        return {
            "login_ticket": self.login_ticket,
            "co_verifier": self.co_verifier,
            "co_id": self.co_id,
        }


def co_id_for(ticket: str) -> str:
    """The ticket's ``co_id``: derived from the ticket (192 bits, url-safe) so that
    ``GET /authorize``, which only sees the ticket, can name the verifier cookie."""
    digest = hashlib.sha256(b"nopass co_id\x00" + ticket.encode()).digest()
    return base64.urlsafe_b64encode(digest).decode()[:32]


def verifier_cookie_name(ticket: str) -> str:
    """The cookie ``/co/authenticate`` set with the ticket's ``co_verifier``."""
    return VERIFIER_COOKIE_PREFIX + co_id_for(ticket)


async def _record(deps: BrowserDeps, event: AuditEvent) -> None:
    async with deps.uow() as uow:
        await uow.audit.add(event, deps.clock.now())
        await uow.commit()


async def refuse_origin(
    origin: str | None, config: TenantConfig, request: RequestInfo, deps: BrowserDeps
) -> OriginNotAllowed:
    """Record ``fco`` for an origin refused before any client is known (a pre-flight)."""
    refused = OriginNotAllowed(origin or "null")
    event = AuditEvent(
        tenant_id=config.tenant.id,
        type="fco",
        description=str(refused),
        ip=request.ip,
        user_agent=request.user_agent,
        details={"origin": refused.origin[:256]},
    )
    await _record(deps, event)
    return refused


async def authenticate(
    cmd: CrossOriginCommand, config: TenantConfig, deps: BrowserDeps
) -> IssuedTicket:
    """Check the origin, the body, the client and the realm, then consume the code, sign the
    user in (created at first login) and answer a login ticket: 5 minutes, single use,
    bound to the client. Audit ``fco`` (origin), ``fcoa`` (+ ``fp`` for a wrong code),
    ``scoa`` (+ ``ss`` at signup).

    Order: origin (against the client's origins, or every client's when the client is
    unknown or the body unreadable) → body → client allows cross-origin login → credential
    type → realm → identity window → code.
    """
    client = config.clients.get(cmd.client_id) if cmd.client_id is not None else None
    audit = AuditEvent(
        tenant_id=config.tenant.id,
        type="",
        ip=cmd.request.ip,
        user_agent=cmd.request.user_agent,
        client_id=client.client_id if client is not None else None,
        user_name=(cmd.username or "")[:MAX_USER_NAME] or None,
        details={"origin": (cmd.origin or "")[:256]},
    )
    allowed = client_origins(client) if client is not None else tenant_origins(config)
    if not origin_allowed(cmd.origin, allowed):
        refused = OriginNotAllowed(cmd.origin or "null")
        await _record(deps, audit.but("fco", str(refused)))
        raise refused
    try:
        fields = cmd.fields
        if isinstance(fields, RequestRejected):
            raise fields
        if client is None or not client.cross_origin_auth:
            raise CrossOriginDisabled()
        if fields.credential_type != PASSWORDLESS_OTP_GRANT:
            raise UnknownCredentialType(fields.credential_type)
        connection = config.connections.get(fields.realm)
        if (
            connection is None
            or not connection.is_passwordless
            or client.client_id not in connection.enabled_clients
        ):
            raise UnknownRealm(fields.realm)
    except NopassError as exc:
        await _record(deps, audit.but("fcoa", str(exc)))
        raise
    audit = login_event(config.tenant.id, cmd.request, client, connection, fields.username)
    return await _login(deps, config, client, connection, fields, audit)


async def _login(
    deps: BrowserDeps,
    config: TenantConfig,
    client: Client,
    connection: Connection,
    fields: CrossOriginFields,
    audit: AuditEvent,
) -> IssuedTicket:
    tenant = config.tenant
    attempt = CodeAttempt(
        connection=connection,
        username=fields.username,
        code=fields.otp,
        limit_ip=audit.ip,
        user_ip=audit.ip,
        audit=audit,
        failures=CROSS_ORIGIN_FAILURES,
    )
    async with deps.uow() as uow:
        try:
            login = await deps.codes.sign_in(uow, tenant, attempt)
        except RateLimited as exc:  # its own event is committed; say which request it was
            await uow.audit.add(audit.but("fcoa", str(exc)), deps.clock.now())
            await uow.commit()
            raise
        now = login.at
        issued = await _issue_ticket(uow, tenant.id, client, login.user, connection, now)
        if login.created:
            await uow.audit.add(
                audit.but("ss", "Successful signup", user_id=login.user.user_id), now
            )
        await uow.audit.add(
            audit.but("scoa", "Successful cross-origin authentication", user_id=login.user.user_id),
            now,
        )
        await uow.commit()
    return issued


async def _issue_ticket(
    uow: UnitOfWork,
    tenant_id: str,
    client: Client,
    user: User,
    connection: Connection,
    now: datetime,
) -> IssuedTicket:
    ticket = secrets.token_urlsafe(32)
    verifier = secrets.token_urlsafe(32)
    co_id = co_id_for(ticket)
    record = LoginTicket(
        id=new_id(),
        co_id=co_id,
        co_verifier_hash=opaque_hash(verifier),
        client_id=client.client_id,
        user_id=user.user_id,
        realm=connection.name,
        expires_at=now + TICKET_LIFETIME,
    )
    await uow.tickets.add(tenant_id, record, opaque_hash(ticket), now)
    return IssuedTicket(ticket, verifier, co_id, int(TICKET_LIFETIME.total_seconds()))


# --- GET /authorize?login_ticket=… (§5.3) -----------------------------------------------


async def redeem_ticket(
    uow: UnitOfWork,
    config: TenantConfig,
    request: AuthorizeRequest,
    ticket: str,
    co_verifier: str | None,
    now: datetime,
) -> User:
    """The user a login ticket stands for, consuming the ticket (in ``uow``'s transaction).

    Raises ``AuthorizeInvalid(INVALID_TICKET)`` for an unknown, expired, used or refused
    ticket, or one of another client than ``request.client_id``. Commit even when it raises:
    a ticket presented with a wrong verifier is consumed, and must stay so.

    ``co_verifier`` is the value of the browser's ``verifier_cookie_name(ticket)`` cookie,
    set by ``/co/authenticate``; pass None when the cookie is absent.

    Trade-off (docs/specs/auth0-wire.md §5.3): the verifier is checked only when the cookie is
    present. Auth0 falls back, when third-party cookies are blocked, to loading the application's
    ``cross_origin_loc`` page in an iframe to fetch the verifier from the application's
    storage (``co_verifier_request`` / ``co_verifier_response``); nopass does not implement
    that fallback. Without the cookie a ticket is therefore a bearer credential for the user
    that works once, for 5 minutes, for its client only, and whose authorization response
    goes only to a registered callback; a leaked ticket used before its owner uses it would
    sign its user in. The cookie check refuses a ticket replayed into a browser that holds
    another verifier for it.
    """
    stored = await uow.tickets.consume(
        config.tenant.id, opaque_hash(ticket), request.client_id, now
    )
    if stored is None:
        raise AuthorizeInvalid(AuthorizeProblem.INVALID_TICKET)
    if co_verifier is not None and not hmac.compare_digest(
        opaque_hash(co_verifier), stored.co_verifier_hash
    ):
        raise AuthorizeInvalid(AuthorizeProblem.INVALID_TICKET)
    user = await uow.users.get(config.tenant.id, stored.user_id)
    if user is None:
        raise AuthorizeInvalid(AuthorizeProblem.INVALID_TICKET)
    return user


async def answer_ticket(
    deps: BrowserDeps,
    config: TenantConfig,
    issuer: str,
    request: AuthorizeRequest,
    ticket: str,
    co_verifier: str | None,
    *,
    audit: AuditEvent,
) -> tuple[AuthorizationResponse, str]:
    """``GET /authorize?login_ticket=…``: sign the browser in as the ticket's user and answer
    the authorization request: ``(response, session token)``. Raises ``AuthorizeFailed``."""
    await deps.keys.signing_key(config.tenant.id)  # never create a key inside the transaction
    async with deps.uow() as uow:
        now = deps.clock.now()
        try:
            user = await redeem_ticket(uow, config, request, ticket, co_verifier, now)
        except AuthorizeInvalid as exc:
            await uow.audit.add(audit.but("f", "Invalid login ticket"), now)
            await uow.commit()
            raise AuthorizeFailed(request, exc) from exc
        if user.blocked:  # blocked since the ticket was issued: the ticket is spent
            refused = UserBlocked(user.user_id)
            await uow.audit.add(audit.but("f", str(refused), user_id=user.user_id), now)
            await uow.commit()
            raise AuthorizeFailed(request, refused)
        session = await open_session(uow, config.tenant.id, user, now)
        response = await respond(
            uow, deps.keys, config, issuer, request, user, auth_time=now, now=now
        )
        await uow.audit.add(audit.but("s", "Successful login", user_id=user.user_id), now)
        await uow.commit()
    return response, session
