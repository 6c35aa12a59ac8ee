"""A TCP forwarder owned by a test, put between nopass and PostgreSQL to take the database
away and give it back (docs/specs/security.md §5 "Chaos and fault injection": a very small
Toxiproxy).

Three states:

- ``up``: every connection is forwarded to the target;
- ``refuse``: the listening socket is closed and live connections are cut, so connecting
  fails at once (a stopped database, a host that answers with a reset);
- ``blackhole``: connections are accepted but nothing is forwarded either way (a network
  partition, a hung server); only the client's own timeouts end the wait.

Going back ``up`` listens on the same port again and cuts what the blackhole held. The proxy
runs its own event loop in a thread, so it keeps forwarding while the test blocks (starting
a ``nopass serve`` waits synchronously, and that server migrates through the proxy).
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import threading
from collections.abc import Coroutine, Iterator
from typing import Any


class State(enum.Enum):
    UP = "up"
    REFUSE = "refuse"
    BLACKHOLE = "blackhole"


class _Forwarder:
    """The asyncio side; every method runs on the proxy's own loop."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.port = 0
        self.state = State.REFUSE
        self.accepted = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    async def up(self) -> None:
        self._cut_all()
        self.state = State.UP
        await self._listen()

    async def refuse(self) -> None:
        self.state = State.REFUSE
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        self._cut_all()

    async def blackhole(self) -> None:
        self.state = State.BLACKHOLE
        await self._listen()

    async def close(self) -> None:
        await self.refuse()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _listen(self) -> None:
        if self._server is None:
            self._server = await asyncio.start_server(self._accept, "127.0.0.1", self.port)
            self.port = int(self._server.sockets[0].getsockname()[1])

    def _cut_all(self) -> None:
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        self._writers.add(writer)
        if self.state is not State.UP:
            return  # held open, never read: the client hangs until it gives up or is cut
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.transport.abort()
            self._writers.discard(writer)
            return
        self._writers.add(up_writer)
        for pipe in (self._pipe(reader, up_writer), self._pipe(up_reader, writer)):
            task = asyncio.create_task(pipe)
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                if self.state is not State.UP:
                    return  # swallowed: the connection hangs until it is cut
                writer.write(data)
                await writer.drain()
        except OSError:
            pass
        if self.state is State.UP:  # one side closed: close the other
            writer.transport.abort()
            self._writers.discard(writer)


class TcpProxy:
    """Thread-safe control of a ``_Forwarder`` running on its own loop."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self._forwarder = _Forwarder((target_host, target_port))
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()

    @property
    def port(self) -> int:
        return self._forwarder.port

    @property
    def state(self) -> State:
        return self._forwarder.state

    @property
    def accepted(self) -> int:
        """Connections accepted so far (in any state)."""
        return self._forwarder.accepted

    def up(self) -> None:
        self._run(self._forwarder.up())

    def refuse(self) -> None:
        self._run(self._forwarder.refuse())

    def blackhole(self) -> None:
        self._run(self._forwarder.blackhole())

    def close(self) -> None:
        try:
            self._run(self._forwarder.close())
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
            self._loop.close()

    def _run(self, coro: Coroutine[Any, Any, None]) -> None:
        asyncio.run_coroutine_threadsafe(coro, self._loop).result(10)


@contextlib.contextmanager
def tcp_proxy(target_host: str, target_port: int) -> Iterator[TcpProxy]:
    """A proxy in the ``up`` state on a free loopback port."""
    proxy = TcpProxy(target_host, target_port)
    try:
        proxy.up()
        yield proxy
    finally:
        proxy.close()
