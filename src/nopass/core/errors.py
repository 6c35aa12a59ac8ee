"""The one exception tree of nopass. Domain errors carry facts, never HTTP statuses.

``nopass.api.errors`` is the only place that turns them into Auth0's wire errors.

    NopassError
    ├── TenantNotFound            the Host matches no tenant domain
    ├── RequestRejected           the request itself is wrong (Auth0 ``bad.*`` family)
    │   ├── BodyUnreadable        not JSON / form, or not an object
    │   ├── UnknownProperties     top-level keys that are not allowed
    │   ├── MissingProperty       a required property is absent (or null)
    │   ├── InvalidType           a property has the wrong JSON type
    │   ├── InvalidFormat         a property is malformed (email, phone number)
    │   ├── InvalidEnum           a property is not one of the allowed values
    │   └── UnsupportedParameter  a parameter nopass does not implement (``organization``)
    ├── BodyTimedOut              the request's body did not all arrive within its deadline
    ├── ClientDisconnected        the client left before its answer: there is nobody to answer
    ├── UnknownClient             no such client_id in the tenant
    ├── ConnectionProblem         connection missing, of another strategy, or not enabled
    ├── RedirectNotAllowed        authParams.redirect_uri is not a callback of the client
    ├── ClientAuthenticationFailed  a confidential client did not prove itself
    ├── DeliveryFailed            a provider refused or failed a synchronous send (SMS)
    ├── ServiceUnavailable        a dependency (database) is unreachable: fail closed
    ├── UnsupportedGrantType      /oauth/token grant_type we do not implement
    ├── GrantNotAllowed           the client lacks the grant
    ├── CodeRejected              wrong / expired / exhausted one-time code
    ├── IdentityBlocked           the identity's failure window is full
    ├── UserBlocked               an administrator blocked the user: every sign-in is refused
    ├── RateLimited               a rate limit or an SMS fraud control refused the request
    ├── CountryNotAllowed         an SMS to a country the connection does not allow
    ├── UnknownAudience           no resource server with that identifier
    ├── AudienceRequired          client credentials without audience or tenant default
    ├── NoClientGrant             the client has no client grant for the audience
    ├── InvalidScope              scope of the wrong type, or wider than granted
    ├── InvalidRefreshToken       unknown, revoked, expired or reused refresh token
    ├── InvalidAccessToken        a bearer token that must not be honoured
    ├── InvalidIdTokenHint        an ``id_token_hint`` that is not an ID token of the tenant
    ├── RedirectRejected          no safe redirect_uri: answer with an HTML page
    ├── AuthorizeInvalid          an authorization request refused through its redirect
    ├── AuthorizationCodeRejected the code grant's code, redirect_uri or PKCE verifier
    ├── CrossOriginRefused        /co/authenticate refusals (origin, disabled, type, realm)
    ├── ResendTooSoon             the hosted page's resend cooldown
    ├── InvalidQuery              a search ``q`` or ``sort`` outside the supported subset
    └── ManagementRefused         Management API v2 refusals (docs/specs/management-api.md §1.5)
        ├── ManagementTokenRejected   no bearer token, or one that must not be honoured
        ├── InsufficientScope         the token lacks every scope the endpoint accepts
        ├── InvalidManagementRequest  a body, query string or path id that breaks the contract
        ├── BodyTooLarge              a body over the Management API's 1 MiB
        ├── UserNotFound              no user with that id in the tenant
        ├── LogNotFound               no log event with that id in the tenant
        ├── UserExists                the identity or user_id is taken
        ├── UnknownConnectionName     no connection of that name in the tenant
        ├── ObjectNotFound            no client, connection, API, grant or job with that id
        ├── ObjectConflict            a change that contradicts what exists (409)
        ├── ImportFileTooLarge        a users-import file over 500 KB
        ├── TooManyJobs               the tenant already runs its concurrent import jobs
        └── SystemObjectProtected     the built-in Management API is not changed (403)
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import Enum

from nopass.core.channel import Channel
from nopass.core.models import RateLimitStatus


class NopassError(Exception):
    """Root of every error nopass raises on purpose."""


class TenantNotFound(NopassError):
    def __init__(self, host: str) -> None:
        super().__init__(f"no tenant answers on {host!r}")
        self.host = host


class RequestRejected(NopassError):
    """Base of the request-shape errors; ``field`` names the offending property."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


class BodyUnreadable(RequestRejected):
    def __init__(self) -> None:
        super().__init__("request", "the body is not a JSON object or a form")


class UnknownProperties(RequestRejected):
    def __init__(self, names: Sequence[str]) -> None:
        super().__init__("request", "properties not allowed: " + ", ".join(names))
        self.names = tuple(names)


class MissingProperty(RequestRejected):
    def __init__(self, field: str) -> None:
        super().__init__(field, f"missing {field}")


class InvalidType(RequestRejected):
    def __init__(self, field: str, got: str, expected: str) -> None:
        super().__init__(field, f"{field} is {got}, expected {expected}")
        self.got = got
        self.expected = expected


class InvalidFormat(RequestRejected):
    def __init__(self, field: str, value: str, pattern: str | None = None) -> None:
        super().__init__(field, f"{field} is malformed")
        self.value = value
        self.pattern = pattern


class InvalidEnum(RequestRejected):
    def __init__(self, field: str, value: str) -> None:
        super().__init__(field, f"{field} is not an allowed value")
        self.value = value


class UnsupportedParameter(RequestRejected):
    def __init__(self, field: str) -> None:
        super().__init__(field, f"{field} is not supported")


class BodyTimedOut(NopassError):
    """Not a ``RequestRejected``: nothing may be made of the part that came (a page that
    falls back to an empty form on a bad body must not run on this one)."""

    def __init__(self, seconds: float) -> None:
        super().__init__(f"the request body did not arrive within {seconds:g} s")
        self.seconds = seconds


class ClientDisconnected(NopassError):
    """Raised past the routes, to the access log, which logs it as what it is."""

    def __init__(self) -> None:
        super().__init__("the client disconnected before its answer")


class UnknownClient(NopassError):
    def __init__(self, client_id: str) -> None:
        super().__init__(f"unknown client {client_id!r}")
        self.client_id = client_id


class ConnectionIssue(Enum):
    NOT_FOUND = "not_found"
    NOT_PASSWORDLESS = "not_passwordless"
    DISABLED = "disabled"


class ConnectionProblem(NopassError):
    def __init__(self, issue: ConnectionIssue) -> None:
        super().__init__(f"connection {issue.value}")
        self.issue = issue


class RedirectNotAllowed(NopassError):
    def __init__(self) -> None:
        super().__init__("redirect_uri is not an allowed callback URL")


class ClientAuthenticationFailed(NopassError):
    """Deliberately uninformative: the reason is logged, never returned."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class DeliveryFailure(Enum):
    REJECTED = "rejected"  # the provider answered with an error of its own (message, code)
    UNEXPECTED = "unexpected"  # non-2xx status or timeout
    UNAUTHORIZED = "unauthorized"  # the gateway answered 401


class DeliveryFailed(NopassError):
    def __init__(
        self,
        kind: DeliveryFailure,
        *,
        status: int | None = None,
        provider_message: str | None = None,
        provider_code: str | None = None,
        retryable: bool = False,
    ) -> None:
        super().__init__(f"delivery failed: {kind.value} {status} {provider_message}")
        self.kind = kind
        self.retryable = retryable
        self.status = status
        self.provider_message = provider_message
        self.provider_code = provider_code


class ServiceUnavailable(NopassError):
    def __init__(self, what: str) -> None:
        super().__init__(f"{what} is unavailable")
        self.what = what


class UnsupportedGrantType(NopassError):
    def __init__(self, grant_type: str) -> None:
        super().__init__(f"unsupported grant type {grant_type!r}")
        self.grant_type = grant_type


class GrantNotAllowed(NopassError):
    """The client is not configured for this grant type."""

    def __init__(self, grant_type: str) -> None:
        super().__init__(f"grant {grant_type!r} not allowed for the client")
        self.grant_type = grant_type


class CodeRejected(NopassError):
    """A one-time code did not verify. ``reason`` only picks the message; a wrong, used,
    voided, unknown or phantom code all read the same (no enumeration)."""

    def __init__(self, reason: CodeFailure, channel: Channel) -> None:
        super().__init__(f"code rejected: {reason.value}")
        self.reason = reason
        self.channel = channel


class CodeFailure(Enum):
    WRONG = "wrong"
    EXPIRED = "expired"
    EXHAUSTED = "exhausted"  # the code already failed 3 times


class IdentityBlocked(NopassError):
    """Too many failed verifications for one identity in the current window."""

    def __init__(self, retry_after: int) -> None:
        super().__init__("too many failed attempts for this identity")
        self.retry_after = retry_after


class UserBlocked(NopassError):
    """An administrator blocked the user (``User.blocked``): every sign-in path refuses it,
    Auth0's ``401 unauthorized`` "user is blocked" (docs/specs/auth0-wire.md §3.5, §5.1;
    ``/co/authenticate`` answers ``403 blocked_user``, §5.2)."""

    def __init__(self, user_id: str | None = None) -> None:
        super().__init__("user is blocked")
        self.user_id = user_id


class RateLimited(NopassError):
    """A rate limit (docs/specs/security.md §6) or an SMS fraud control refused the request before
    anything was stored or sent. ``status`` is the refusing limit's state."""

    def __init__(self, name: str, status: RateLimitStatus, retry_after: int) -> None:
        super().__init__(f"rate limit {name} reached")
        self.name = name
        self.status = status
        self.retry_after = retry_after


class CountryNotAllowed(NopassError):
    """An SMS start for a number outside the connection's ``allowed_countries``."""

    def __init__(self, country: str | None) -> None:
        super().__init__(f"SMS to country {country or 'unknown'} is not allowed")
        self.country = country


class UnknownAudience(NopassError):
    def __init__(self, audience: str) -> None:
        super().__init__(f"no API {audience!r}")
        self.audience = audience


class AudienceRequired(NopassError):
    """A client-credentials request named no audience and the tenant has no default."""

    def __init__(self) -> None:
        super().__init__("no audience and no default audience")


class NoClientGrant(NopassError):
    """The client holds no client grant for the audience it asked a token for."""

    def __init__(self, client_id: str, audience: str) -> None:
        super().__init__(f"client {client_id!r} has no client grant for {audience!r}")
        self.client_id = client_id
        self.audience = audience


class InvalidScope(NopassError):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidRefreshToken(NopassError):
    """Unknown, revoked, expired, rotated-and-reused, or of another client."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class InvalidAccessToken(NopassError):
    """A bearer token that may not be used (userinfo); the reason is logged, not returned."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class InvalidIdTokenHint(NopassError):
    """An ``id_token_hint`` (RP-Initiated Logout) that this tenant did not issue as an ID
    token; the reason is logged, not returned."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class RedirectRejected(NopassError):
    """An authorization or logout request that must not redirect anywhere (unknown client,
    a redirect_uri that is not an exact callback, a ``post_logout_redirect_uri`` that is not
    an exact allowed logout URL): answered with an HTML error page."""

    def __init__(
        self, reason: str, *, client_id: str | None = None, uri: str | None = None
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.client_id = client_id
        self.uri = uri


class AuthorizeProblem(Enum):
    UNSUPPORTED_RESPONSE_TYPE = "unsupported_response_type"
    UNSUPPORTED_RESPONSE_MODE = "unsupported_response_mode"
    NONCE_REQUIRED = "nonce_required"
    PKCE_REQUIRED = "pkce_required"
    PKCE_METHOD = "pkce_method"
    GRANT_NOT_ALLOWED = "grant_not_allowed"
    LOGIN_REQUIRED = "login_required"
    INVALID_TICKET = "invalid_ticket"
    CONNECTION = "connection"


class AuthorizeInvalid(NopassError):
    """An authorization request that fails after its redirect_uri was validated: the error
    goes back to the client through the response channel, with ``state``."""

    def __init__(self, problem: AuthorizeProblem, detail: str = "") -> None:
        super().__init__(f"{problem.value} {detail}".strip())
        self.problem = problem
        self.detail = detail


class CodeGrantFailure(Enum):
    INVALID = "invalid"  # unknown, expired, used, or of another client
    REDIRECT_MISMATCH = "redirect_mismatch"
    PKCE = "pkce"


class AuthorizationCodeRejected(NopassError):
    def __init__(self, failure: CodeGrantFailure) -> None:
        super().__init__(f"authorization code rejected: {failure.value}")
        self.failure = failure


class CrossOriginRefused(NopassError):
    """``/co/authenticate`` refusals without a counterpart on other endpoints.

    CrossOriginRefused
    ├── OriginNotAllowed        the browser origin is not one of the client's
    ├── CrossOriginDisabled     unknown client, or ``cross_origin_auth`` is off
    ├── UnknownCredentialType   ``credential_type`` is not the passwordless OTP grant
    └── UnknownRealm            no passwordless connection of that name for the client
    """


class OriginNotAllowed(CrossOriginRefused):
    def __init__(self, origin: str) -> None:
        super().__init__(f"Origin {origin} is not allowed.")
        self.origin = origin


class CrossOriginDisabled(CrossOriginRefused):
    def __init__(self) -> None:
        super().__init__("cross origin authentication is not enabled for the client")


class UnknownCredentialType(CrossOriginRefused):
    def __init__(self, value: str) -> None:
        super().__init__(f"unknown credential type {value!r}")
        self.value = value


class UnknownRealm(CrossOriginRefused):
    def __init__(self, realm: str) -> None:
        super().__init__(f"unknown realm {realm!r}")
        self.realm = realm


class ResendTooSoon(NopassError):
    """A new code or link was asked for within the cooldown after the previous send."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"resend allowed in {retry_after} s")
        self.retry_after = retry_after


class InvalidQuery(NopassError):
    """A search query (``q``) or ``sort`` the search does not support; the message says why."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ManagementRefused(NopassError):
    """Base of the Management API's refusals (docs/specs/management-api.md §1.5)."""


class TokenProblem(Enum):
    MISSING = "missing"
    INVALID = "invalid"
    AUDIENCE = "audience"
    EXPIRED = "expired"


class ManagementTokenRejected(ManagementRefused):
    """No bearer token, or one that is not a valid Management API token of the tenant. The
    reason is for the log; ``audience`` is the one the token named (``Bad audience``)."""

    def __init__(self, problem: TokenProblem, reason: str, audience: str = "") -> None:
        super().__init__(reason)
        self.problem = problem
        self.reason = reason
        self.audience = audience


class InsufficientScope(ManagementRefused):
    def __init__(self, accepted: Sequence[str]) -> None:
        super().__init__("insufficient scope")
        self.accepted = tuple(accepted)


class InvalidManagementRequest(ManagementRefused):
    """``in_query``: the query string is wrong (``invalid_query_string``); ``in_path``: an id
    in the path can be no id (``invalid_uri``); else the body."""

    def __init__(self, message: str, *, in_query: bool = False, in_path: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.in_query = in_query
        self.in_path = in_path


class BodyTooLarge(ManagementRefused):
    def __init__(self, limit: int) -> None:
        super().__init__(f"body over {limit} bytes")
        self.limit = limit


class UserNotFound(ManagementRefused):
    def __init__(self, user_id: str) -> None:
        super().__init__("no such user")
        self.user_id = user_id


class LogNotFound(ManagementRefused):
    def __init__(self, log_id: str) -> None:
        super().__init__("no such log event")
        self.log_id = log_id


class UserExists(ManagementRefused):
    """``field``: the changed email or phone_number that is another user's (None: a create
    whose identity or user_id is taken)."""

    def __init__(self, field: str | None = None) -> None:
        super().__init__("the user already exists")
        self.field = field


class UnknownConnectionName(ManagementRefused):
    def __init__(self, name: str) -> None:
        super().__init__(f"no connection {name!r}")
        self.name = name


class ObjectNotFound(ManagementRefused):
    """No ``kind`` (``client``, ``connection``, ``resource_server``, ``client_grant``, ``job``)
    with this id in the tenant."""

    def __init__(self, kind: str, object_id: str) -> None:
        super().__init__(f"no {kind} {object_id!r}")
        self.kind = kind
        self.object_id = object_id


class ObjectConflict(ManagementRefused):
    """The change contradicts what exists (a taken name, a second grant for one audience)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ImportFileTooLarge(ManagementRefused):
    """A users-import file over ``limit`` bytes (docs/specs/management-api.md §7.1)."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"import file over {limit} bytes")
        self.limit = limit


class TooManyJobs(ManagementRefused):
    """The tenant already has ``limit`` import jobs pending or running."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"{limit} concurrent import jobs already")
        self.limit = limit


class SystemObjectProtected(ManagementRefused):
    """A change or deletion of a built-in object (the "Auth0 Management API" resource
    server), which exists in every tenant as it is."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message
