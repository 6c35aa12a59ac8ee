"""The composition root: the only module that wires the framework to concrete adapters.

``create_app(settings)`` picks the database, the senders and the workers; no module builds
settings or engines at import time, so tests can run many differently configured apps.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import httpx
import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError, OperationalError, TimeoutError as PoolTimeout
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.exceptions import HTTPException
from starlette.responses import Response

from nopass.api.body_deadline import BodyDeadline
from nopass.api.cors import PublicCors
from nopass.api.deps import Services
from nopass.api.errors import common_error, unavailable_error
from nopass.api.hot_routes import HotRoutes
from nopass.api.management import RateLimitHeaders, router as management_router
from nopass.api.management.errors import (
    http_error as management_http_error,
    internal as management_internal,
    is_management,
    management_error,
    unavailable as management_unavailable,
    validation_error as management_validation_error,
)
from nopass.api.management.user_object import user_object
from nopass.api.responses import auth0_error
from nopass.api.routes import (
    authorize,
    cross_origin,
    dev,
    export_files,
    health,
    logout,
    magic_link,
    oauth,
    oidc,
    openapi,
    passwordless,
)
from nopass.core.clock import Clock, SystemClock
from nopass.core.errors import NopassError
from nopass.core.keyring import Keyring
from nopass.core.models import OutboxEntry
from nopass.delivery.sms import SmsRouter
from nopass.delivery.smtp import SmtpTransport
from nopass.delivery.templates import TemplateRenderer
from nopass.flows.authorization_request import BrowserDeps
from nopass.flows.limits import Limits
from nopass.flows.management.caller import ManagementDeps
from nopass.flows.management.job_runner import RunnerDeps, run_next
from nopass.flows.outbox import RetryPolicy, deliver_due
from nopass.flows.start import StartDeps
from nopass.flows.token import TokenDeps
from nopass.flows.userinfo import UserinfoDeps
from nopass.logconfig import AccessLog, configure_logging
from nopass.ratelimit.base import RateLimiter
from nopass.ratelimit.redis import RedisRateLimiter
from nopass.ratelimit.sql import SqlRateLimiter
from nopass.settings import Settings, with_secret
from nopass.store.config import ConfigCache
from nopass.store.engine import create_engine, reader
from nopass.store.housekeeping import purge
from nopass.store.kept_connections import KeptConnections
from nopass.store.keys import SqlKeyStore
from nopass.store.outbox_queue import SqlOutboxQueue
from nopass.store.unit_of_work import SqlUnitOfWork

log = structlog.get_logger("nopass")
READY_TIMEOUT_SECONDS = 2.0
ABANDONED_CHECK_SECONDS = 5.0
# The database (or another dependency) cannot be reached, a connection or statement timed out
# (TimeoutError is an OSError), or no pooled connection came free in time: fail closed.
UNAVAILABLE = (DBAPIError, PoolTimeout, OSError)


class OutboxWakeup:
    """Wakes this process's outbox worker at once when a start queued a message."""

    def __init__(self) -> None:
        self.event = asyncio.Event()
        self.stopping = False

    def notify(self) -> None:
        self.event.set()

    def stop(self) -> None:
        self.stopping = True
        self.event.set()

    async def wait(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self.event.wait()
        self.event.clear()


@dataclass
class Runtime:
    engine: AsyncEngine
    http: httpx.AsyncClient
    queue: SqlOutboxQueue
    config: ConfigCache
    wakeup: OutboxWakeup
    jobs: OutboxWakeup = field(default_factory=OutboxWakeup)  # wakes the job runner


async def job_runner(runtime: Runtime, deps: RunnerDeps, poll_seconds: float) -> None:
    """Run users import/export jobs, one at a time, as long as there are any; then wait
    for a submit (or the poll, which also finds the jobs of a runner that died)."""
    while not runtime.jobs.stopping:
        try:
            ran = await run_next(deps)
        except UNAVAILABLE as exc:
            log.warning("job_runner_unavailable", error=type(exc).__name__)
            ran = False
        except Exception:  # nothing must kill the loop
            log.exception("job_runner_error")
            ran = False
        if not ran:
            await runtime.jobs.wait(poll_seconds)


async def outbox_worker(
    runtime: Runtime, clock: Clock, settings: Settings, policy: RetryPolicy
) -> None:
    transport = SmtpTransport(timeout=settings.smtp_timeout_seconds, clock=clock)
    wakeup = runtime.wakeup
    loop = asyncio.get_running_loop()
    # Claims of a sender that died are taken back once their lease ran out: looking for
    # them every few seconds is soon enough, and saves a query per wake-up.
    check_every = min(ABANDONED_CHECK_SECONDS, policy.lease_seconds / 2)
    abandoned_checked = -check_every
    # The next batch, claimed while the last one was settled; None: claim what is due.
    claimed: list[OutboxEntry] | None = None
    # On stop, a batch already claimed is still delivered (graceful shutdown).
    while not wakeup.stopping or claimed:
        abandoned = loop.time() - abandoned_checked >= check_every
        if abandoned:
            abandoned_checked = loop.time()
        try:
            claimed = await deliver_due(
                runtime.queue,
                transport,
                runtime.config.email_provider,
                clock,
                policy,
                abandoned=abandoned,
                claimed=claimed,
                claim_next=not wakeup.stopping,
            )
        except UNAVAILABLE as exc:  # the database is away: say so, without a traceback
            log.warning("outbox_worker_unavailable", error=type(exc).__name__)
            claimed = None
        except Exception:  # anything else must not kill the worker either
            log.exception("outbox_worker_error")
            claimed = None
        # Go on at once with a batch claimed meanwhile; else wait for a start's wake-up
        # (one that queued a message while this batch went out has set it already).
        if not claimed:
            claimed = None
            await wakeup.wait(settings.outbox_poll_seconds)
    await transport.aclose()


async def housekeeping(runtime: Runtime, clock: Clock, every: float) -> None:
    """Purge dead rows now and then (with jitter, so processes do not all purge at once)."""
    while not runtime.wakeup.stopping:
        await asyncio.sleep(every * random.uniform(0.5, 1.0))  # noqa: S311 (jitter)
        try:
            removed = await purge(runtime.engine, clock.now())
        except UNAVAILABLE as exc:
            log.warning("housekeeping_unavailable", error=type(exc).__name__)
        except Exception:  # nothing must kill the loop
            log.exception("housekeeping_error")
        else:
            if removed:
                log.info("housekeeping", removed=removed)


def rate_limiter(settings: Settings, engine: AsyncEngine) -> RateLimiter:
    """Rate-limit counters every process shares (docs/specs/security.md §6): Redis when configured,
    with the database behind it; the database otherwise. Never per-process memory."""
    database = SqlRateLimiter(engine)
    if settings.redis_url:
        return RedisRateLimiter(settings.redis_url, fallback=database)
    return database


def create_app(
    settings: Settings,
    *,
    clock: Clock | None = None,
    http_transport: httpx.AsyncBaseTransport | None = None,
) -> FastAPI:
    """Build the ASGI app. ``http_transport`` replaces the network for outbound provider
    calls (SMS APIs); tests pass an ``httpx.MockTransport``."""
    settings = with_secret(settings, require=False)
    configure_logging(settings.log_level)
    clock = clock or SystemClock()
    keyring = Keyring(settings.secret_keys)
    engine = create_engine(
        settings.database_url,
        connect_timeout=settings.database_connect_timeout_seconds,
        command_timeout=settings.database_command_timeout_seconds,
        sqlite_busy_timeout_ms=settings.sqlite_busy_timeout_ms,
    )
    http = httpx.AsyncClient(
        timeout=settings.sms_timeout_seconds, transport=http_transport, trust_env=False
    )
    runtime = Runtime(
        engine=engine,
        http=http,
        queue=SqlOutboxQueue(engine, keyring),
        config=ConfigCache(engine),
        wakeup=OutboxWakeup(),
    )
    policy = RetryPolicy(
        base_seconds=settings.outbox_retry_base_seconds,
        cap_seconds=settings.outbox_retry_cap_seconds,
        lease_seconds=settings.outbox_lease_seconds,
        max_lost_claims=settings.outbox_max_lost_claims,
    )

    async def database_ready() -> bool:
        # Bounded as a whole (connecting included): a probe must answer before its timeout.
        try:
            async with asyncio.timeout(READY_TIMEOUT_SECONDS), engine.connect() as conn:
                # a write transaction on SQLite: ready means able to sign people in
                await conn.execute(text("SELECT 1"))
        except Exception:
            return False
        return True

    read_engine = reader(engine)
    # SQLite keeps its units of work's connections open (store/kept_connections.py).
    sqlite = engine.dialect.name == "sqlite" and ":memory:" not in settings.database_url
    writing = KeptConnections(engine) if sqlite else None
    reading = KeptConnections(read_engine) if sqlite else None

    def unit_of_work() -> SqlUnitOfWork:
        return SqlUnitOfWork(engine, keyring, kept=writing)

    def reading_unit_of_work() -> SqlUnitOfWork:
        return SqlUnitOfWork(read_engine, keyring, kept=reading)

    keys = SqlKeyStore(engine, keyring, runtime.config, clock)
    limits = Limits(limiter=rate_limiter(settings, engine), uow=unit_of_work, clock=clock)
    services = Services(
        tenants=runtime.config,
        tokens=TokenDeps(uow=unit_of_work, keyring=keyring, keys=keys, clock=clock, limits=limits),
        userinfo=UserinfoDeps(uow=reading_unit_of_work, keys=keys, clock=clock),
        browser=BrowserDeps(
            uow=unit_of_work, keyring=keyring, keys=keys, clock=clock, limits=limits
        ),
        start=StartDeps(
            uow=unit_of_work,
            keyring=keyring,
            renderer=TemplateRenderer(),
            sms=SmsRouter(http, timeout=settings.sms_timeout_seconds),
            outbox_signal=runtime.wakeup,
            clock=clock,
            limits=limits,
        ),
        outbox=runtime.queue,
        management=ManagementDeps(
            uow=unit_of_work,
            keys=keys,
            clock=clock,
            limits=limits,
            config_changed=runtime.config.invalidate,
            job_submitted=runtime.jobs.notify,
        ),
        trusted_proxies=settings.trusted_proxy_networks,
        dev_mode=settings.dev_mode,
        ready=database_ready,
    )

    runner_deps = RunnerDeps(
        uow=unit_of_work,
        clock=clock,
        tenants=runtime.config.by_id,
        user_object=user_object,
        lease_seconds=settings.job_lease_seconds,
    )

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        worker = asyncio.create_task(outbox_worker(runtime, clock, settings, policy))
        runner = (
            asyncio.create_task(job_runner(runtime, runner_deps, settings.job_poll_seconds))
            if settings.run_jobs
            else None
        )
        janitor = asyncio.create_task(housekeeping(runtime, clock, settings.housekeeping_seconds))
        try:
            yield
        finally:
            janitor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await janitor
            # A job cut short is taken up again once its lease runs out (by any process).
            runtime.jobs.stop()
            if runner is not None:
                runner.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await runner
            # Let a message being handed to SMTP finish (graceful), then stop for sure.
            runtime.wakeup.stop()
            try:
                async with asyncio.timeout(settings.smtp_timeout_seconds + 1):
                    await asyncio.shield(worker)
            except TimeoutError:
                worker.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await worker
            await http.aclose()
            await limits.limiter.aclose()
            for kept in (writing, reading):
                if kept is not None:
                    await kept.aclose()
            await engine.dispose()

    app = FastAPI(
        title="nopass",
        summary="Passwordless login server speaking Auth0's Authentication API",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,  # the hand-written document is served instead (api/routes/openapi.py)
    )
    app.state.services = services
    app.state.runtime = runtime
    app.include_router(passwordless.router)
    app.include_router(oauth.router)
    app.include_router(oidc.router)
    app.include_router(magic_link.router)
    app.include_router(authorize.router)
    app.include_router(logout.router)
    app.include_router(cross_origin.router)
    app.include_router(health.router)
    app.include_router(openapi.router)
    app.include_router(management_router)
    app.include_router(export_files.router)
    if settings.dev_mode:
        app.include_router(dev.router)
    _install_error_handlers(app)
    app.add_middleware(RateLimitHeaders)  # only /api/v2: its answers' X-RateLimit-* headers
    app.add_middleware(  # innermost of ours: CORS and the access log see these requests too
        HotRoutes,
        routes={
            ("POST", "/passwordless/start"): passwordless.passwordless_start,
            ("POST", "/oauth/token"): oauth.token,
        },
    )
    # Inside CORS, so a 408 carries its headers; outside the routes, so it holds for all.
    app.add_middleware(BodyDeadline, seconds=settings.request_body_timeout_seconds)
    app.add_middleware(PublicCors)
    app.add_middleware(AccessLog)
    return app


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(NopassError)
    async def nopass_error(request: Request, exc: NopassError) -> Response:
        if is_management(request.url.path):
            return management_error(exc)
        response = common_error(exc)
        return response or auth0_error(500, "server_error", "Internal error")

    # Fail closed (docs/specs/security.md §6): 503 temporarily_unavailable, never a 500.
    @app.exception_handler(OperationalError)
    @app.exception_handler(DBAPIError)
    @app.exception_handler(PoolTimeout)
    @app.exception_handler(OSError)
    async def database_down(request: Request, exc: Exception) -> Response:
        log.warning("dependency_unavailable", error=type(exc).__name__, path=request.url.path)
        if is_management(request.url.path):
            return management_unavailable()
        return unavailable_error()

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> Response:
        if is_management(request.url.path):
            return management_http_error(exc.status_code)
        names = {404: "not_found", 405: "method_not_allowed"}
        return auth0_error(
            exc.status_code, names.get(exc.status_code, "invalid_request"), str(exc.detail)
        )

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> Response:
        if is_management(request.url.path):
            return management_validation_error()
        return auth0_error(400, "invalid_request", "Invalid request")

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> Response:
        log.error("unhandled_error", error=type(exc).__name__, exc_info=exc)
        if is_management(request.url.path):
            return management_internal()
        return auth0_error(500, "server_error", "Internal error")


def create_app_from_env() -> FastAPI:
    """uvicorn factory for ``nopass serve`` workers: settings come from the environment."""
    return create_app(Settings())
