"""``POST /passwordless/verify`` (auth0-wire.md §5.1, §12.10): auth0.js checks a code before it
sends the browser to ``/passwordless/verify_redirect`` with the same code, so the check must not
consume it. Failures count toward the code's 3 attempts and the identity's window, as on every
other endpoint (``flows.verify``)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from nopass.core.errors import (
    CodeFailure,
    CodeRejected,
    ConnectionIssue,
    ConnectionProblem,
    MissingProperty,
    UnknownClient,
)
from nopass.core.models import Client, Connection, TenantConfig
from nopass.core.ports import RequestInfo
from nopass.flows.audit import login_event
from nopass.flows.authorize import BrowserDeps
from nopass.flows.client_auth import ClientCredentials, authenticate_client
from nopass.flows.limits import limit_ip
from nopass.flows.token import param
from nopass.flows.verify import check_code, check_identity_window, normalize_identifier


@dataclass(frozen=True, slots=True)
class VerifyCommand:
    body: Mapping[str, object]
    basic_auth: tuple[str, str] | None
    issuer: str
    request: RequestInfo


def _first(body: Mapping[str, object], *names: str) -> str | None:
    for name in names:
        value = param(body, name)
        if value is not None:
            return value
    return None


def _present(value: str | None, name: str) -> str:
    if value is None:
        raise MissingProperty(name)
    return value


def realm_connection(config: TenantConfig, client: Client, name: str) -> Connection:
    connection = config.connections.get(name)
    if connection is None or not connection.is_passwordless:
        raise ConnectionProblem(ConnectionIssue.NOT_FOUND)
    if client.client_id not in connection.enabled_clients:
        raise ConnectionProblem(ConnectionIssue.DISABLED)
    return connection


async def verify_passwordless(cmd: VerifyCommand, config: TenantConfig, deps: BrowserDeps) -> None:
    """Check the identity's latest code without consuming it. Accepts auth0.js' body
    ``{connection, verification_code, email|phone_number, client_id}`` and the reference's
    ``{grant_type: "password", username, password, connection, scope, client_id}``."""
    body = cmd.body
    basic_id = cmd.basic_auth[0] if cmd.basic_auth else None
    client_id = _present(param(body, "client_id") or basic_id, "client_id")
    realm = _present(param(body, "connection"), "connection")
    username = _present(_first(body, "username", "email", "phone_number"), "username")
    code = _present(_first(body, "password", "verification_code"), "password")
    client = config.clients.get(client_id)
    if client is None:
        raise UnknownClient(client_id)
    creds = ClientCredentials(
        secret=param(body, "client_secret"),
        basic=cmd.basic_auth,
        assertion=param(body, "client_assertion"),
        assertion_type=param(body, "client_assertion_type"),
    )
    async with deps.uow() as uow:
        if client.is_confidential:
            await authenticate_client(
                client, creds, issuer=cmd.issuer, assertions=uow.assertions, now=deps.clock.now()
            )
        connection = realm_connection(config, client, realm)
        audit = login_event(config.tenant.id, cmd.request, client, connection, username)
        identifier = normalize_identifier(connection, username)
        ip = limit_ip(cmd.request, client, authenticated=True)
        reservation = await deps.limits.reserve_verification(config.tenant, ip, audit, uow)
        now = deps.clock.now()
        try:
            if identifier is None:
                raise CodeRejected(CodeFailure.WRONG, connection.strategy)
            await check_identity_window(uow, config.tenant, connection, identifier, now)
            await check_code(uow, deps.keyring, config.tenant, connection, identifier, code, now)
        except CodeRejected as exc:
            await uow.audit.add(audit.but("fp", str(exc)), now)
            await uow.commit()
            raise
        # Right, but not consumed: the sign-in (and the breaker's count) comes with the link.
        await deps.limits.verified(
            reservation, config.tenant, connection, identifier, signed_in=False, uow=uow
        )
        await uow.commit()
