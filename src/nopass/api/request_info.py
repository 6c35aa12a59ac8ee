"""What the request says about its sender: IP, user agent, language, Basic credentials."""

from __future__ import annotations

import base64
import binascii
import ipaddress
import json
from urllib.parse import unquote

from starlette.requests import Request

from nopass.core.ports import RequestInfo

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def client_ip(request: Request, trusted: list[Network]) -> str | None:
    """The socket peer, or the right-most untrusted hop of X-Forwarded-For when the peer is a
    trusted proxy (``NOPASS_TRUSTED_PROXIES``)."""
    peer = request.client.host if request.client else None
    if peer is None or not trusted or not _is_trusted(peer, trusted):
        return peer
    forwarded = request.headers.get("x-forwarded-for", "")
    hops = [h.strip() for h in forwarded.split(",") if h.strip()]
    for hop in reversed(hops):
        if not _is_trusted(hop, trusted):
            return hop if _is_ip(hop) else peer
    return hops[0] if hops and _is_ip(hops[0]) else peer


def _is_ip(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


def _is_trusted(value: str, trusted: list[Network]) -> bool:
    try:
        address = ipaddress.ip_address(value)
    except ValueError:
        return False
    return any(address in net for net in trusted)


def request_info(request: Request, trusted: list[Network]) -> RequestInfo:
    return RequestInfo(
        ip=client_ip(request, trusted),
        user_agent=request.headers.get("user-agent"),
        auth0_client=auth0_client(request.headers.get("auth0-client")),
        forwarded_for=forwarded_for(request.headers.get("auth0-forwarded-for")),
    )


def forwarded_for(header: str | None) -> str | None:
    """The end-user IP in ``auth0-forwarded-for`` (docs/specs/auth0-wire.md §2.1), when it is one IP
    address. The flows believe it only from an authenticated, trusted confidential client."""
    value = (header or "").strip()
    if not value or len(value) > 64 or not _is_ip(value):
        return None
    return str(ipaddress.ip_address(value))


def auth0_client(header: str | None) -> dict[str, object] | None:
    """Decode SDK telemetry leniently: standard or url-safe base64, with or without padding.
    A missing or malformed header is never an error (docs/specs/auth0-wire.md §0)."""
    if not header or len(header) > 2048:
        return None
    value = header.strip().replace("-", "+").replace("_", "/")
    try:
        decoded = json.loads(base64.b64decode(value + "=" * (-len(value) % 4)))
    except (binascii.Error, ValueError):
        return None
    return decoded if isinstance(decoded, dict) else None


def request_language(request: Request) -> str | None:
    """``x-request-language``, else ``accept-language``, else None (docs/specs/auth0-wire.md
    §2.1)."""
    return request.headers.get("x-request-language") or request.headers.get("accept-language")


def basic_credentials(request: Request) -> tuple[str, str] | None:
    """``Authorization: Basic`` per RFC 6749 §2.3.1 (both parts form-url-encoded)."""
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic" or not value:
        return None
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    client_id, sep, secret = decoded.partition(":")
    if not sep:
        return None
    return unquote(client_id), unquote(secret)
