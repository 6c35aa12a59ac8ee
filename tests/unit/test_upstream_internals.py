"""Guards on the private internals of dependencies that nopass relies on
(docs/upstream-internals.md). Those dependencies are pinned (pyproject.toml); when an
upgrade changes one of the internals, the test that names it fails and says what to review.
Each test checks the attribute, signature or behaviour nopass uses, on the real library."""

from __future__ import annotations

import asyncio
import hashlib
import importlib.metadata
import inspect
import re
import signal
import sqlite3
import tomllib
from functools import partial
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import aiosqlite
import httpx
import starlette._exception_handler as _eh
import uvicorn
from sqlalchemy import Column, Integer, MetaData, String, Table, insert, select, text
from sqlalchemy.dialects import sqlite
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.sql.compiler import SQLCompiler
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send
from uvicorn.config import STARTUP_FAILURE
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle
from uvicorn.server import ServerState
from uvicorn.supervisors import multiprocess
from uvicorn.supervisors.multiprocess import Multiprocess, Process

from nopass.api.hot_routes import _handler_for
from nopass.api.http_protocol import OneWriteHttpToolsProtocol
from nopass.store.engine import create_engine
from nopass.store.sqlite_driver import LeanConnection
from nopass.store.tables import UTCDateTime

ROOT = Path(__file__).resolve().parents[2]
CLI_HTTP = "nopass.api.http_protocol:OneWriteHttpToolsProtocol"  # as cli._run_server passes it
PINNED = {"aiosqlite": "0.22.1", "sqlalchemy": "2.1.9", "starlette": "1.10.0", "uvicorn": "0.54.0"}


def test_the_dependencies_whose_internals_we_use_are_pinned_to_the_locked_versions() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    declared = {
        re.split(r"[\[=<>~!]", d, maxsplit=1)[0].lower(): d
        for d in project["project"]["dependencies"]
    }
    lock = (ROOT / "requirements" / "lock.txt").read_text()
    for name, version in PINNED.items():
        assert declared[name].endswith(f"=={version}"), (
            f"pyproject.toml must pin {name}=={version} (docs/upstream-internals.md), "
            f"not {declared[name]!r}"
        )
        assert re.search(rf"^{name}=={re.escape(version)}$", lock, re.M | re.I), (
            f"requirements/lock.txt does not lock {name}=={version}: pin both together"
        )
        assert importlib.metadata.version(name) == version, (
            f"{name} {importlib.metadata.version(name)} is installed, {version} is pinned"
        )


# aiosqlite (store/sqlite_driver.py) ------------------------------------------------------


def test_aiosqlite_connection_is_built_from_a_connector_and_a_chunk_size() -> None:
    params = list(inspect.signature(aiosqlite.Connection.__init__).parameters)
    assert params[1:3] == ["connector", "iter_chunk_size"], (
        "aiosqlite.Connection(connector, iter_chunk_size) changed: "
        f"sqlite_driver.connector builds LeanConnection with it; now {params}"
    )
    for name in ("cursor", "commit", "rollback", "close", "stop"):
        assert callable(getattr(aiosqlite.Connection, name, None)), (
            f"aiosqlite.Connection.{name} is gone: LeanConnection overrides it, or "
            "SQLAlchemy's adapter calls it"
        )


async def test_aiosqlite_holds_the_sqlite3_connection_in_its_private__connection(
    tmp_path: Path,
) -> None:
    """LeanConnection runs statements on ``self._connection`` (aiosqlite's sqlite3 handle):
    set once the connection is open, None once it is closed."""
    opener = partial(sqlite3.connect, str(tmp_path / "x.db"), check_same_thread=False)
    conn = LeanConnection(opener, 64)
    assert conn._connection is None, "aiosqlite.Connection._connection is not None before open"
    await conn
    try:
        assert isinstance(conn._connection, sqlite3.Connection), (
            "aiosqlite.Connection._connection no longer holds the sqlite3 connection "
            "(store/sqlite_driver.LeanConnection reads it)"
        )
    finally:
        await conn.close()
    assert conn._connection is None, "aiosqlite.Connection.close() no longer clears _connection"


# SQLAlchemy (store/sqlite_driver.py, store/engine.py, store/prebuilt.py) ----------------


async def test_sqlalchemy_s_aiosqlite_adapter_drives_the_lean_connection(tmp_path: Path) -> None:
    """SQLAlchemy's adapter holds our LeanConnection as the driver connection, fires the
    "begin" event (whose BEGIN the connection keeps until the first statement), runs
    statements through its ``cursor()`` and ends transactions with its ``commit()``."""
    engine = create_engine(f"sqlite:///{tmp_path / 'x.db'}")
    try:
        async with engine.connect() as conn:
            await conn.begin()
            raw = await conn.get_raw_connection()
            driver = raw.driver_connection
            assert isinstance(driver, LeanConnection), (
                "SQLAlchemy's aiosqlite dialect no longer hands out the connection that "
                f"async_creator made (got {type(driver).__name__})"
            )
            assert driver._begin == "BEGIN IMMEDIATE", "the 'begin' event did not reach us"
            assert (await conn.execute(text("SELECT 41 + 1"))).scalar_one() == 42
            handle = driver._connection
            assert handle is not None
            assert driver._begin is None, "the statement did not run through LeanCursor"
            assert handle.in_transaction
            await conn.commit()
            assert not handle.in_transaction, "SQLAlchemy's commit did not reach LeanConnection"
    finally:
        await engine.dispose()


def test_sqlalchemy_compiled_result_columns_name_and_type_each_column_in_order() -> None:
    """prebuilt._row_maker builds rows from ``SQLCompiler._result_columns``."""
    table = Table("t", MetaData(), Column("a", Integer), Column("b", UTCDateTime()))
    for statement, names in (
        (select(table), ["a", "b"]),
        (insert(table).values(a=1).returning(table.c.b, table.c.a), ["b", "a"]),
    ):
        compiled = statement.compile(dialect=sqlite.dialect())
        assert isinstance(compiled, SQLCompiler)
        columns = getattr(compiled, "_result_columns", None)
        assert columns is not None, "SQLCompiler._result_columns is gone (store/prebuilt.py)"
        assert [c.keyname for c in columns] == names, (
            "SQLCompiler._result_columns entries no longer carry .keyname in the SQL's order"
        )
        types = {c.keyname: c.type for c in columns}
        assert isinstance(types["b"], UTCDateTime), "_result_columns entries lost their .type"


def test_sqlalchemy_compiled_attributes_prebuilt_reads_exist() -> None:
    table = Table("t", MetaData(), Column("a", Integer), Column("s", String))
    compiled = select(table).where(table.c.a == 1).compile(dialect=sqlite.dialect())
    for name in (
        "positiontup",
        "insert_prefetch",
        "update_prefetch",
        "literal_execute_params",
        "post_compile_params",
        "escaped_bind_names",
        "has_out_parameters",
        "bind_names",
        "string",
    ):
        assert hasattr(compiled, name), f"SQLCompiler.{name} is gone (store/prebuilt.py)"
    assert compiled.positiontup == ["a_1"]


def test_sqlalchemy_wraps_a_sqlite3_error_as_its_own_dbapi_error() -> None:
    """prebuilt.run raises what SQLAlchemy would, through ``DBAPIError.instance``."""
    orig = sqlite3.IntegrityError("UNIQUE constraint failed: t.a")
    wrapped = DBAPIError.instance("INSERT", [1], orig, sqlite3.Error, dialect=sqlite.dialect())
    assert isinstance(wrapped, IntegrityError), "DBAPIError.instance no longer maps the class"
    assert wrapped.orig is orig


# Starlette (api/hot_routes.py, api/cors.py) -------------------------------------------


async def test_starlette_puts_the_application_and_its_exception_handlers_in_the_scope() -> None:
    seen: dict[str, Any] = {}

    async def endpoint(request: Request) -> Response:
        seen["app"] = request.scope["app"]
        return PlainTextResponse("ok")

    async def handler(request: Request, exc: Exception) -> Response:
        return PlainTextResponse("handled")

    app = Starlette(routes=[Route("/", endpoint)], exception_handlers={KeyError: handler})
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        assert (await client.get("/")).text == "ok"
    assert seen["app"] is app, "Starlette no longer puts the application in scope['app']"
    assert app.exception_handlers.get(KeyError) is handler, (
        "Starlette.exception_handlers no longer maps exception classes to their handlers"
    )


def test_starlette_picks_a_handler_by_the_exception_s_mro_as_hot_routes_does() -> None:
    """hot_routes._handler_for copies the lookup of Starlette's exception middleware
    (``starlette._exception_handler._lookup_exception_handler``)."""

    async def one(request: Request, exc: Exception) -> Response:
        return PlainTextResponse("one")

    async def two(request: Request, exc: Exception) -> Response:
        return PlainTextResponse("two")

    handlers: dict[Any, Any] = {LookupError: one, ValueError: two, Exception: two}
    scope = {"app": SimpleNamespace(exception_handlers=handlers)}
    middleware_handlers = {k: v for k, v in handlers.items() if k is not Exception}
    for exc in (KeyError(), IndexError(), UnicodeError(), ValueError(), RuntimeError()):
        theirs = _eh._lookup_exception_handler(middleware_handlers, exc)
        assert _handler_for(scope, exc) is theirs, (
            f"Starlette's exception handler lookup now answers {theirs} for "
            f"{type(exc).__name__}: update api/hot_routes._handler_for"
        )


async def test_starlette_s_server_error_middleware_answers_what_a_middleware_raises() -> None:
    """HotRoutes re-raises what has no handler of its own class: the handler of
    ``Exception`` must answer it from outside the user middleware."""

    class Raising:
        def __init__(self, app: ASGIApp) -> None:
            self.app = app

        async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] == "http":
                raise RuntimeError("boom")
            await self.app(scope, receive, send)

    async def server_error(request: Request, exc: Exception) -> Response:
        return PlainTextResponse("server error", status_code=500)

    app = Starlette(middleware=[Middleware(Raising)], exception_handlers={Exception: server_error})
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        response = await client.get("/")
    assert (response.status_code, response.text) == (500, "server error"), (
        "Starlette's ServerErrorMiddleware no longer answers with the Exception handler "
        "what a user middleware raises (api/hot_routes.py relies on it)"
    )


# uvicorn (api/http_protocol.py) ----------------------------------------------------------


class _RecordingTransport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.writes.append(bytes(data))

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 50000), "sockname": ("127.0.0.1", 80)}.get(name, default)

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


async def test_uvicorn_httptools_cycle_writes_head_then_body_through_its_transport() -> None:
    """OneWriteHttpToolsProtocol overrides ``on_headers_complete``, finds the new request's
    ``self.cycle`` (a RequestResponseCycle with ``scope``) and replaces ``cycle.transport``;
    it expects the head to come as one write starting ``HTTP/1.1 `` and the body after."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        headers = [(b"content-length", b"4")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b"body"})

    assert "on_headers_complete" in vars(HttpToolsProtocol), (
        "uvicorn's HttpToolsProtocol.on_headers_complete is gone (api/http_protocol.py)"
    )
    config = uvicorn.Config(app, http="httptools", lifespan="off", log_config=None)
    state = ServerState()
    protocol = HttpToolsProtocol(config, state, {})
    transport = _RecordingTransport()
    protocol.connection_made(transport)
    protocol.data_received(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
    cycle = protocol.cycle
    assert isinstance(cycle, RequestResponseCycle), "HttpToolsProtocol.cycle is no cycle"
    assert cycle.transport is transport, "RequestResponseCycle.transport is not the transport"
    assert cycle.scope["method"] == "GET", "RequestResponseCycle.scope is gone"
    await asyncio.gather(*state.tasks)
    assert len(transport.writes) == 2, (
        f"uvicorn now writes an answer in {len(transport.writes)} writes, not head + body"
    )
    head, body = transport.writes
    assert head.startswith(b"HTTP/1.1 200 ") and head.endswith(b"\r\n\r\n")
    assert body == b"body"


def test_uvicorn_takes_the_http_protocol_as_an_import_string() -> None:
    """``nopass serve`` passes ``http="nopass.api.http_protocol:OneWriteHttpToolsProtocol"``."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        pass

    config = uvicorn.Config(app, http=CLI_HTTP, lifespan="off", log_config=None)
    config.load()
    assert config.http_protocol_class is OneWriteHttpToolsProtocol, (
        "uvicorn.Config(http='module:Class') no longer loads that protocol class"
    )


# uvicorn (workers.py) --------------------------------------------------------------------

# workers.ReusePortMultiprocess replaces these with copies of uvicorn 0.54.0's that start a
# worker on its own socket. The digests are of upstream's source at that version.
REPLACED = {
    "init_processes": "6c69f2a36bf55750164a2e39f2bf552a9f5b456b07109ed07d165399a441290d",
    "restart_all": "438dec6d95be9fcdfdaf6ea8d2d6fd98f186c3645d94ce59c43de3bcdb148d25",
    "keep_subprocess_alive": "3ba4980aa33bcecdf3d0a725ca9c4e8d92238f72d239e522120ad6e05147fd59",
}


def _digest(function: Any) -> str:
    return hashlib.sha256(inspect.getsource(function).encode()).hexdigest()


def test_uvicorn_multiprocess_methods_that_workers_py_replaces_are_unchanged() -> None:
    for name, digest in REPLACED.items():
        assert _digest(getattr(Multiprocess, name)) == digest, (
            f"uvicorn's Multiprocess.{name} changed upstream: nopass.workers."
            f"ReusePortMultiprocess.{name} is a copy of uvicorn 0.54.0's with each worker on "
            "its own socket; port the change, then update the digest here"
        )


def test_uvicorn_multiprocess_runs_through_the_replaced_methods() -> None:
    run = inspect.getsource(Multiprocess.run)
    for call in ("self.init_processes()", "self.keep_subprocess_alive()"):
        assert call in run, f"uvicorn's Multiprocess.run no longer calls {call}"
    assert "self.restart_all()" in inspect.getsource(Multiprocess.handle_hup), (
        "uvicorn's Multiprocess.handle_hup no longer calls self.restart_all()"
    )
    dispatch = 'getattr(self, f"handle_{sig_name.lower()}"'
    assert dispatch in inspect.getsource(Multiprocess.handle_signals), (
        "uvicorn's Multiprocess.handle_signals no longer finds handle_<signal> by name: "
        "workers.py's handle_ttin/handle_ttou (refusing to change the number of workers) "
        "may not be called"
    )
    assert {"TTIN", "TTOU"} <= set(multiprocess.SIGNALS.values()), "SIGTTIN/SIGTTOU handling"
    for cls, params in ((Multiprocess, ["config", "sockets"]), (Process, ["config", "sockets"])):
        got = list(inspect.signature(cls.__init__).parameters)[1:]
        assert got == params, f"uvicorn's {cls.__name__}({', '.join(params)}) is now {got}"
    for name in ("start", "kill", "join", "terminate", "is_alive", "wait_until_ready"):
        assert callable(getattr(Process, name, None)), f"uvicorn's Process.{name} is gone"
    for name in ("pid", "exitcode"):
        assert isinstance(getattr(Process, name, None), property), f"Process.{name} is gone"
    assert isinstance(STARTUP_FAILURE, int)


def test_uvicorn_multiprocess_keeps_its_state_where_workers_py_reads_it() -> None:
    handlers = {sig: signal.getsignal(sig) for sig in multiprocess.SIGNALS}
    try:
        supervisor = Multiprocess(uvicorn.Config("nopass.app:create_app_from_env"), sockets=[])
    finally:
        for sig, handler in handlers.items():
            signal.signal(sig, handler)
    for name in ("config", "processes", "processes_num", "should_exit"):
        assert hasattr(supervisor, name), f"uvicorn's Multiprocess.{name} is gone"
    assert supervisor.processes == []
    assert hasattr(supervisor.config, "timeout_worker_healthcheck")
