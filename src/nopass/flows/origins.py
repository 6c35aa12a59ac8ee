"""Which browser origins may call nopass (docs/specs/auth0-wire.md §1.5): a client's Allowed Web
Origins (``web_origins``), Allowed Origins for CORS (``allowed_origins``) and the origins of its
callbacks. Origins compare as ``scheme://host[:port]``, lower-cased, default port dropped."""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import urlsplit

from nopass.core.models import Client, TenantConfig


def origin_of(url: str) -> str | None:
    """``scheme://host[:port]`` of an http(s) URL, lower-cased, default port dropped; None
    for anything else (custom schemes, opaque ``null``, malformed)."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https") or not parts.hostname:
        return None
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    default = 443 if scheme == "https" else 80
    return f"{scheme}://{host}" if port in (None, default) else f"{scheme}://{host}:{port}"


def client_origins(client: Client) -> frozenset[str]:
    """The client's Allowed Web Origins, Allowed Origins (CORS) and callback origins."""
    urls: Iterable[str] = (*client.web_origins, *client.allowed_origins, *client.callbacks)
    return frozenset(o for o in map(origin_of, urls) if o is not None)


def tenant_origins(config: TenantConfig) -> frozenset[str]:
    """Origins some client of the tenant allows."""
    return frozenset().union(*(client_origins(c) for c in config.clients.values()))


def origin_allowed(origin: str | None, allowed: frozenset[str]) -> bool:
    """Whether an ``Origin`` header value is one of ``allowed``. The header must be a bare
    origin (no path, query or user); ``null`` and a missing header never are."""
    if not origin or origin.strip() != origin:
        return False
    parts = urlsplit(origin)
    if parts.path or parts.query or parts.fragment or parts.username is not None:
        return False
    normal = origin_of(origin)
    return normal is not None and normal in allowed
