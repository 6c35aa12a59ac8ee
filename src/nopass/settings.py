"""Process-level settings, read once from the environment (``NOPASS_*``) and passed down.

The operator interface (names, defaults) is fixed by ``docs/specs/interface.md``.
"""

from __future__ import annotations

import ipaddress
import secrets
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_DATABASE_URL = "sqlite:///./var/nopass.db"
DEV_SECRET_FILE = Path("var/secret.key")

LogLevel = Literal["debug", "info", "warning", "error"]


class SettingsError(ValueError):
    """The environment does not describe a runnable server."""


class Settings(BaseSettings):
    """Everything a process needs that is not per-tenant configuration."""

    model_config = SettingsConfigDict(env_prefix="NOPASS_", extra="ignore", frozen=True)

    database_url: str = DEFAULT_DATABASE_URL
    redis_url: str | None = None
    secret_key: SecretStr | None = None
    trusted_proxies: str = ""
    log_level: LogLevel = "info"
    # Not part of the public interface: set by `nopass dev` only.
    dev_mode: bool = False
    # Outbox worker: how often to look for messages written by other processes.
    outbox_poll_seconds: float = Field(default=1.0, gt=0)
    outbox_retry_base_seconds: float = Field(default=1.0, gt=0)
    outbox_retry_cap_seconds: float = Field(default=30.0, gt=0)
    # A claim's lease: a sender that died (or stalled) holds its messages this long, then they
    # are sent again; a message whose claims ran out this many times fails with `fn`.
    outbox_lease_seconds: float = Field(default=60.0, gt=0)
    outbox_max_lost_claims: int = Field(default=3, ge=1)
    housekeeping_seconds: float = Field(default=60.0, gt=0)
    run_jobs: bool = True  # false: this process leaves users import/export jobs to others
    job_poll_seconds: float = Field(default=2.0, gt=0)
    job_lease_seconds: float = Field(default=60.0, gt=0)
    smtp_timeout_seconds: float = Field(default=10.0, gt=0)
    sms_timeout_seconds: float = Field(default=10.0, gt=0)
    # A request's whole body must arrive within this, or the answer is 408 (api/body_deadline.py).
    request_body_timeout_seconds: float = Field(default=10.0, gt=0)
    # Fail closed, and fast, when the database is unreachable (docs/specs/security.md §6): bounds on
    # connecting to PostgreSQL, on one statement, and on waiting for a SQLite lock.
    database_connect_timeout_seconds: float = Field(default=5.0, gt=0)
    database_command_timeout_seconds: float = Field(default=10.0, gt=0)
    sqlite_busy_timeout_ms: int = Field(default=10_000, ge=0)

    @field_validator("log_level", mode="before")
    @classmethod
    def _lower(cls, value: object) -> object:
        return value.lower() if isinstance(value, str) else value

    @field_validator("trusted_proxies")
    @classmethod
    def _cidrs(cls, value: str) -> str:
        for part in _split(value):
            try:
                ipaddress.ip_network(part, strict=False)
            except ValueError as exc:
                raise ValueError(f"not a CIDR: {part!r}") from exc
        return value

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @property
    def secret_keys(self) -> list[bytes]:
        """The pepper keys: the first writes, all are tried when reading."""
        if self.secret_key is None:
            raise SettingsError("NOPASS_SECRET_KEY is not set")
        keys = [k.encode() for k in _split(self.secret_key.get_secret_value())]
        if not keys:
            raise SettingsError("NOPASS_SECRET_KEY is empty")
        return keys

    @property
    def trusted_proxy_networks(self) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
        return [ipaddress.ip_network(p, strict=False) for p in _split(self.trusted_proxies)]


def _split(value: str) -> list[str]:
    return [p.strip() for p in value.split(",") if p.strip()]


def with_secret(settings: Settings, *, require: bool) -> Settings:
    """Fill in the secret key for SQLite installs from ``./var/secret.key`` (made once).

    ``serve`` refuses to start without ``NOPASS_SECRET_KEY`` unless the database is SQLite.
    """
    if settings.secret_key is not None:
        if any(len(k) < 16 for k in settings.secret_keys):
            raise SettingsError("NOPASS_SECRET_KEY: every key must be at least 16 characters")
        return settings
    if not settings.is_sqlite:
        if require:
            raise SettingsError(
                "NOPASS_SECRET_KEY must be set when the database is not SQLite (e.g. "
                "NOPASS_SECRET_KEY=$(python3 -c 'import secrets;print(secrets.token_urlsafe(32))'))"
            )
        return settings  # ./var/secret.key is the SQLite (dev) fallback only
    DEV_SECRET_FILE.parent.mkdir(parents=True, exist_ok=True)
    if not DEV_SECRET_FILE.exists():
        DEV_SECRET_FILE.write_text(secrets.token_urlsafe(32) + "\n")
        DEV_SECRET_FILE.chmod(0o600)
    key = DEV_SECRET_FILE.read_text().strip()
    return settings.model_copy(update={"secret_key": SecretStr(key)})
