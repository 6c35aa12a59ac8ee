"""``POST /passwordless/verify`` (auth0-wire.md §5.1, §12.10): auth0.js checks a code before it
sends the browser to ``/passwordless/verify_redirect`` with the same code, so the check must not
consume it. Failures count toward the code's 3 attempts and the identity's window, as on every
other endpoint (``flows.code_check``)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from nopass.core.errors import (
    MissingProperty,
    UnknownClient,
)
from nopass.core.models import TenantConfig
from nopass.core.ports import RequestInfo
from nopass.flows.audit import login_event
from nopass.flows.authorize import BrowserDeps
from nopass.flows.client_auth import ClientCredentials, authenticate_client
from nopass.flows.code_check import VERIFY_FAILURES, CodeAttempt, realm_connection
from nopass.flows.limits import limit_ip
from nopass.flows.token import param


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
        attempt = CodeAttempt(
            connection=connection,
            username=username,
            code=code,
            limit_ip=limit_ip(cmd.request, client, authenticated=True),
            user_ip=cmd.request.ip,
            audit=login_event(config.tenant.id, cmd.request, client, connection, username),
            failures=VERIFY_FAILURES,
        )
        await deps.codes.confirm(uow, config.tenant, attempt)
        await uow.commit()
