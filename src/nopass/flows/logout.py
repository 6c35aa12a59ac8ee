"""Logging out: Auth0's ``/v2/logout`` and OpenID Connect RP-Initiated Logout 1.0
(``/oidc/logout``, the discovery document's ``end_session_endpoint``).

RP-Initiated Logout names the client by ``id_token_hint`` (an ID token this tenant signed;
an expired one is still a hint, §2), by ``client_id``, or by both when they agree. A
``post_logout_redirect_uri`` must be exactly one of that client's ``allowed_logout_urls``;
``state`` then goes back on it. Anything else that is wrong gets an error page, never a
redirect, and leaves the session alone. ``logout_hint`` and ``ui_locales`` are accepted
(the latter picks the page's language). Every logout that does not fail closes the
browser's nopass session; closing a live one is audited ``slo`` (Auth0 "Success Logout"),
a refused request ``flo``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, replace
from urllib.parse import urlencode, urlsplit, urlunsplit

from nopass.core.errors import InvalidIdTokenHint, RedirectRejected
from nopass.core.keyring import opaque_hash
from nopass.core.models import AuditEvent, Client, Resolved, TenantConfig
from nopass.flows.authorization_request import BrowserDeps
from nopass.tokens.jwt import unverified_kid, verify_id_token_hint

log = logging.getLogger("nopass.logout")
PARAMETERS = (
    "id_token_hint",
    "client_id",
    "post_logout_redirect_uri",
    "state",
    "logout_hint",
    "ui_locales",
)


@dataclass(frozen=True, slots=True)
class LogoutRequest:
    """The RP-Initiated Logout parameters this server acts on (§2)."""

    id_token_hint: str | None = None
    client_id: str | None = None
    post_logout_redirect_uri: str | None = None
    state: str | None = None
    ui_locales: str | None = None


def parse_logout(params: Mapping[str, object]) -> LogoutRequest:
    """The request of a query or form: each known parameter at most once, as text.
    Unknown parameters (``federated``, ...) are ignored."""
    values: dict[str, str | None] = {}
    for name in PARAMETERS:
        value = params.get(name)
        if value is not None and not isinstance(value, str):  # repeated, or a[b]= nesting
            raise RedirectRejected("repeated_parameter", uri=name)
        values[name] = value or None
    return LogoutRequest(
        id_token_hint=values["id_token_hint"],
        client_id=values["client_id"],
        post_logout_redirect_uri=values["post_logout_redirect_uri"],
        state=values["state"],
        ui_locales=values["ui_locales"],
    )


def _hinted_client_id(claims: Mapping[str, object]) -> str:
    """The client an ID token was issued to: its ``aud``, or ``azp`` among several."""
    aud = claims.get("aud")
    if isinstance(aud, str):
        return aud
    azp = claims.get("azp")
    if isinstance(aud, list) and isinstance(azp, str) and azp in aud:
        return azp
    if isinstance(aud, list) and len(aud) == 1 and isinstance(aud[0], str):
        return aud[0]
    raise InvalidIdTokenHint("no single audience")


async def _named_client(
    deps: BrowserDeps, tenant: Resolved, request: LogoutRequest
) -> Client | None:
    config = tenant.config
    client_id = request.client_id
    if request.id_token_hint is not None:
        try:
            kid = unverified_kid(request.id_token_hint)  # a key rotated in by another process
            keys = await deps.keys.public_keys(config.tenant.id, kid=kid)
            claims = verify_id_token_hint(request.id_token_hint, keys, issuer=tenant.issuer)
            hinted = _hinted_client_id(claims)
        except InvalidIdTokenHint as exc:
            log.info("logout_id_token_hint_refused: %s", exc.reason)
            raise RedirectRejected("invalid_id_token_hint") from exc
        if client_id is not None and client_id != hinted:
            raise RedirectRejected("hint_client_mismatch", client_id=client_id)
        client_id = hinted
    if client_id is None:
        return None
    client = config.clients.get(client_id)
    if client is None:
        raise RedirectRejected("unknown_client", client_id=client_id)
    return client


def _with_state(uri: str, state: str | None) -> str:
    if state is None:
        return uri
    parts = urlsplit(uri)
    query = f"{parts.query}&" if parts.query else ""
    return urlunsplit(parts._replace(query=query + urlencode({"state": state})))


async def end_session(
    deps: BrowserDeps, tenant_id: str, session_token: str | None, audit: AuditEvent
) -> None:
    """Revoke the browser's session; a live one is audited ``slo`` with its user."""
    if not session_token:
        return
    token_hash = opaque_hash(session_token)
    async with deps.uow() as uow:
        now = deps.clock.now()
        session = await uow.sessions.find(tenant_id, token_hash, now)
        await uow.sessions.revoke(tenant_id, token_hash, now)
        if session is not None:
            event = audit.but("slo", "Success Logout", user_id=session.user_id)
            await uow.audit.add(event, now)
        await uow.commit()


@dataclass(frozen=True, slots=True)
class LoggedOut:
    """Where the browser goes (the allowed ``post_logout_redirect_uri`` with ``state``), or
    ``None`` for the signed-out page, in the language of ``ui_locales``."""

    redirect_to: str | None
    ui_locales: str | None


async def rp_logout(
    deps: BrowserDeps,
    tenant: Resolved,
    params: Mapping[str, object],
    session_token: str | None,
    audit: AuditEvent,
) -> LoggedOut:
    """Check an RP-Initiated Logout request (query or form ``params``) and close the
    session. A refused request raises ``RedirectRejected`` and changes nothing but the
    ``flo`` audit entry."""
    client_id: object = params.get("client_id")
    try:
        request = parse_logout(params)
        client = await _named_client(deps, tenant, request)
        target = _target(client, request.post_logout_redirect_uri)
    except RedirectRejected as exc:
        named = client_id if isinstance(client_id, str) else None
        await _audit_refusal(deps, tenant.config, audit, exc, named)
        raise
    if client is not None:
        audit = replace(audit, client_id=client.client_id)
    await end_session(deps, tenant.config.tenant.id, session_token, audit)
    redirect_to = _with_state(target, request.state) if target is not None else None
    return LoggedOut(redirect_to=redirect_to, ui_locales=request.ui_locales)


def _target(client: Client | None, uri: str | None) -> str | None:
    if uri is None:
        return None
    if client is None:
        raise RedirectRejected("logout_client_missing", uri=uri)
    if uri not in client.allowed_logout_urls:
        raise RedirectRejected("logout_url_mismatch", client_id=client.client_id, uri=uri)
    return uri


async def _audit_refusal(
    deps: BrowserDeps,
    config: TenantConfig,
    audit: AuditEvent,
    exc: RedirectRejected,
    client_id: str | None,
) -> None:
    known = client_id if client_id in config.clients else None
    event = replace(audit, client_id=exc.client_id if exc.client_id in config.clients else known)
    async with deps.uow() as uow:
        await uow.audit.add(event.but("flo", f"Failed Logout: {exc.reason}"), deps.clock.now())
        await uow.commit()


def legacy_target(config: TenantConfig, params: Mapping[str, str | list[str]]) -> str | None:
    """``/v2/logout``'s ``returnTo``, only when the one ``client_id`` allow-lists it exactly."""
    client_ids = params.get("client_id")
    target = params.get("returnTo")
    client = config.clients.get(client_ids) if isinstance(client_ids, str) else None
    if client is not None and isinstance(target, str) and target in client.allowed_logout_urls:
        return target
    return None
