"""``/passwordless/verify_redirect``: the magic link (docs/specs/auth0-wire.md §4, §12.9).

GET and HEAD only show a confirmation page (mail scanners fetch links; they must burn
nothing). The POST from that page checks and consumes the code with the same counters as the
OTP grant, signs the browser in, and answers like ``/authorize`` would. A GET continues at
once when it carries the hosted page's transaction cookie for this very code, or when the
connection sets ``magic_link_confirmation: false``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from nopass.core.errors import (
    CodeRejected,
    ConnectionIssue,
    ConnectionProblem,
    IdentityBlocked,
    RateLimited,
    UserBlocked,
)
from nopass.core.keyring import opaque_hash
from nopass.core.models import AuditEvent, Connection, TenantConfig
from nopass.core.options import EmailOptions
from nopass.flows.authorization_request import (
    AuthorizationResponse,
    AuthorizeFailed,
    AuthorizeParams,
    AuthorizeRequest,
    BrowserDeps,
    parse_authorize,
)
from nopass.flows.code_check import BROWSER_FAILURES, CodeAttempt, normalize_identifier
from nopass.flows.session import sign_in


@dataclass(frozen=True, slots=True)
class LinkParams:
    """A magic link's parameters as sent (``api/commands.py`` builds it): the link's own, and
    the authorization request it carries (its ``connection`` is the link's, not a request
    parameter)."""

    authorize: AuthorizeParams
    connection: str | None = None
    email: str | None = None
    phone_number: str | None = None
    verification_code: str | None = None

    def identifier(self, field: str) -> str | None:
        """The identifier of the channel whose link parameter is ``field``."""
        return self.email if field == "email" else self.phone_number


LINK_PARAMETERS = ("verification_code", "connection", "email", "phone_number")


@dataclass(frozen=True, slots=True)
class MagicLink:
    request: AuthorizeRequest
    connection: Connection
    identifier: str | None
    code: str


@dataclass(frozen=True, slots=True)
class LinkOutcome:
    response: AuthorizationResponse | None  # None: answered with an error (see ``error``)
    session_token: str | None
    error: Exception | None = None
    request: AuthorizeRequest | None = None


def read_link(params: LinkParams, config: TenantConfig) -> MagicLink:
    """Validate a link's parameters. Raises ``RedirectRejected`` (HTML page) or, once the
    redirect is known good, ``AuthorizeFailed`` (back to the client)."""
    auth = params.authorize
    if auth.response_type is None:
        auth = replace(auth, response_type="code")
    request = parse_authorize(auth, config)
    name = params.connection
    connection = config.connections.get(name) if name is not None else None
    if connection is None or not connection.is_passwordless:
        raise AuthorizeFailed(request, ConnectionProblem(ConnectionIssue.NOT_FOUND))
    if request.client_id not in connection.enabled_clients:
        raise AuthorizeFailed(request, ConnectionProblem(ConnectionIssue.DISABLED))
    raw = params.identifier(connection.channel.field)
    identifier = normalize_identifier(connection, raw) if raw is not None else None
    return MagicLink(
        request=request,
        connection=connection,
        identifier=identifier,
        code=params.verification_code or "",
    )


def confirmation_needed(
    link: MagicLink, transaction_challenge: str | None, latest_challenge: str | None
) -> bool:
    options = link.connection.options
    if isinstance(options, EmailOptions) and not options.magic_link_confirmation:
        return False
    return transaction_challenge is None or transaction_challenge != latest_challenge


async def redeem_link(
    link: MagicLink,
    config: TenantConfig,
    issuer: str,
    deps: BrowserDeps,
    *,
    ip: str | None,
    audit: AuditEvent,
) -> tuple[AuthorizationResponse, str]:
    """Consume the link's code and sign in: ``(authorization response, session token)``.
    Raises ``AuthorizeFailed`` for failures that go back to the client."""
    attempt = CodeAttempt(
        connection=link.connection,
        username=link.identifier,
        code=link.code,
        limit_ip=ip,
        user_ip=ip,
        audit=audit,
        failures=BROWSER_FAILURES,
    )
    await deps.keys.signing_key(config.tenant.id)  # never create a key inside the transaction
    async with deps.uow() as uow:
        try:
            login = await deps.codes.sign_in(uow, config.tenant, attempt)
        except (CodeRejected, IdentityBlocked, RateLimited, UserBlocked) as exc:
            raise AuthorizeFailed(link.request, exc) from exc
        response, session = await sign_in(
            uow, deps, config, issuer, link.request, login, audit=audit
        )
        await uow.commit()
    return response, session


async def latest_challenge_id(
    deps: BrowserDeps, config: TenantConfig, link: MagicLink, transaction_token: str | None
) -> tuple[str | None, str | None]:
    """``(the transaction's challenge, the identity's latest challenge)`` for the GET rule."""
    if transaction_token is None or link.identifier is None:
        return None, None
    async with deps.uow() as uow:
        now = deps.clock.now()
        tx = await uow.transactions.find(config.tenant.id, opaque_hash(transaction_token), now)
        latest = await uow.challenges.latest(config.tenant.id, link.connection.id, link.identifier)
    return (tx.challenge_id if tx else None), (latest.id if latest else None)
