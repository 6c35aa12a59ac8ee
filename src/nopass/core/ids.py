"""Ids of configuration objects, shaped as Auth0's (docs/specs/management-api.md §2.3, §5)."""

from __future__ import annotations

import hashlib
import secrets
import string

ALPHABET = string.ascii_letters + string.digits


def alphanumerics(count: int) -> str:
    return "".join(secrets.choice(ALPHABET) for _ in range(count))


def grant_id() -> str:
    """A client grant's: ``cgr_`` + 16 alphanumerics."""
    return "cgr_" + alphanumerics(16)


def connection_id() -> str:
    """A connection's: ``con_`` + 16 alphanumerics."""
    return "con_" + alphanumerics(16)


def client_id() -> str:
    """A client's ``client_id``: 32 alphanumerics."""
    return alphanumerics(32)


def client_secret() -> str:
    """A generated client secret: 64 URL-safe characters (384 bits)."""
    return secrets.token_urlsafe(48)


def job_id() -> str:
    """A job's: ``job_`` + 16 alphanumerics."""
    return "job_" + alphanumerics(16)


def resource_server_id(tenant_id: str, identifier: str) -> str:
    """A resource server's: 24 hex, derived from its tenant and its (immutable) identifier, so
    that it is the same however the API came to be (the Management API, a file, the built-in
    one) and after any ``nopass apply``."""
    digest = hashlib.sha256(f"{tenant_id}\0{identifier}".encode()).hexdigest()
    return digest[:24]
