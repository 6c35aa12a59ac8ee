"""What every Management API call goes through (docs/specs/management-api.md §1).

``gate`` (a dependency of the whole router) resolves the tenant by Host, verifies the bearer
token, counts the call against its caller's rate limit and leaves the limit's state in the
request's state, where ``RateLimitHeaders`` puts it on the answer, whatever it is. Each
endpoint then names the scopes it accepts (``scoped``), which also refuses path ids no
store can hold (400 ``invalid_uri``) and NULs in the query. Query strings and bodies are
read here, to the rules of §1.2-§1.4 and the 1 MiB body limit of §1.1.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Annotated, Any

from fastapi import Depends, Request
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from nopass.api.body import parse_json, read_capped
from nopass.api.deps import ServicesDep, TenantDep
from nopass.api.errors import rate_limit_headers
from nopass.api.management.errors import is_management
from nopass.api.request_info import client_ip
from nopass.core.errors import (
    BodyTooLarge,
    InvalidManagementRequest,
    ManagementTokenRejected,
    RateLimited,
)
from nopass.core.models import RateLimitStatus
from nopass.flows.management.caller import ApiCall, Caller, authenticate, correlation_id, require

MAX_BODY_BYTES = 1024 * 1024  # "All endpoints accept a maximum payload size of 1 megabyte"
STATE_KEY = "management_rate_limit"
TRUE, FALSE = frozenset({"true", "1"}), frozenset({"false", "0"})
MAX_PER_PAGE = 100
DEFAULT_PER_PAGE = 50
MAX_PATH_ID = 1024  # any id: user ids, client ids, resource-server identifiers (URLs)


def _bearer(request: Request) -> str | None:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


async def gate(request: Request, services: ServicesDep, tenant: TenantDep) -> Caller:
    deps = services.management
    config = tenant.config.tenant
    try:
        caller = await authenticate(_bearer(request), tenant, deps)
    except ManagementTokenRejected:
        # counted too, by IP: a flood of bad tokens is limited like any caller
        ip = client_ip(request, services.trusted_proxies) or "unknown"
        await _admit(request, deps.limits.admit_management_call(config, "ip:" + ip))
        raise
    await _admit(request, deps.limits.admit_management_call(config, caller.subject))
    return caller


async def _admit(request: Request, admitted: Awaitable[RateLimitStatus | None]) -> None:
    try:
        status = await admitted
    except RateLimited as exc:
        setattr(request.state, STATE_KEY, exc.status)
        raise
    if status is not None:
        setattr(request.state, STATE_KEY, status)


CallerDep = Annotated[Caller, Depends(gate)]


def scoped(*accepted: str) -> Callable[..., Awaitable[ApiCall]]:
    """A dependency: the call, when its token has any one of ``accepted``."""

    async def check(request: Request, caller: CallerDep, services: ServicesDep) -> ApiCall:
        require(caller, accepted)
        _path_ids(request.path_params)
        _query_text(request.query_params)
        return ApiCall(
            caller=caller,
            method=request.method,
            path=request.url.path,
            ip=client_ip(request, services.trusted_proxies),
            user_agent=request.headers.get("user-agent"),
            correlation_id=correlation_id(request.headers.get("x-correlation-id")),
        )

    return check


def _has_control_character(value: str) -> bool:
    return any(ord(c) < 0x20 or c == "\x7f" for c in value)


def _path_ids(params: Mapping[str, Any]) -> None:
    """An id in the path is at most ``MAX_PATH_ID`` characters and holds no control
    character (400 ``invalid_uri``: it can be no id); any other unknown id is a 404."""
    for name, value in params.items():
        if not isinstance(value, str):
            continue
        if len(value) > MAX_PATH_ID:
            raise InvalidManagementRequest(
                f"Path validation error: 'String is too long ({len(value)} chars), maximum"
                f" {MAX_PATH_ID}' on property {name}.",
                in_path=True,
            )
        if _has_control_character(value):
            raise InvalidManagementRequest(
                f"Path validation error: 'String contains control characters' on property {name}.",
                in_path=True,
            )


def _query_text(query: Mapping[str, str]) -> None:
    """No query parameter holds a NUL (no database stores one in text)."""
    for name, value in query.items():
        if "\x00" in value or "\x00" in name:
            raise query_error(f"Query validation error: '{name}' holds a NUL character")


def _without_nul(document: object) -> bool:
    """No string in the document (key or value) holds a NUL (walked without recursion: a
    body may nest as deep as the JSON parser allows)."""
    pending = [document]
    while pending:
        match pending.pop():
            case str() as text if "\x00" in text:
                return False
            case dict() as mapping:
                pending.extend(mapping.keys())
                pending.extend(mapping.values())
            case list() as items:
                pending.extend(items)
    return True


async def read_object(request: Request) -> dict[str, Any]:
    """A JSON object body of at most 1 MiB (413 beyond, 400 for anything but an object, and
    for a NUL in any of its strings, which no database stores in text)."""
    raw = await read_capped(request, MAX_BODY_BYTES)
    if raw is None:
        raise BodyTooLarge(MAX_BODY_BYTES)
    body = parse_json(raw)
    if not _without_nul(body):
        raise InvalidManagementRequest("Payload validation error: 'String contains a NUL'.")
    return body


def query_error(message: str) -> InvalidManagementRequest:
    return InvalidManagementRequest(message, in_query=True)


def boolean(query: Mapping[str, str], name: str, default: bool) -> bool:
    """``true``/``false`` (any case) or ``1``/``0``."""
    value = query.get(name)
    if value is None or value == "":
        return default
    if value.lower() in TRUE:
        return True
    if value.lower() in FALSE:
        return False
    raise query_error(f"Query validation error: '{name}' must be a boolean")


def integer(query: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    value = query.get(name)
    if value is None or value == "":
        return default
    try:
        if not value.isascii():  # int() would read other scripts' digits ("５")
            raise ValueError(value)
        number = int(value)
    except ValueError:
        raise query_error(f"Query validation error: '{name}' must be an integer") from None
    if not low <= number <= high:
        raise query_error(f"Query validation error: '{name}' must be between {low} and {high}")
    return number


def page_params(query: Mapping[str, str]) -> tuple[int, int, bool]:
    """``page`` (0-based), ``per_page`` (1..100, default 50), ``include_totals``."""
    page = integer(query, "page", 0, 0, 10**9)
    per_page = integer(query, "per_page", DEFAULT_PER_PAGE, 1, MAX_PER_PAGE)
    return page, per_page, boolean(query, "include_totals", False)


def checkpoint_params(query: Mapping[str, str]) -> tuple[str | None, int]:
    """``from`` (an opaque checkpoint) and ``take`` (1..100, default 50); ``include_totals``
    means nothing here but must still be a boolean."""
    boolean(query, "include_totals", False)
    return query.get("from") or None, integer(query, "take", DEFAULT_PER_PAGE, 1, MAX_PER_PAGE)


def checkpoint_page(
    name: str, items: Sequence[dict[str, Any]], next_checkpoint: str | None
) -> dict[str, Any]:
    """§1.4 shape 3: ``{<name>: [...], next}``, without ``next`` on the last page."""
    body: dict[str, Any] = {name: list(items)}
    if next_checkpoint is not None:
        body["next"] = next_checkpoint
    return body


def offset_page(
    name: str,
    items: Sequence[dict[str, Any]],
    page: int,
    per_page: int,
    total: int | None,
    *,
    length: bool = True,
) -> list[dict[str, Any]] | dict[str, Any]:
    """§1.4 shapes 1 and 2: a plain array, or ``{start, limit, length, total, <name>}``
    (``length`` only for users and logs: the configuration lists have none)."""
    if total is None:
        return list(items)
    body: dict[str, Any] = {"start": page * per_page, "limit": per_page}
    if length:
        body["length"] = len(items)
    return {**body, "total": total, name: list(items)}


def page_of(
    name: str, items: Sequence[dict[str, Any]], query: Mapping[str, str]
) -> list[dict[str, Any]] | dict[str, Any]:
    """A configuration list (all of it in hand) cut to ``page``/``per_page``, in §1.4 shape 1
    or 2 (no ``length``), ``include_totals`` deciding."""
    page, per_page, with_total = page_params(query)
    cut = items[page * per_page : (page + 1) * per_page]
    return offset_page(name, cut, page, per_page, len(items) if with_total else None, length=False)


class FieldSelection:
    """``fields`` (comma-separated) and ``include_fields`` (true: only those; false: all but
    those), applied to each object answered."""

    def __init__(self, query: Mapping[str, str]) -> None:
        raw = query.get("fields") or ""
        self.names = frozenset(n.strip() for n in raw.split(",") if n.strip())
        self.include = boolean(query, "include_fields", True)

    def apply(self, item: dict[str, Any]) -> dict[str, Any]:
        if not self.names:
            return item
        if self.include:
            return {k: v for k, v in item.items() if k in self.names}
        return {k: v for k, v in item.items() if k not in self.names}


class RateLimitHeaders:
    """Puts ``X-RateLimit-Limit/Remaining/Reset`` (§1.7) on every ``/api/v2`` answer whose
    call was counted (pure ASGI: error answers and empty 204s included)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not is_management(scope["path"]):
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                status = scope.get("state", {}).get(STATE_KEY)
                if isinstance(status, RateLimitStatus):
                    headers = MutableHeaders(scope=message)
                    for name, value in rate_limit_headers(status).items():
                        if name not in headers:
                            headers[name] = value
            await send(message)

        await self.app(scope, receive, send_with_headers)
