"""Authorization requests and responses (RFC 6749 §4.1-4.2, OIDC Core §3, RFC 7636, OAuth 2.0
Form Post and Multiple Response Types, auth0.js ``web_message``), shared by the hosted login
page, magic links and login tickets.

The ``redirect_uri`` is checked first and by exact string match (RFC 9700 §2.1); until it is
valid nothing redirects (``RedirectRejected``), afterwards errors travel back through the
response channel with ``state`` (``AuthorizeInvalid``). Public clients must use PKCE with
S256 for ``code``; ID tokens from the front channel need a ``nonce``. Tokens never travel in
the query (Multiple Response Types §5): ``response_mode=query`` is refused for every response
type but ``code``, and that refusal goes back in the fragment.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta

from nopass.core.clock import Clock
from nopass.core.errors import (
    AuthorizeInvalid,
    AuthorizeProblem,
    RedirectRejected,
    UnknownAudience,
)
from nopass.core.keyring import Keyring, opaque_hash
from nopass.core.models import AuthorizationCode, Client, TenantConfig, User
from nopass.core.options import DEFAULT_ACCESS_TOKEN_LIFETIME
from nopass.core.otp import new_id
from nopass.core.ports import KeyStore, UnitOfWork, UnitOfWorkFactory
from nopass.flows.code_check import CodeCheck
from nopass.flows.issue import Grant, issue_tokens
from nopass.flows.limits import Limits

CODE_LIFETIME = timedelta(seconds=60)
RESPONSE_TYPES = {
    "code": frozenset({"code"}),
    "token": frozenset({"token"}),
    "id_token": frozenset({"id_token"}),
    "id_token token": frozenset({"id_token", "token"}),
}
RESPONSE_MODES = ("query", "fragment", "form_post", "web_message")
IMPLICIT_ACCESS_LIFETIME = 7200


@dataclass(frozen=True, slots=True)
class BrowserDeps:
    """What the browser flows (links, hosted page, tickets) need."""

    uow: UnitOfWorkFactory
    keyring: Keyring
    keys: KeyStore
    clock: Clock
    limits: Limits

    @property
    def codes(self) -> CodeCheck:
        return CodeCheck(self.keyring, self.limits, self.clock)


@dataclass(frozen=True, slots=True)
class AuthorizeRequest:
    client_id: str
    redirect_uri: str
    response_type: str  # normalised: "code", "token", "id_token" or "id_token token"
    response_mode: str
    scope: str = "openid"
    state: str | None = None
    nonce: str | None = None
    audience: str | None = None
    code_challenge: str | None = None
    code_challenge_method: str | None = None
    prompt: str | None = None
    connection: str | None = None
    ui_locales: str | None = None
    login_hint: str | None = None
    send: str | None = None

    @property
    def types(self) -> frozenset[str]:
        return RESPONSE_TYPES[self.response_type]

    def as_params(self) -> dict[str, str]:
        return {k: v for k, v in asdict(self).items() if v is not None}

    @classmethod
    def from_params(cls, params: Mapping[str, str]) -> AuthorizeRequest:
        names = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in params.items() if k in names})


@dataclass(frozen=True, slots=True)
class AuthorizeParams:
    """An authorization request as the client sent it: each parameter at most once, as text,
    empty read as absent, nothing validated yet (``api/commands.py`` builds it from a query;
    ``of`` from a stored transaction's parameters). ``parse_authorize`` judges it."""

    client_id: str | None = None
    redirect_uri: str | None = None
    response_type: str | None = None
    response_mode: str | None = None
    scope: str | None = None
    state: str | None = None
    nonce: str | None = None
    audience: str | None = None
    code_challenge: str | None = None
    code_challenge_method: str | None = None
    prompt: str | None = None
    connection: str | None = None
    ui_locales: str | None = None
    login_hint: str | None = None
    send: str | None = None

    @classmethod
    def of(cls, params: Mapping[str, str]) -> AuthorizeParams:
        return cls(**{k: v or None for k, v in params.items() if k in AUTHORIZE_PARAMETERS})


AUTHORIZE_PARAMETERS = tuple(AuthorizeParams.__dataclass_fields__)


class AuthorizeFailed(Exception):
    """A failure to report back through a validated request's redirect, with its ``state``."""

    def __init__(self, request: AuthorizeRequest, cause: Exception) -> None:
        super().__init__(str(cause))
        self.request = request
        self.cause = cause


@dataclass(frozen=True, slots=True)
class AuthorizationResponse:
    """Where and how the browser goes back to the client."""

    redirect_uri: str
    mode: str  # query | fragment | form_post | web_message
    params: dict[str, str]


def checked_redirect(client: Client, redirect_uri: str | None) -> str:
    """The exact callback to use, or ``RedirectRejected``. Without a ``redirect_uri`` a
    client with exactly one callback gets that one."""
    if redirect_uri is None:
        if len(client.callbacks) == 1:
            return client.callbacks[0]
        raise RedirectRejected("missing_redirect_uri", client_id=client.client_id)
    if redirect_uri not in client.callbacks:
        raise RedirectRejected("callback_mismatch", client_id=client.client_id, uri=redirect_uri)
    return redirect_uri


def parse_authorize(params: AuthorizeParams, config: TenantConfig) -> AuthorizeRequest:
    client_id = params.client_id
    if client_id is None:
        raise RedirectRejected("missing_client_id")
    client = config.clients.get(client_id)
    if client is None:
        raise RedirectRejected("unknown_client", client_id=client_id)
    redirect_uri = checked_redirect(client, params.redirect_uri)
    raw_type = " ".join(sorted((params.response_type or "").split()))
    mode = params.response_mode
    default_mode = "query" if raw_type == "code" else "fragment"
    usable_mode = mode in RESPONSE_MODES and not (mode == "query" and default_mode != "query")
    request = AuthorizeRequest(
        client_id=client_id,
        redirect_uri=redirect_uri,
        response_type=raw_type if raw_type in RESPONSE_TYPES else "code",
        response_mode=mode if mode is not None and usable_mode else default_mode,
        scope=params.scope or "openid",
        state=params.state,
        nonce=params.nonce,
        audience=params.audience,
        code_challenge=params.code_challenge,
        code_challenge_method=params.code_challenge_method,
        prompt=params.prompt,
        connection=params.connection,
        ui_locales=params.ui_locales,
        login_hint=params.login_hint,
        send=params.send,
    )
    # From here on errors can go back to the client: the request knows where.
    try:
        if raw_type not in RESPONSE_TYPES:
            raise AuthorizeInvalid(AuthorizeProblem.UNSUPPORTED_RESPONSE_TYPE, raw_type)
        if mode is not None and not usable_mode:  # never tokens in the query
            raise AuthorizeInvalid(AuthorizeProblem.UNSUPPORTED_RESPONSE_MODE, mode)
        validate(request, client, config)
    except (AuthorizeInvalid, UnknownAudience) as exc:
        raise AuthorizeFailed(request, exc) from exc
    return request


def validate(request: AuthorizeRequest, client: Client, config: TenantConfig) -> None:
    types = request.types
    grant = "authorization_code" if "code" in types else "implicit"
    if grant not in client.grant_types:
        raise AuthorizeInvalid(AuthorizeProblem.GRANT_NOT_ALLOWED, grant)
    if "id_token" in types and not request.nonce:
        raise AuthorizeInvalid(AuthorizeProblem.NONCE_REQUIRED)
    if "code" in types:
        method = request.code_challenge_method
        if request.code_challenge is not None and method not in (None, "S256"):
            raise AuthorizeInvalid(AuthorizeProblem.PKCE_METHOD, str(method))
        if request.code_challenge is None and request.code_challenge_method is not None:
            raise AuthorizeInvalid(AuthorizeProblem.PKCE_REQUIRED)
        if client.auth_method.value == "none" and request.code_challenge is None:
            raise AuthorizeInvalid(AuthorizeProblem.PKCE_REQUIRED)
        if request.code_challenge is not None and method is None:
            raise AuthorizeInvalid(AuthorizeProblem.PKCE_METHOD, "plain")
    if request.audience is not None and request.audience not in config.resource_servers:
        raise UnknownAudience(request.audience)
    if request.connection is not None:
        connection = config.connections.get(request.connection)
        if (
            connection is None
            or not connection.is_passwordless
            or client.client_id not in connection.enabled_clients
        ):
            raise AuthorizeInvalid(AuthorizeProblem.CONNECTION, request.connection)


def _grant(config: TenantConfig, client: Client, request: AuthorizeRequest) -> Grant:
    scopes = list(dict.fromkeys(request.scope.split())) or ["openid"]
    audience = request.audience or config.tenant.default_audience
    api = config.resource_servers.get(audience) if audience else None
    implicit = "code" not in request.types
    lifetime = api.token_lifetime if api else DEFAULT_ACCESS_TOKEN_LIFETIME
    if implicit:
        lifetime = min(lifetime, IMPLICIT_ACCESS_LIFETIME)
    may_refresh = not implicit and "refresh_token" in client.grant_types
    if api is not None:
        may_refresh = may_refresh and api.allow_offline_access
    if "offline_access" in scopes and not may_refresh:
        scopes.remove("offline_access")
    return Grant(
        scopes=scopes,
        audience=audience,
        access_lifetime=lifetime,
        offline="offline_access" in scopes,
    )


async def respond(
    uow: UnitOfWork,
    keys: KeyStore,
    config: TenantConfig,
    issuer: str,
    request: AuthorizeRequest,
    user: User,
    *,
    auth_time: datetime,
    now: datetime,
) -> AuthorizationResponse:
    """The successful authorization response for a signed-in user (in ``uow``'s transaction:
    the authorization code is stored there)."""
    client = config.clients[request.client_id]
    grant = _grant(config, client, request)
    params: dict[str, str] = {}
    if "code" in request.types:
        code = secrets.token_urlsafe(32)
        await uow.authorization_codes.add(
            config.tenant.id,
            AuthorizationCode(
                id=new_id(),
                client_id=client.client_id,
                user_id=user.user_id,
                redirect_uri=request.redirect_uri,
                scope=" ".join(grant.scopes),
                audience=grant.audience,
                nonce=request.nonce,
                code_challenge=request.code_challenge,
                code_challenge_method=request.code_challenge_method,
                auth_time=auth_time,
                created_at=now,
                expires_at=now + CODE_LIFETIME,
            ),
            opaque_hash(code),
        )
        params["code"] = code
    else:
        tokens = await issue_tokens(
            keys,
            config,
            issuer,
            client,
            user,
            grant,
            now,
            None,
            access="token" in request.types,
            nonce=request.nonce,
            auth_time=auth_time,
            with_at_hash=True,
        )
        if tokens.access_token is not None:
            params["access_token"] = tokens.access_token
            params["token_type"] = "Bearer"  # noqa: S105 (the OAuth token type, no secret)
            params["expires_in"] = str(tokens.expires_in)
            params["scope"] = tokens.scope
        if tokens.id_token is not None:
            params["id_token"] = tokens.id_token
    if request.state is not None:
        params["state"] = request.state
    return AuthorizationResponse(request.redirect_uri, request.response_mode, params)


def error_response(
    request: AuthorizeRequest, error: str, description: str
) -> AuthorizationResponse:
    params = {"error": error, "error_description": description}
    if request.state is not None:
        params["state"] = request.state
    return AuthorizationResponse(request.redirect_uri, request.response_mode, params)
