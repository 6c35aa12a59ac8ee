"""THE table from domain errors to Auth0's wire errors (docs/specs/auth0-wire.md §2.5, §12.1-12.3).

Nothing else in nopass decides an error's status code or text.
"""

from __future__ import annotations

from starlette.responses import PlainTextResponse, Response

from nopass.api.responses import JSON, auth0_error
from nopass.core.channel import Channel
from nopass.core.errors import (
    AudienceRequired,
    AuthorizationCodeRejected,
    AuthorizeInvalid,
    AuthorizeProblem,
    BodyTimedOut,
    BodyUnreadable,
    ClientAuthenticationFailed,
    CodeFailure,
    CodeGrantFailure,
    CodeRejected,
    ConnectionIssue,
    ConnectionProblem,
    CountryNotAllowed,
    CrossOriginDisabled,
    DeliveryFailed,
    DeliveryFailure,
    GrantNotAllowed,
    IdentityBlocked,
    InvalidAccessToken,
    InvalidEnum,
    InvalidFormat,
    InvalidRefreshToken,
    InvalidScope,
    InvalidType,
    MissingProperty,
    NoClientGrant,
    NopassError,
    OriginNotAllowed,
    RateLimited,
    RedirectNotAllowed,
    RequestRejected,
    ServiceUnavailable,
    TenantNotFound,
    UnknownAudience,
    UnknownClient,
    UnknownCredentialType,
    UnknownProperties,
    UnknownRealm,
    UnsupportedGrantType,
    UnsupportedParameter,
    UserBlocked,
)
from nopass.core.models import RateLimitStatus

TENANT_ERROR = "error in tenant - tenant validation failed: invalid_tenant"
UNAVAILABLE = "The service is temporarily unavailable. Try again later."
TOO_MANY_REQUESTS = "Too many requests. Try again later."
COUNTRY_NOT_ALLOWED = "Phone number country is not allowed"
BODY_TIMEOUT = "The request body did not arrive in time"
# Properties whose problems Auth0 reports under their own `bad.<name>` code.
BAD_KEYS = frozenset({"client_id", "connection", "email", "phone_number", "send", "authParams"})

CONNECTION_TEXT = {
    ConnectionIssue.NOT_FOUND: "Connection does not exist",
    ConnectionIssue.DISABLED: "Connection is disabled",
    ConnectionIssue.NOT_PASSWORDLESS: (
        "Invalid connection strategy. It must either be a passwordless connection"
    ),
}
SMS_TEXT = {
    DeliveryFailure.UNEXPECTED: "Unexpected response while calling the SMS gateway: {status}",
    DeliveryFailure.UNAUTHORIZED: "Authentication failed while calling the SMS gateway: {status}",
}


def unavailable_error() -> JSON:
    return auth0_error(503, "temporarily_unavailable", UNAVAILABLE)


def body_timeout_error() -> JSON:
    """A body that did not all arrive within ``NOPASS_REQUEST_BODY_TIMEOUT_SECONDS``
    (api/body_deadline.py): the rest will not be read, so the connection closes."""
    return auth0_error(408, "request_timeout", BODY_TIMEOUT, {"Connection": "close"})


def rate_limit_headers(status: RateLimitStatus) -> dict[str, str]:
    """docs/specs/auth0-wire.md §1.4: the limit, what is left of it, and when it resets (epoch
    s)."""
    return {
        "x-ratelimit-limit": str(status.limit),
        "x-ratelimit-remaining": str(status.remaining),
        "x-ratelimit-reset": str(status.reset),
    }


def rate_limited_error(exc: RateLimited) -> JSON:
    """§12.12, the same on every JSON endpoint."""
    headers = {**rate_limit_headers(exc.status), "Retry-After": str(exc.retry_after)}
    return auth0_error(429, "too_many_requests", TOO_MANY_REQUESTS, headers)


def common_error(exc: NopassError) -> JSON | None:
    """Errors that read the same on every endpoint."""
    if isinstance(exc, RateLimited):
        return rate_limited_error(exc)
    if isinstance(exc, TenantNotFound):
        return auth0_error(400, "bad.tenant", TENANT_ERROR)
    if isinstance(exc, ServiceUnavailable):
        return unavailable_error()
    if isinstance(exc, BodyTimedOut):
        return body_timeout_error()
    if isinstance(exc, ClientAuthenticationFailed):
        return auth0_error(401, "access_denied", "Unauthorized")
    return None


def _request_rejected(exc: RequestRejected) -> tuple[str, str]:
    code = f"bad.{exc.field}" if exc.field in BAD_KEYS else "bad.request"
    match exc:
        case BodyUnreadable():
            return "bad.request", "Invalid request body"
        case UnknownProperties():
            return "bad.request", "the following properties are not allowed: " + ", ".join(
                exc.names
            )
        case MissingProperty():
            return code, f"Missing required property: {exc.field}"
        case InvalidType():
            return code, f"error in {exc.field} - invalid type: {exc.got} (expected {exc.expected})"
        case InvalidFormat() if exc.pattern is not None:
            return code, f"String does not match pattern: {exc.pattern}"
        case InvalidFormat():
            return code, f"error in {exc.field} - {exc.field} format validation failed: {exc.value}"
        case InvalidEnum():
            return code, f"error in {exc.field} - no enum match for: {exc.value}"
    return code, str(exc)


def start_error(exc: NopassError) -> JSON:
    """``POST /passwordless/start`` (§2.5 and §12.3)."""
    common = common_error(exc)
    if common is not None:
        return common
    match exc:
        case RequestRejected():
            return auth0_error(400, *_request_rejected(exc))
        case UnknownClient():
            return auth0_error(400, "bad.client_id", f"Unknown client: {exc.client_id}")
        case ConnectionProblem():
            return auth0_error(400, "bad.connection", CONNECTION_TEXT[exc.issue])
        case CountryNotAllowed():
            return auth0_error(400, "bad.phone_number", COUNTRY_NOT_ALLOWED)
        case RedirectNotAllowed():
            return auth0_error(
                400,
                "bad.authParams",
                "error in authParams - redirect_uri is not an allowed callback URL",
            )
        case DeliveryFailed() if exc.kind is DeliveryFailure.REJECTED:
            return auth0_error(
                400, "sms_provider_error", f"{exc.provider_message} (Code: {exc.provider_code})"
            )
        case DeliveryFailed():
            return auth0_error(
                400, "sms_provider_error", SMS_TEXT[exc.kind].format(status=exc.status)
            )
    return auth0_error(500, "server_error", "Internal error")


GRANT_ERROR_URI = "https://auth0.com/docs/clients/client-grant-types"
REALM_TEXT = {
    ConnectionIssue.NOT_FOUND: "the connection was not found",
    ConnectionIssue.NOT_PASSWORDLESS: "the connection was not found",
    ConnectionIssue.DISABLED: "the connection was disabled",
}
WRONG_CODE_TEXT = {
    Channel.EMAIL: "Wrong email or verification code.",
    Channel.SMS: "Wrong phone number or verification code.",
}
CODE_TEXT = {
    CodeFailure.EXPIRED: "The verification code has expired. Please try to login again.",
    CodeFailure.EXHAUSTED: (
        "You've reached the maximum number of attempts. Please try to login again."
    ),
}
CODE_GRANT_TEXT = {
    CodeGrantFailure.INVALID: "Invalid authorization code",
    CodeGrantFailure.REDIRECT_MISMATCH: (
        "redirect_uri does not match the one of the authorization request"
    ),
    CodeGrantFailure.PKCE: "Failed to verify code verifier",
}
NO_AUDIENCE_TEXT = "No audience parameter was provided, and no default audience has been configured"
NO_CLIENT_GRANT_TEXT = (
    'Client is not authorized to access "{audience}". You need to create a "client-grant" '
    "associated to this API."
)
BLOCKED_TEXT = "Your account has been blocked after multiple consecutive login attempts."
USER_BLOCKED_TEXT = "user is blocked"  # §3.5, §5.1
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


def token_error(exc: NopassError) -> JSON:
    """``POST /oauth/token`` and ``/oauth/revoke`` (§3.5, §12.6)."""
    response = common_error(exc) or _token_error(exc)
    response.headers.update(NO_STORE)
    return response


def _token_error(exc: NopassError) -> JSON:
    match exc:
        case MissingProperty() if exc.field == "client_id":
            return auth0_error(400, "invalid_request", "missing client_id parameter")
        case MissingProperty():
            return auth0_error(400, "invalid_request", f"Missing required parameter: {exc.field}")
        case InvalidType():
            return auth0_error(400, "invalid_request", f"Invalid parameter: {exc.field}")
        case UnsupportedParameter():
            return auth0_error(400, "invalid_request", f"Unsupported parameter: {exc.field}")
        case RequestRejected():
            return auth0_error(400, "invalid_request", "Invalid request body")
        case UnsupportedGrantType():
            return auth0_error(
                400, "unsupported_grant_type", f"Unsupported grant type: {exc.grant_type}"
            )
        case UnknownClient():
            return auth0_error(403, "unauthorized_client", "invalid client")
        case GrantNotAllowed():
            body = {
                "error": "unauthorized_client",
                "error_description": f"Grant type '{exc.grant_type}' not allowed for the client.",
                "error_uri": GRANT_ERROR_URI,
            }
            return JSON(body, 403)
        case ConnectionProblem():
            return auth0_error(400, "invalid_request", REALM_TEXT[exc.issue])
        case CodeRejected() if exc.reason is CodeFailure.WRONG:
            return auth0_error(403, "invalid_grant", WRONG_CODE_TEXT[exc.channel])
        case CodeRejected():
            return auth0_error(403, "invalid_grant", CODE_TEXT[exc.reason])
        case IdentityBlocked():
            return auth0_error(
                429, "too_many_attempts", BLOCKED_TEXT, {"Retry-After": str(exc.retry_after)}
            )
        case UserBlocked():
            return auth0_error(401, "unauthorized", USER_BLOCKED_TEXT)
        case UnknownAudience():
            return auth0_error(403, "access_denied", f"Service not found: {exc.audience}")
        case AudienceRequired():
            return auth0_error(403, "access_denied", NO_AUDIENCE_TEXT)
        case NoClientGrant():
            text = NO_CLIENT_GRANT_TEXT.format(audience=exc.audience)
            return auth0_error(403, "access_denied", text)
        case InvalidScope():
            return auth0_error(400, "invalid_scope", exc.message)
        case InvalidRefreshToken():
            return auth0_error(403, "invalid_grant", "Unknown or invalid refresh token.")
        case AuthorizationCodeRejected():
            return auth0_error(403, "invalid_grant", CODE_GRANT_TEXT[exc.failure])
    return auth0_error(500, "server_error", "Internal error")


AUTHORIZE_TEXT = {
    AuthorizeProblem.UNSUPPORTED_RESPONSE_TYPE: (
        "unsupported_response_type",
        "Unsupported response type: {detail}",
    ),
    AuthorizeProblem.UNSUPPORTED_RESPONSE_MODE: (
        "invalid_request",
        "Unsupported response mode: {detail}",
    ),
    AuthorizeProblem.NONCE_REQUIRED: (
        "invalid_request",
        "Nonce is required for response types with an id_token",
    ),
    AuthorizeProblem.PKCE_REQUIRED: (
        "invalid_request",
        "A code_challenge (PKCE, S256) is required for this client",
    ),
    AuthorizeProblem.PKCE_METHOD: (
        "invalid_request",
        "Unsupported code_challenge_method: {detail} (only S256)",
    ),
    AuthorizeProblem.GRANT_NOT_ALLOWED: (
        "unauthorized_client",
        "Grant type '{detail}' not allowed for the client.",
    ),
    AuthorizeProblem.LOGIN_REQUIRED: ("login_required", "Login required"),
    AuthorizeProblem.INVALID_TICKET: ("access_denied", "Invalid or expired login ticket"),
    AuthorizeProblem.CONNECTION: ("invalid_request", "the connection was not found"),
}
LINK_CODE_ERROR = {CodeFailure.EXPIRED: "unauthorized", CodeFailure.EXHAUSTED: "access_denied"}


def authorize_error(exc: Exception) -> tuple[str, str]:
    """The ``error`` and ``error_description`` a redirect carries back to the client
    (docs/specs/auth0-wire.md §4.2 step 5)."""
    match exc:
        case AuthorizeInvalid():
            error, text = AUTHORIZE_TEXT[exc.problem]
            return error, text.format(detail=exc.detail)
        case CodeRejected() if exc.reason is CodeFailure.WRONG:
            return "access_denied", WRONG_CODE_TEXT[exc.channel]
        case CodeRejected():
            return LINK_CODE_ERROR[exc.reason], CODE_TEXT[exc.reason]
        case IdentityBlocked():
            return "too_many_attempts", BLOCKED_TEXT
        case UserBlocked():
            return "unauthorized", USER_BLOCKED_TEXT
        case RateLimited():
            return "too_many_requests", TOO_MANY_REQUESTS
        case UnknownAudience():
            return "access_denied", f"Service not found: {exc.audience}"
        case ConnectionProblem():
            return "invalid_request", REALM_TEXT[exc.issue]
    return "server_error", "Internal error"


# --- auth0.js / Lock endpoints (docs/specs/auth0-wire.md §5.1, §5.2) ---------------------------

VERIFY_MISSING = frozenset({"username", "password", "connection", "client_id"})


def verify_error(exc: NopassError) -> JSON:
    """``POST /passwordless/verify`` (§5.1, §12.10): a wrong, expired or exhausted code is
    ``401 invalid_user_password``."""
    common = common_error(exc)
    if common is not None:
        return common
    match exc:
        case MissingProperty() if exc.field in VERIFY_MISSING:
            return auth0_error(400, "invalid_request", f"missing {exc.field} parameter")
        case InvalidType():
            return auth0_error(400, "invalid_request", f"Invalid parameter: {exc.field}")
        case RequestRejected():
            return auth0_error(400, "invalid_request", "Invalid request body")
        case UnknownClient():
            return auth0_error(403, "unauthorized_client", "invalid client")
        case ConnectionProblem():
            return auth0_error(400, "invalid_request", REALM_TEXT[exc.issue])
        case CodeRejected() if exc.reason is CodeFailure.WRONG:
            return auth0_error(
                401,
                "invalid_user_password",
                WRONG_CODE_TEXT[exc.channel],
            )
        case CodeRejected():
            return auth0_error(401, "invalid_user_password", CODE_TEXT[exc.reason])
        case IdentityBlocked():
            return auth0_error(
                429, "too_many_attempts", BLOCKED_TEXT, {"Retry-After": str(exc.retry_after)}
            )
        case UserBlocked():
            return auth0_error(401, "unauthorized", USER_BLOCKED_TEXT)
    return auth0_error(500, "server_error", "Internal error")


CO_BODY_TEXT = (
    "Invalid request body. All and only of client_id, credential_type, username, otp, realm "
    "are required."
)
CO_BLOCKED_TEXT = (
    "Your account has been blocked after multiple consecutive login attempts. "
    "We’ve sent you an email with instructions on how to unblock it."
)


def co_authenticate_error(exc: NopassError) -> Response:
    """``POST /co/authenticate`` (§5.2's table). A refused origin is plain text."""
    common = common_error(exc)
    if common is not None:
        return common
    match exc:
        case OriginNotAllowed():
            return PlainTextResponse(str(exc), status_code=403)
        case RequestRejected():
            return auth0_error(400, "invalid_request", CO_BODY_TEXT)
        case CrossOriginDisabled():
            return auth0_error(401, "unauthorized_client", "Cross origin login not allowed.")
        case UnknownCredentialType():
            return auth0_error(
                400, "unsupported_credential_type", "Unknown credential type parameter."
            )
        case UnknownRealm():
            return auth0_error(400, "invalid_request", f"Unknown realm {exc.realm}.")
        case CodeRejected() if exc.reason is CodeFailure.WRONG:
            return auth0_error(403, "access_denied", WRONG_CODE_TEXT[exc.channel])
        case CodeRejected():
            return auth0_error(403, "access_denied", CODE_TEXT[exc.reason])
        case IdentityBlocked():
            return auth0_error(
                429, "too_many_attempts", CO_BLOCKED_TEXT, {"Retry-After": str(exc.retry_after)}
            )
        case UserBlocked():
            return auth0_error(403, "blocked_user", "Blocked user")  # §5.2's table
    return auth0_error(500, "server_error", "Internal error")


# --- /userinfo: RFC 6750 §3 ---------------------------------------------------------------

BODY_UNREADABLE_TEXT = "The request body is not a form"


def bearer_challenge() -> Response:
    """No token at all: ``401`` with a bare challenge (§3.1: no error code)."""
    return PlainTextResponse(
        "Unauthorized", status_code=401, headers={"WWW-Authenticate": "Bearer"}
    )


def bearer_error(exc: InvalidAccessToken | RequestRejected) -> Response:
    """A token that must not be honoured is ``401 invalid_token`` (the reason is not told);
    a malformed request (a token given twice, an unreadable form) ``400 invalid_request``."""
    if isinstance(exc, InvalidAccessToken):
        return PlainTextResponse(
            "Unauthorized",
            status_code=401,
            headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
        )
    text = BODY_UNREADABLE_TEXT if isinstance(exc, BodyUnreadable) else str(exc)
    challenge = f'Bearer error="invalid_request", error_description="{text}"'
    return auth0_error(400, "invalid_request", text, {"WWW-Authenticate": challenge, **NO_STORE})
