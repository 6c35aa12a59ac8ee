"""A deadline on the request body, and clients that leave before their answer.

uvicorn waits for a declared body as long as the client keeps its connection open: a request
that declares 1000 bytes and sends 10 would hold the connection, and a task, for good. Here
the whole body gets ``seconds`` (``NOPASS_REQUEST_BODY_TIMEOUT_SECONDS``) from the moment the
request comes in; a read still waiting then raises ``BodyTimedOut`` into the app and the
answer is ``408 request_timeout`` with ``Connection: close``, whatever the app made of the
interrupted read (what it sends is dropped, what it raises is swallowed). A body that is slow
but complete in time is served as usual.

A client that disconnects before its answer is written, during its body or while the app
works, has met no failure of ours: the app's exception (Starlette's ``ClientDisconnect``, or
whatever a route made of the cut body) is dropped, and ``ClientDisconnected`` goes up to the
access log, which logs the request as one ``client_disconnected`` line. The app is not
interrupted: a start that got its whole body finishes (the code it sends stays good).

Once the body is complete, the server's next message is ``http.disconnect``: when the client
leaves, or once the answer is complete. A task listens for it (and hands it on to the app if
the app asks). A request without a body (no ``Content-Length``, no ``Transfer-Encoding``) is
complete at once: its empty body is read here, before the app, and handed to the app when it
asks.
"""

from __future__ import annotations

import asyncio

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from nopass.api.errors import body_timeout_error
from nopass.api.management.errors import is_management, management_error
from nopass.core.errors import BodyTimedOut, ClientDisconnected

__all__ = ["BodyDeadline"]


class BodyDeadline:
    """ASGI middleware: the body within ``seconds`` or a 408; a client that left raises
    ``ClientDisconnected`` (for the access log) instead of whatever the app raised."""

    def __init__(self, app: ASGIApp, *, seconds: float) -> None:
        self.app = app
        self.seconds = seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        exchange = _Exchange(receive, send, self.seconds)
        try:
            if not _has_body(scope):
                await exchange.read_ahead()
            await self.app(scope, exchange.receive, exchange.send)
        except Exception:
            if not (exchange.timed_out or exchange.gone):
                raise
        finally:
            exchange.stop_listening()
        if exchange.gone:
            raise ClientDisconnected()
        if exchange.timed_out and not exchange.started:
            # the Management API answers in its own envelope (docs/specs/management-api.md §1.5)
            late = (
                management_error(BodyTimedOut(self.seconds))
                if is_management(scope["path"])
                else body_timeout_error()
            )
            await late(scope, receive, send)


def _has_body(scope: Scope) -> bool:
    name: bytes
    value: bytes
    for name, value in scope["headers"]:
        if name == b"content-length":
            return value.strip() != b"0"
        if name == b"transfer-encoding":
            return True
    return False


class _Exchange:
    """One request's ``receive`` and ``send`` as the app sees them."""

    __slots__ = (
        "_ahead",
        "_deadline",
        "_listener",
        "_receive",
        "_seconds",
        "_send",
        "complete",
        "gone",
        "started",
        "timed_out",
    )

    def __init__(self, receive: Receive, send: Send, seconds: float) -> None:
        self._receive = receive
        self._send = send
        self._seconds = seconds
        self._deadline = asyncio.get_running_loop().time() + seconds
        self._ahead: Message | None = None  # a message read before the app asked for it
        self._listener: asyncio.Future[Message] | None = None  # once the body is complete
        self.timed_out = False  # the body did not arrive in time: the answer is the 408
        self.gone = False  # the client left before its answer was complete
        self.started = False  # the app's answer has started
        self.complete = False  # the app's answer is complete

    async def read_ahead(self) -> None:
        """A request without a body: its one (empty) message is there at once."""
        self._ahead = self._heard(await self._receive())

    async def receive(self) -> Message:
        ahead = self._ahead
        if ahead is not None:
            self._ahead = None
            return ahead
        listener = self._listener
        if listener is not None:  # the body is complete: what comes next is the disconnect
            return await asyncio.shield(listener)
        try:
            async with asyncio.timeout_at(self._deadline):
                message = await self._receive()
        except TimeoutError:
            self.timed_out = True
            raise BodyTimedOut(self._seconds) from None
        return self._heard(message)

    def _heard(self, message: Message) -> Message:
        if message["type"] == "http.disconnect":
            self.gone = self.gone or not self.complete
        elif not message.get("more_body", False):  # the body is complete
            self._listener = asyncio.ensure_future(self._receive())
            self._listener.add_done_callback(self._listened)
        return message

    def _listened(self, listener: asyncio.Future[Message]) -> None:
        if listener.cancelled() or listener.exception() is not None:
            return
        if listener.result()["type"] == "http.disconnect" and not self.complete:
            self.gone = True

    async def send(self, message: Message) -> None:
        if self.timed_out or self.gone:
            return  # the answer is the 408, or nobody's
        kind = message["type"]
        if kind == "http.response.start":
            self.started = True
        elif kind == "http.response.body" and not message.get("more_body", False):
            self.complete = True  # before the write: uvicorn ends the listener's wait in it
        await self._send(message)

    def stop_listening(self) -> None:
        listener = self._listener
        if listener is not None and not listener.done():
            listener.cancel()
