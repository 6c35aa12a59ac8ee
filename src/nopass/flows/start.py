"""``POST /passwordless/start``: issue a one-time code (and its link) and deliver it.

Follows docs/specs/auth0-wire.md §2 with the house decisions of §12.2-12.5: the checks run in the
order of §12.2 and the first failure wins; the code is stored only as an HMAC; a new start voids the
identity's pending codes; email goes through the durable outbox in the same transaction as the
code, SMS is sent synchronously after the commit and a provider failure voids the code.
The rate limits and SMS fraud controls (``flows.limits``) run after client authentication and
before anything is stored; a test identity stores its fixed code and sends nothing.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import TypeAlias
from urllib.parse import quote, urlencode

from nopass.core.clock import Clock
from nopass.core.errors import (
    ConnectionIssue,
    ConnectionProblem,
    DeliveryFailed,
    InvalidFormat,
    MissingProperty,
    RedirectNotAllowed,
    RequestRejected,
    UnknownClient,
)
from nopass.core.keyring import Keyring
from nopass.core.latency import LatencyEstimate
from nopass.core.models import (
    AuditEvent,
    Challenge,
    Channel,
    Client,
    Connection,
    Message,
    RateLimitStatus,
    TenantConfig,
    TestIdentity,
)
from nopass.core.options import OUTBOX_PROVIDER, EmailOptions, SmsOptions
from nopass.core.otp import new_code, new_id
from nopass.core.ports import (
    OutboxSignal,
    Renderer,
    RequestInfo,
    SmsSender,
    TemplateContext,
    UnitOfWork,
    UnitOfWorkFactory,
)
from nopass.flows.client_auth import ClientCredentials, authenticate_client
from nopass.flows.limits import Limits, limit_ip

DEFAULT_SENDER = "nopass@localhost"
TEST_IDENTITY_TEXT = "Test identity: fixed code stored, nothing sent"


Sent: TypeAlias = str | RequestRejected | None
"""A field as the request sent it: its text, None when absent, or the error its value earns,
raised only when the flow comes to that field (the order of checks is §12.2's)."""


@dataclass(frozen=True, slots=True)
class StartCommand:
    """A parsed ``/passwordless/start`` request (``api/commands.py`` builds it from a body;
    the hosted login page builds its own)."""

    client_id: str
    connection: str
    send: str  # link | code | link_ios | link_android
    auth_params: Mapping[str, str]
    origin: str  # the tenant origin the request matched (links are built from it)
    request: RequestInfo
    request_language: str | None
    email: Sent = None
    phone_number: Sent = None
    client_secret: Sent = None
    client_assertion: Sent = None
    client_assertion_type: Sent = None
    basic_auth: tuple[str, str] | None = None
    # Sent by nopass's own hosted login page (first-party): no client authentication, even
    # for a confidential client; every other check still runs.
    trusted: bool = False


@dataclass(frozen=True, slots=True)
class StartResult:
    id: str
    channel: Channel
    identifier: str
    request_language: str | None
    rate_limit: RateLimitStatus | None = None  # the per-IP start limit, for x-ratelimit-*


@dataclass(frozen=True, slots=True)
class StartDeps:
    uow: UnitOfWorkFactory
    keyring: Keyring
    renderer: Renderer
    sms: SmsSender
    outbox_signal: OutboxSignal
    clock: Clock
    limits: Limits
    sms_latency: LatencyEstimate = field(default_factory=LatencyEstimate)


def _text(value: Sent) -> str | None:
    if isinstance(value, RequestRejected):
        raise value
    return value


def _identifier(cmd: StartCommand, channel: Channel) -> str:
    raw = _text(cmd.email if channel is Channel.EMAIL else cmd.phone_number)
    if raw is None:
        raise MissingProperty(channel.field)
    identifier = channel.normalize(raw)
    if identifier is None:
        raise InvalidFormat(channel.field, raw, channel.pattern)
    return identifier


def build_link(
    origin: str,
    connection: Connection,
    client: Client,
    identifier: str,
    code: str,
    auth_params: Mapping[str, str],
) -> str:
    """The magic link of docs/specs/auth0-wire.md §4.1: authParams first, then the fixed
    parameters."""
    params = dict(auth_params)
    for fixed in ("verification_code", "connection", "client_id", "email", "phone_number"):
        params.pop(fixed, None)
    params["verification_code"] = code
    params["connection"] = connection.name
    params["client_id"] = client.client_id
    params[connection.channel.field] = identifier
    query = urlencode(params, quote_via=quote, safe="")
    return f"{origin}/passwordless/verify_redirect?{query}"


def _synchronous_sms(req: _Request) -> bool:
    options = req.connection.options
    return isinstance(options, SmsOptions) and options.synchronous


def _connection_auth_params(connection: Connection) -> dict[str, str]:
    options = connection.options
    return dict(options.auth_params) if isinstance(options, EmailOptions) else {}


def _resolve(cmd: StartCommand, config: TenantConfig) -> tuple[Client, Connection]:
    client = config.clients.get(cmd.client_id)
    if client is None:
        raise UnknownClient(cmd.client_id)
    connection = config.connections.get(cmd.connection)
    if connection is None:
        raise ConnectionProblem(ConnectionIssue.NOT_FOUND)
    if not connection.is_passwordless:
        raise ConnectionProblem(ConnectionIssue.NOT_PASSWORDLESS)
    if client.client_id not in connection.enabled_clients:
        raise ConnectionProblem(ConnectionIssue.DISABLED)
    return client, connection


@dataclass(frozen=True, slots=True)
class _Request:
    """A start request that passed every check that needs no database."""

    client: Client
    connection: Connection
    identifier: str
    send: str
    channel: Channel
    auth_params: dict[str, str]
    credentials: ClientCredentials


@dataclass(frozen=True, slots=True)
class _Code:
    """A new code and what follows from it (its HMAC, the link), made before the transaction
    opens: it needs no database, and the transaction (on SQLite, the one write lock) should
    hold for writing only."""

    challenge_id: str
    code: str
    key_id: str
    mac: str
    link: str


@dataclass(frozen=True, slots=True)
class _Rendered:
    message: Message
    provider: str
    event: str  # the audit event of a queued message: cls or cs
    queued: bool  # written to the outbox; else an SMS for a real provider, sent after commit


@dataclass(frozen=True, slots=True)
class _Issued:
    challenge_id: str
    code: str
    link: str
    phantom: bool


def _validate(cmd: StartCommand, config: TenantConfig) -> _Request:
    client, connection = _resolve(cmd, config)
    channel = connection.channel
    identifier = _identifier(cmd, channel)
    redirect_uri = cmd.auth_params.get("redirect_uri")
    if redirect_uri is not None and redirect_uri not in client.callbacks:
        raise RedirectNotAllowed()
    return _Request(
        client=client,
        connection=connection,
        identifier=identifier,
        send=cmd.send if channel.links else "code",
        channel=channel,
        auth_params={**_connection_auth_params(connection), **cmd.auth_params},
        credentials=ClientCredentials(
            secret=_text(cmd.client_secret),
            basic=cmd.basic_auth,
            assertion=_text(cmd.client_assertion),
            assertion_type=_text(cmd.client_assertion_type),
        ),
    )


async def start_passwordless(
    cmd: StartCommand, config: TenantConfig, deps: StartDeps
) -> StartResult:
    req = _validate(cmd, config)
    test = config.tenant.test_identity(req.connection.name, req.identifier, deps.clock.now())
    fresh = _new_code(cmd, req, deps, test)
    # A phantom's message is rendered like a real one, so that its answer takes as long.
    rendered = _render(cmd, req, fresh, config, deps) if test is None else None
    # One transaction, in the order of §12.2: client authentication → rate limits → send.
    async with deps.uow() as uow:
        authenticated = False
        if not cmd.trusted and req.client.is_confidential:
            await authenticate_client(
                req.client,
                req.credentials,
                issuer=cmd.origin + "/",
                assertions=uow.assertions,
                now=deps.clock.now(),
            )
            authenticated = True
        rate_limit = await deps.limits.admit_start(
            config.tenant,
            req.connection,
            req.identifier,
            limit_ip(cmd.request, req.client, authenticated=authenticated),
            _limit_audit(cmd, config, req),
            test_identity=test is not None,
            uow=uow,
        )
        now = deps.clock.now()
        issued = await _issue_code(uow, req, config, fresh, now)
        audit = _audit_base(cmd, config, req, issued)
        sms_now: Message | None = None
        if rendered is None:  # a test identity's fixed code: nothing is sent, the use is audited
            event = req.channel.sent_event
            tested = replace(audit, details={**audit.details, "test_identity": True})
            await uow.audit.add(_event(tested, event, description=TEST_IDENTITY_TEXT), now)
        else:
            # A phantom answers like any other start and sends nothing (§12.5). It writes its
            # message like a real one, in a savepoint that it then rolls back, so that its
            # answer takes as long.
            async with uow.savepoint(keep=not issued.phantom):
                await _queue_message(uow, req, issued, config, rendered, audit, now)
            if not issued.phantom and not rendered.queued:
                sms_now = rendered.message
        await uow.commit()
    if sms_now is not None:
        await _send_sms(deps, config, req.connection, sms_now, cmd.request, issued, audit)
    elif test is None and issued.phantom and _synchronous_sms(req):
        # A real send would wait for the provider: take as long, so time tells nothing.
        await asyncio.sleep(deps.sms_latency.sample(req.connection.id))
    elif test is None and req.channel is Channel.EMAIL and not issued.phantom:
        deps.outbox_signal.notify()
    return StartResult(
        id=issued.challenge_id,
        channel=req.channel,
        identifier=req.identifier,
        request_language=cmd.request_language,
        rate_limit=rate_limit,
    )


def _limit_audit(cmd: StartCommand, config: TenantConfig, req: _Request) -> AuditEvent:
    """The context of a refusal's audit event (no code exists yet)."""
    return AuditEvent(
        tenant_id=config.tenant.id,
        type="",
        ip=cmd.request.ip,
        user_agent=cmd.request.user_agent,
        client_id=req.client.client_id,
        connection=req.connection.name,
        user_name=req.identifier,
        user_id="",
        details={"strategy": req.connection.strategy, "client_name": req.client.name},
    )


def _new_code(
    cmd: StartCommand, req: _Request, deps: StartDeps, test: TestIdentity | None
) -> _Code:
    challenge_id = new_id()
    code = test.code if test is not None else new_code(req.connection.code_length)
    key_id, mac = deps.keyring.code_mac(challenge_id, code)
    link = build_link(cmd.origin, req.connection, req.client, req.identifier, code, req.auth_params)
    return _Code(challenge_id=challenge_id, code=code, key_id=key_id, mac=mac, link=link)


def _render(
    cmd: StartCommand, req: _Request, fresh: _Code, config: TenantConfig, deps: StartDeps
) -> _Rendered:
    """The message. Email (and SMS on the outbox provider) is queued in the outbox; an SMS
    for a real provider is sent after the commit."""
    context = TemplateContext(
        code=fresh.code,
        link=fresh.link,
        application_name=req.client.name,
        request_language=cmd.request_language,
        send=req.send,
        recipient=req.identifier,
        lifetime_seconds=req.connection.code_lifetime,
    )
    if req.channel is Channel.EMAIL:
        provider = config.email_provider
        sender = (provider.default_from_address if provider else None) or DEFAULT_SENDER
        message = deps.renderer.email(req.connection, context, sender)
        provider_name = provider.name if provider is not None and provider.enabled else "none"
        return _Rendered(message, provider_name, req.channel.sent_event, queued=True)
    message = deps.renderer.sms(req.connection, context)
    options = req.connection.options
    sms_provider = options.provider if isinstance(options, SmsOptions) else OUTBOX_PROVIDER
    queued = sms_provider == OUTBOX_PROVIDER
    return _Rendered(message, sms_provider, req.channel.sent_event, queued=queued)


async def _issue_code(
    uow: UnitOfWork, req: _Request, config: TenantConfig, fresh: _Code, now: datetime
) -> _Issued:
    """Store the new code (as an HMAC; a test identity's fixed one) and void the identity's
    earlier ones."""
    tenant_id, connection = config.tenant.id, req.connection
    phantom = connection.disable_signup and not await uow.users.exists(
        tenant_id, connection.id, req.identifier
    )
    await uow.challenges.void_pending(tenant_id, connection.id, req.identifier, now)
    await uow.challenges.add(
        Challenge(
            id=fresh.challenge_id,
            tenant_id=tenant_id,
            connection_id=connection.id,
            client_id=req.client.client_id,
            identifier=req.identifier,
            code_hmac=fresh.mac,
            key_id=fresh.key_id,
            send=req.send,
            created_at=now,
            expires_at=now + timedelta(seconds=connection.code_lifetime),
            phantom=phantom,
            auth_params=req.auth_params,
        )
    )
    return _Issued(
        challenge_id=fresh.challenge_id, code=fresh.code, link=fresh.link, phantom=phantom
    )


async def _queue_message(
    uow: UnitOfWork,
    req: _Request,
    issued: _Issued,
    config: TenantConfig,
    rendered: _Rendered,
    audit: AuditEvent,
    now: datetime,
) -> None:
    if not rendered.queued:
        return
    await uow.outbox.add(
        config.tenant.id,
        rendered.message,
        provider=rendered.provider,
        challenge_id=issued.challenge_id,
        code=issued.code,
        link=issued.link if req.channel.links else None,
        now=now,
    )
    await uow.audit.add(_event(audit, rendered.event), now)


async def _send_sms(
    deps: StartDeps,
    config: TenantConfig,
    connection: Connection,
    message: Message,
    request: RequestInfo,
    issued: _Issued,
    audit: AuditEvent,
) -> None:
    began = time.monotonic()
    try:
        await deps.sms.send(connection, message, request)
    except DeliveryFailed as exc:
        async with deps.uow() as uow:
            now = deps.clock.now()
            await uow.challenges.void(config.tenant.id, issued.challenge_id, now)
            await uow.audit.add(_event(audit, "fn", description=_failure_text(exc)), now)
            await uow.commit()
        raise
    finally:
        deps.sms_latency.observe(connection.id, time.monotonic() - began)
    async with deps.uow() as uow:
        await uow.audit.add(_event(audit, "cs"), deps.clock.now())
        await uow.commit()


def _failure_text(exc: DeliveryFailed) -> str:
    if exc.provider_message:
        return f"{exc.provider_message} (Code: {exc.provider_code})"
    return f"SMS provider failure: {exc.kind.value} {exc.status}"


def _audit_base(
    cmd: StartCommand, config: TenantConfig, req: _Request, issued: _Issued
) -> AuditEvent:
    masked_link = issued.link.replace(
        f"verification_code={issued.code}", "verification_code=******"
    )
    telemetry = cmd.request.auth0_client
    return AuditEvent(
        tenant_id=config.tenant.id,
        type="",
        ip=cmd.request.ip,
        user_agent=cmd.request.user_agent,
        client_id=req.client.client_id,
        connection=req.connection.name,
        user_name=req.identifier,
        user_id="",
        details={
            "link": masked_link,
            "send": req.send,
            "request_language": cmd.request_language,
            "strategy": req.connection.strategy,
            "strategy_type": "passwordless",
            "client_name": req.client.name,
            **({"auth0_client": dict(telemetry)} if telemetry else {}),
        },
    )


def _event(base: AuditEvent, type_: str, *, description: str = "") -> AuditEvent:
    texts = {"cls": "Code/Link Sent", "cs": "Code Sent", "fn": "Failed sending notification"}
    return base.but(type_, description or texts.get(type_, ""))
