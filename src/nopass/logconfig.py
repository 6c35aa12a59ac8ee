"""JSON logs on stderr (structlog). Never log codes, links, tokens or secrets: request paths are
logged without their query string, and bodies are never logged."""

from __future__ import annotations

import logging
import sys
import time
from typing import Any

import structlog
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from nopass.core.errors import ClientDisconnected

LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}


def configure_logging(level: str) -> None:
    """structlog for our own events; the standard library's loggers (providers, SQLAlchemy,
    uvicorn) go to the same stderr as JSON lines too."""
    root = logging.getLogger()
    if not any(isinstance(h.formatter, JsonFormatter) for h in root.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(JsonFormatter())
        root.addHandler(handler)
    # Libraries speak up from WARNING (httpx would log every provider URL at INFO); our own
    # loggers follow NOPASS_LOG_LEVEL.
    root.setLevel(logging.WARNING)
    logging.getLogger("nopass").setLevel(LEVELS.get(level, logging.INFO))
    structlog.configure(
        processors=[
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(LEVELS.get(level, logging.INFO)),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )


class AccessLog:
    """One JSON line per request: method, path (no query), status, duration, client. A
    request whose client left before its answer (``ClientDisconnected``, from
    api/body_deadline.py) is a ``client_disconnected`` line instead, without a status: it
    ends there, not as a server error."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.log = structlog.get_logger("nopass.access")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        gone = False
        try:
            await self.app(scope, receive, send_wrapper)
        except ClientDisconnected:
            gone = True
        finally:
            client: Any = scope.get("client")
            line: dict[str, Any] = {"method": scope["method"], "path": scope["path"]}
            if not gone:
                line["status"] = status
            line["duration_ms"] = round((time.perf_counter() - started) * 1000, 2)
            line["peer"] = client[0] if client else None
            self.log.info("client_disconnected" if gone else "request", **line)


class JsonFormatter(logging.Formatter):
    """For the server's own (uvicorn) log lines, so stderr is JSON throughout."""

    def format(self, record: logging.LogRecord) -> str:
        import json
        from datetime import UTC, datetime

        return json.dumps(
            {
                "timestamp": datetime.fromtimestamp(record.created, UTC).isoformat(),
                "level": record.levelname.lower(),
                "logger": record.name,
                "event": record.getMessage(),
            }
        )


def uvicorn_log_config(level: str) -> dict[str, Any]:
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": "nopass.logconfig.JsonFormatter"}},
        "handlers": {
            "stderr": {
                "class": "logging.StreamHandler",
                "formatter": "json",
                "stream": "ext://sys.stderr",
            }
        },
        "loggers": {
            "uvicorn": {"handlers": ["stderr"], "level": level.upper(), "propagate": False},
            "uvicorn.error": {"level": level.upper()},
            "uvicorn.access": {"handlers": [], "level": "WARNING", "propagate": False},
        },
    }
