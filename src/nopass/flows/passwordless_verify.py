"""``POST /passwordless/verify`` (docs/specs/auth0-wire.md §5.1, §12.10): auth0.js checks a code
before it sends the browser to ``/passwordless/verify_redirect`` with the same code, so the check
must not consume it. Failures count toward the code's 3 attempts and the identity's window, as on
every other endpoint (``flows.code_check``)."""

from __future__ import annotations

from dataclasses import dataclass

from nopass.core.errors import (
    UnknownClient,
)
from nopass.core.models import TenantConfig
from nopass.core.ports import RequestInfo
from nopass.flows.audit import login_event
from nopass.flows.authorization_request import BrowserDeps
from nopass.flows.client_auth import ClientCredentials, authenticate_client
from nopass.flows.code_check import VERIFY_FAILURES, CodeAttempt, realm_connection
from nopass.flows.limits import limit_ip


@dataclass(frozen=True, slots=True)
class VerifyCommand:
    """A parsed ``/passwordless/verify`` request (``api/commands.py`` builds it)."""

    client_id: str
    credentials: ClientCredentials
    connection: str
    username: str
    code: str
    issuer: str
    request: RequestInfo


async def verify_passwordless(cmd: VerifyCommand, config: TenantConfig, deps: BrowserDeps) -> None:
    """Check the identity's latest code without consuming it."""
    client = config.clients.get(cmd.client_id)
    if client is None:
        raise UnknownClient(cmd.client_id)
    async with deps.uow() as uow:
        if client.is_confidential:
            await authenticate_client(
                client,
                cmd.credentials,
                issuer=cmd.issuer,
                assertions=uow.assertions,
                now=deps.clock.now(),
            )
        connection = realm_connection(config, client, cmd.connection)
        attempt = CodeAttempt(
            connection=connection,
            username=cmd.username,
            code=cmd.code,
            limit_ip=limit_ip(cmd.request, client, authenticated=True),
            user_ip=cmd.request.ip,
            audit=login_event(config.tenant.id, cmd.request, client, connection, cmd.username),
            failures=VERIFY_FAILURES,
        )
        await deps.codes.confirm(uow, config.tenant, attempt)
        await uow.commit()
