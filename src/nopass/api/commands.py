"""Request bodies and queries into the flows' typed commands, with Auth0's request errors
(docs/specs/auth0-wire.md §1.2, §3, §5.1, §5.2). Flows never see a raw body: every field arrives
here as a string of the right type or not at all, and the first problem raises its
``RequestRejected`` (or ``UnsupportedGrantType``) in the order Auth0 checks them.

Parameters follow §1.2: JSON ``null`` and the empty string mean absent; a value of another
type is refused (``InvalidType``), and so is a repeated form field (which ``api/body.py``
turns into a list). A query (``/authorize``, a magic link) is read the same way, but a
repeated parameter there is refused before anything can redirect (``repeated_parameter``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from nopass.core.errors import (
    BodyUnreadable,
    InvalidEnum,
    InvalidScope,
    InvalidType,
    MissingProperty,
    RedirectRejected,
    RequestRejected,
    UnknownProperties,
    UnsupportedGrantType,
    UnsupportedParameter,
)
from nopass.core.models import PASSWORDLESS_OTP_GRANT
from nopass.core.ports import RequestInfo
from nopass.flows.authorization_request import AUTHORIZE_PARAMETERS, AuthorizeParams
from nopass.flows.client_auth import ClientCredentials
from nopass.flows.cross_origin import CO_FIELDS, CrossOriginFields
from nopass.flows.magic_link import LINK_PARAMETERS, LinkParams
from nopass.flows.passwordless_verify import VerifyCommand
from nopass.flows.revoke import RevokeCommand
from nopass.flows.start import Sent, StartCommand
from nopass.flows.token import (
    CLIENT_CREDENTIALS_GRANT,
    REFRESH_GRANT,
    SUPPORTED_GRANTS,
    AuthorizationCodeGrant,
    ClientCredentialsGrant,
    OtpGrant,
    RefreshTokenGrant,
    TokenCommand,
)

Body = Mapping[str, object]
Basic = tuple[str, str] | None
START_PROPERTIES = (
    "client_id",
    "client_secret",
    "client_assertion",
    "client_assertion_type",
    "connection",
    "email",
    "phone_number",
    "send",
    "authParams",
    "captcha",
)
SEND_VALUES = ("link", "code", "link_ios", "link_android")


def param(body: Body, name: str) -> str | None:
    """A request parameter: JSON ``null`` and the empty string mean absent (§1.2)."""
    value = body.get(name)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise InvalidType(name, "array" if isinstance(value, list) else "other", "string")
    return value


def required(body: Body, name: str) -> str:
    value = param(body, name)
    if value is None:
        raise MissingProperty(name)
    return value


def first_of(body: Body, *names: str) -> str | None:
    """The first of several names a parameter goes by (auth0.js' and the reference's)."""
    for name in names:
        value = param(body, name)
        if value is not None:
            return value
    return None


def scope_of(body: Body) -> tuple[str, ...] | None:
    """``scope`` as a space-separated string or an array of them; None when not sent."""
    value = body.get("scope")
    if value is None or value == "":
        return None
    if isinstance(value, str):
        return tuple(value.split())
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return tuple(s for v in value for s in v.split())
    raise InvalidScope("Scope must be an array or a string")


def client_id_of(body: Body, basic: Basic) -> str:
    """``client_id`` from the body, else from HTTP Basic credentials."""
    client_id = param(body, "client_id") or (basic[0] if basic else None)
    if client_id is None:
        raise MissingProperty("client_id")
    return client_id


def credentials_of(body: Body, basic: Basic) -> ClientCredentials:
    return ClientCredentials(
        secret=param(body, "client_secret"),
        basic=basic,
        assertion=param(body, "client_assertion"),
        assertion_type=param(body, "client_assertion_type"),
    )


def token_command(body: Body, basic: Basic, *, issuer: str, request: RequestInfo) -> TokenCommand:
    """``POST /oauth/token``: ``grant_type`` → ``client_id`` → the grant's parameters."""
    grant_type = required(body, "grant_type")
    grant: OtpGrant | RefreshTokenGrant | AuthorizationCodeGrant | ClientCredentialsGrant
    if grant_type not in SUPPORTED_GRANTS:
        raise UnsupportedGrantType(grant_type)
    client_id = client_id_of(body, basic)
    if grant_type == PASSWORDLESS_OTP_GRANT:
        grant = OtpGrant(
            username=required(body, "username"),
            otp=required(body, "otp"),
            realm=required(body, "realm"),
            scope=scope_of(body),
            audience=param(body, "audience"),
        )
    elif grant_type == CLIENT_CREDENTIALS_GRANT:
        grant = client_credentials_grant(body)
    elif grant_type == REFRESH_GRANT:
        grant = RefreshTokenGrant(
            refresh_token=required(body, "refresh_token"), scope=scope_of(body)
        )
    else:
        grant = AuthorizationCodeGrant(
            code=required(body, "code"),
            redirect_uri=param(body, "redirect_uri"),
            code_verifier=param(body, "code_verifier"),
        )
    return TokenCommand(
        client_id=client_id,
        credentials=credentials_of(body, basic),
        grant=grant,
        issuer=issuer,
        request=request,
    )


def client_credentials_grant(body: Body) -> ClientCredentialsGrant:
    """``audience`` (or ``resource``) and ``scope``; ``organization`` only as null or absent:
    nopass has no organizations, and a token without ``org_id`` must not pass for one."""
    if param(body, "organization") is not None:
        raise UnsupportedParameter("organization")
    return ClientCredentialsGrant(
        audience=first_of(body, "audience", "resource"), scope=scope_of(body)
    )


def revoke_command(body: Body, basic: Basic, *, issuer: str) -> RevokeCommand:
    """``POST /oauth/revoke`` (RFC 7009 §2.1)."""
    client_id = client_id_of(body, basic)
    return RevokeCommand(
        client_id=client_id,
        credentials=credentials_of(body, basic),
        token=required(body, "token"),
        issuer=issuer,
    )


def verify_command(body: Body, basic: Basic, *, issuer: str, request: RequestInfo) -> VerifyCommand:
    """``POST /passwordless/verify``: auth0.js' ``{connection, verification_code,
    email|phone_number, client_id}`` or the reference's ``{grant_type: "password", username,
    password, connection, ...}``."""
    client_id = client_id_of(body, basic)
    connection = required(body, "connection")
    username = first_of(body, "username", "email", "phone_number")
    if username is None:
        raise MissingProperty("username")
    code = first_of(body, "password", "verification_code")
    if code is None:
        raise MissingProperty("password")
    return VerifyCommand(
        client_id=client_id,
        credentials=credentials_of(body, basic),
        connection=connection,
        username=username,
        code=code,
        issuer=issuer,
        request=request,
    )


def json_type(value: object) -> str:
    """The JSON type word of a decoded value, as Auth0's validator names it."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list | tuple):
        return "array"
    return "object"


def _sent(body: Body, name: str) -> Sent:
    """A start field kept for the flow to judge in its turn: text, absent, or its error."""
    value = body.get(name)
    if value is None or isinstance(value, str):
        return value
    return InvalidType(name, json_type(value), "string")


def _start_text(body: Body, name: str) -> str:
    value = _sent(body, name)
    if isinstance(value, RequestRejected):
        raise value
    if value is None:
        raise MissingProperty(name)
    return value


def _auth_params(body: Body) -> dict[str, str]:
    if "authParams" not in body:
        return {}
    value = body["authParams"]
    if not isinstance(value, Mapping):
        raise InvalidType("authParams", json_type(value), "object")
    params: dict[str, str] = {}
    for key, item in value.items():
        if isinstance(item, bool):
            params[str(key)] = "true" if item else "false"
        elif isinstance(item, str | int | float):
            params[str(key)] = str(item)
        elif item is not None:
            raise InvalidType("authParams", json_type(item), "string")
    return params


def _send(body: Body) -> str:
    value = body.get("send")
    if value is None:
        return "link"
    if not isinstance(value, str) or value not in SEND_VALUES:
        raise InvalidEnum("send", value if isinstance(value, str) else json_type(value))
    return value


def start_command(
    body: Body,
    basic: Basic,
    *,
    origin: str,
    request: RequestInfo,
    request_language: str | None,
) -> StartCommand:
    """``POST /passwordless/start`` (auth0-wire §12.2): unknown properties → ``client_id`` →
    ``connection`` → ``authParams`` → ``send``; the identifier and the client's credentials
    are judged by the flow, after the client and the connection."""
    unknown = [key for key in body if key not in START_PROPERTIES]
    if unknown:
        raise UnknownProperties(unknown)
    client_id = _start_text(body, "client_id")
    connection = _start_text(body, "connection")
    auth_params = _auth_params(body)
    return StartCommand(
        client_id=client_id,
        connection=connection,
        send=_send(body),
        auth_params=auth_params,
        origin=origin,
        request=request,
        request_language=request_language,
        email=_sent(body, "email"),
        phone_number=_sent(body, "phone_number"),
        client_secret=_sent(body, "client_secret"),
        client_assertion=_sent(body, "client_assertion"),
        client_assertion_type=_sent(body, "client_assertion_type"),
        basic_auth=basic,
    )


def cross_origin_fields(body: Body | None) -> CrossOriginFields | RequestRejected:
    """``POST /co/authenticate``'s body: all and only its five fields, each a non-empty
    string. The problem is returned, not raised: the origin is checked first (§12.11)."""
    if body is None:
        return BodyUnreadable()
    extra = [key for key in body if key not in CO_FIELDS]
    if extra:
        return UnknownProperties(extra)
    values: dict[str, str] = {}
    for name in CO_FIELDS:
        value = body.get(name)
        if not isinstance(value, str) or not value:
            return MissingProperty(name)
        values[name] = value
    return CrossOriginFields(**values)


def text_field(body: Body | None, name: str) -> str | None:
    """A string field of a body that may be unreadable or invalid (for audit context)."""
    value = body.get(name) if body is not None else None
    return value if isinstance(value, str) else None


def _once(pairs: Iterable[tuple[str, str]], names: Iterable[str]) -> dict[str, str | None]:
    """``names`` from a query's pairs: each at most once, empty read as absent. Other
    parameters are ignored; a repeated one of ``names`` is refused (parameter pollution)."""
    wanted = set(names)
    found: dict[str, str | None] = {}
    for key, value in pairs:
        if key not in wanted:
            continue
        if key in found:
            raise RedirectRejected("repeated_parameter", uri=key)
        found[key] = value or None
    return found


def authorize_params(pairs: Iterable[tuple[str, str]]) -> AuthorizeParams:
    """``/authorize``'s query (``request.query_params.multi_items()``)."""
    return AuthorizeParams(**_once(pairs, AUTHORIZE_PARAMETERS))


def login_ticket(pairs: Iterable[tuple[str, str]]) -> str | None:
    """``/authorize``'s ``login_ticket`` (auth0.js after ``/co/authenticate``)."""
    return _once(pairs, ("login_ticket",)).get("login_ticket")


def link_params(pairs: Iterable[tuple[str, str]]) -> LinkParams:
    """A magic link's query or confirmation form. Its ``connection`` is the link's own."""
    found = _once(pairs, {*AUTHORIZE_PARAMETERS, *LINK_PARAMETERS})
    link = {name: found.pop(name, None) for name in LINK_PARAMETERS}
    return LinkParams(authorize=AuthorizeParams(**found), **link)
