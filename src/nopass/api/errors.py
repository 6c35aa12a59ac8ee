"""THE table from domain errors to Auth0's wire errors (auth0-wire.md §2.5, §12.1-12.3).

Nothing else in nopass decides an error's status code or text.
"""

from __future__ import annotations

from nopass.api.responses import JSON, auth0_error
from nopass.core.errors import (
    BodyUnreadable,
    ClientAuthenticationFailed,
    ConnectionIssue,
    ConnectionProblem,
    DeliveryFailed,
    DeliveryFailure,
    InvalidEnum,
    InvalidFormat,
    InvalidType,
    MissingProperty,
    NopassError,
    RedirectNotAllowed,
    RequestRejected,
    ServiceUnavailable,
    TenantNotFound,
    UnknownClient,
    UnknownProperties,
)

TENANT_ERROR = "error in tenant - tenant validation failed: invalid_tenant"
UNAVAILABLE = "The service is temporarily unavailable. Try again later."
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


def common_error(exc: NopassError) -> JSON | None:
    """Errors that read the same on every endpoint."""
    if isinstance(exc, TenantNotFound):
        return auth0_error(400, "bad.tenant", TENANT_ERROR)
    if isinstance(exc, ServiceUnavailable):
        return unavailable_error()
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
