"""Taking the database away from a running nopass, and giving it back.

PostgreSQL goes through a ``TcpProxy`` owned by the test (refused connections, or a
blackhole that answers nothing); SQLite is held under an exclusive lock by another
connection, longer than nopass's ``busy_timeout``.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass, field
from urllib.parse import urlsplit, urlunsplit

from sqlalchemy.engine import make_url

from tests.faults.proxy import TcpProxy, tcp_proxy


@dataclass
class SqliteOutage:
    """Another process holds the write lock (``BEGIN EXCLUSIVE``): every nopass transaction
    begins with ``BEGIN IMMEDIATE`` and gives up after ``busy_timeout``."""

    url: str
    modes: tuple[str, ...] = ("locked",)
    _holder: sqlite3.Connection | None = field(default=None, repr=False)

    def down(self, mode: str) -> None:
        assert mode in self.modes
        path = make_url(self.url).database
        assert path is not None
        holder = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        holder.execute("BEGIN EXCLUSIVE")
        self._holder = holder

    def up(self) -> None:
        holder, self._holder = self._holder, None
        if holder is not None:
            holder.rollback()
            holder.close()


@dataclass
class PostgresOutage:
    """nopass reaches PostgreSQL only through the proxy: ``refused`` closes it (connections
    fail at once), ``blackhole`` swallows everything (only timeouts end the wait)."""

    url: str
    proxy: TcpProxy
    modes: tuple[str, ...] = ("blackhole", "refused")

    def down(self, mode: str) -> None:
        assert mode in self.modes
        if mode == "refused":
            self.proxy.refuse()
        else:
            self.proxy.blackhole()

    def up(self) -> None:
        self.proxy.up()


Outage = SqliteOutage | PostgresOutage


@contextlib.contextmanager
def database_outage(database_url: str) -> Iterator[Outage]:
    """``outage.url`` is what nopass must be given; ``database_url`` still reaches the
    database directly (for the test's own checks)."""
    if database_url.startswith("sqlite"):
        outage = SqliteOutage(database_url)
        try:
            yield outage
        finally:
            outage.up()
        return
    parts = urlsplit(database_url)
    assert parts.hostname is not None
    with tcp_proxy(parts.hostname, parts.port or 5432) as proxy:
        netloc = parts.netloc.rsplit("@", 1)[0] + "@" if "@" in parts.netloc else ""
        netloc += f"127.0.0.1:{proxy.port}"
        yield PostgresOutage(urlunsplit(parts._replace(netloc=netloc)), proxy)
