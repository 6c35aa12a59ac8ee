"""Connections kept open between units of work, on SQLite.

Taking a connection from SQLAlchemy's pool and giving it back costs two greenlet switches,
the pool's bookkeeping and its events: about 120 µs of CPU per transaction, more than the
statements of a short one (docs/benchmarks.md). A SQLite connection is a handle on a local
file, with nothing to go stale between uses, so a unit of work keeps its connection open
for the next one and only begins and ends transactions on it. PostgreSQL keeps the pool,
whose pre-ping notices a server that restarted.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

__all__ = ["KeptConnections"]


class KeptConnections:
    """Up to ``most`` idle connections of ``engine``, last in first out (the pool still
    opens new ones when all are in use). ``aclose`` before the engine is disposed."""

    def __init__(self, engine: AsyncEngine, *, most: int = 8) -> None:
        self.engine = engine
        self._most = most
        self._idle: list[AsyncConnection] = []
        self._closed = False

    async def take(self) -> AsyncConnection:
        while self._idle:
            conn = self._idle.pop()
            if not (conn.closed or conn.invalidated):
                return conn
        return await self.engine.connect()

    async def give(self, conn: AsyncConnection) -> None:
        """Keeps ``conn`` if it is healthy and outside any transaction; else closes it."""
        if (
            self._closed
            or len(self._idle) >= self._most
            or conn.closed
            or conn.invalidated
            or conn.in_transaction()
        ):
            await conn.close()
            return
        self._idle.append(conn)

    async def aclose(self) -> None:
        self._closed = True
        idle, self._idle = self._idle, []
        for conn in idle:
            await conn.close()
