"""THE table of the Management API's errors (docs/specs/management-api.md §1.5, §1.7, §3).

Every non-2xx answer under ``/api/v2`` is Auth0's envelope ``{statusCode, error, message,
errorCode}``, whatever refused the request: a domain error, the router (unknown path, wrong
method), the framework's validation or an unexpected failure.
"""

from __future__ import annotations

from http import HTTPStatus

from nopass.api.errors import rate_limit_headers
from nopass.api.responses import JSON
from nopass.core.errors import (
    BodyTimedOut,
    BodyTooLarge,
    BodyUnreadable,
    ImportFileTooLarge,
    InsufficientScope,
    InvalidManagementRequest,
    InvalidQuery,
    LogNotFound,
    ManagementTokenRejected,
    NopassError,
    ObjectConflict,
    ObjectNotFound,
    RateLimited,
    RequestRejected,
    ServiceUnavailable,
    SystemObjectProtected,
    TenantNotFound,
    TokenProblem,
    TooManyJobs,
    UnknownConnectionName,
    UserExists,
    UserNotFound,
)

PREFIX = "/api/v2"
REASONS = {413: "Payload Too Large"}  # the phrase Auth0's envelope uses (not "Content ...")
TOKEN_TEXT = {
    TokenProblem.MISSING: "Invalid token",
    TokenProblem.INVALID: "Invalid token",
    TokenProblem.EXPIRED: "Expired token received for JSON Web Token validation",
}
GLOBAL_LIMIT = "Global limit has been reached"


def is_management(path: str) -> bool:
    return path == PREFIX or path.startswith(PREFIX + "/")


def envelope(
    status: int, message: str, error_code: str, headers: dict[str, str] | None = None
) -> JSON:
    reason = REASONS.get(status) or HTTPStatus(status).phrase
    body = {"statusCode": status, "error": reason, "message": message, "errorCode": error_code}
    return JSON(body, status, headers=headers)


def _token_error(exc: ManagementTokenRejected) -> JSON:
    if exc.problem is TokenProblem.AUDIENCE:
        message = f"Bad audience: {exc.audience}"
    else:
        message = TOKEN_TEXT[exc.problem]
    challenge = (
        "Bearer"
        if exc.problem is TokenProblem.MISSING
        else f'Bearer error="invalid_token", error_description="{message}"'
    )
    return envelope(401, message, "invalid_token", {"WWW-Authenticate": challenge})


def management_error(exc: NopassError) -> JSON:
    """The envelope of a domain error raised while answering a Management API call."""
    match exc:
        case ManagementTokenRejected():
            return _token_error(exc)
        case InsufficientScope():
            message = "Insufficient scope, expected any of: " + ", ".join(exc.accepted)
            return envelope(403, message, "insufficient_scope")
        case InvalidQuery():
            return envelope(400, exc.message, "invalid_query_string")
        case InvalidManagementRequest():
            code = "invalid_query_string" if exc.in_query else "invalid_body"
            code = "invalid_uri" if exc.in_path else code
            return envelope(400, exc.message, code)
        case ImportFileTooLarge():
            message = f"The file size limit for a bulk import is {exc.limit // 1000}KB"
            return envelope(413, message, "payload_too_large")
        case TooManyJobs():
            message = f"There is a limit of {exc.limit} concurrent import jobs per tenant"
            return envelope(429, message, "too_many_requests")
        case BodyTooLarge():
            return envelope(413, "Request payload is larger than 1 MiB", "payload_too_large")
        case BodyUnreadable():
            return envelope(400, "Payload validation error: 'Invalid JSON object'.", "invalid_body")
        case RequestRejected():
            return envelope(400, str(exc), "invalid_body")
        case UserNotFound():
            return envelope(404, "The user does not exist.", "inexistent_user")
        case LogNotFound():
            return envelope(404, "log not found", "inexistent_log")
        case UserExists(field=None):
            return envelope(409, "The user already exists.", "auth0_idp_error")
        case UserExists():
            return envelope(409, f"The specified new {exc.field} already exists", "user_exists")
        case ObjectNotFound():
            noun = exc.kind.replace("_", " ")
            return envelope(404, f"The {noun} does not exist.", f"inexistent_{exc.kind}")
        case ObjectConflict():
            return envelope(409, exc.message, "conflict")
        case SystemObjectProtected():
            return envelope(403, exc.message, "operation_not_supported")
        case UnknownConnectionName():
            return envelope(400, "The connection does not exist.", "inexistent_connection")
        case RateLimited():
            headers = {**rate_limit_headers(exc.status), "Retry-After": str(exc.retry_after)}
            return envelope(429, GLOBAL_LIMIT, "too_many_requests", headers)
        case TenantNotFound():
            return envelope(404, "No tenant answers on this domain.", "inexistent_tenant")
        case ServiceUnavailable():
            return unavailable()
        case BodyTimedOut():
            return envelope(
                408,
                "The request body did not arrive in time",
                "request_timeout",
                {"Connection": "close"},
            )
    return internal()


def http_error(status: int) -> JSON:
    """The router's refusals: an unknown path (404), a method the path does not take (405)."""
    phrase = REASONS.get(status) or HTTPStatus(status).phrase
    code = {404: "not_found", 405: "method_not_allowed"}.get(status, "invalid_request")
    return envelope(status, phrase, code)


def validation_error() -> JSON:
    return envelope(400, "Query validation error", "invalid_query_string")


def unavailable() -> JSON:
    return envelope(
        503, "The service is temporarily unavailable. Try again later.", "temporarily_unavailable"
    )


def internal() -> JSON:
    return envelope(500, "Internal error", "internal_error")
