"""``python -m bench.calls``: what one whole email-code login costs, counted rather than timed.

Runs the app in this process on SQLite (start → code over real SMTP on loopback → OTP
token exchange with ``offline_access``) and counts, per login: the SQL statements SQLite
executed (its trace callback), how many went through SQLAlchemy's execution instead of a
prebuilt plan, and the Python function calls (cProfile). Counts do not depend on what else
the machine is doing, so two trees can be compared on a busy 2-core machine where
throughput figures scatter by ±20 %:

    PYTHONPATH=/path/to/other/tree/src python -m bench.calls --logins 150
    python -m bench.calls --logins 150 --top 20     # and the functions called most often

Python calls track CPU per login closely on this code base (issue 13: 7,227 calls were
about 9 % more CPU than 6,503); timings printed here are profiled and only indicative.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import pstats
import sqlite3
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import httpx
from asgi_lifespan import LifespanManager
from pydantic import SecretStr
from sqlalchemy import event
from sqlalchemy.engine import Engine

from bench.client import SmtpSink
from bench.run import NOPASS_CODE
from bench.servers import CLIENT_ID, tenant_file

OTP_GRANT = "http://auth0.com/oauth/grant-type/passwordless/otp"
ORIGIN = "http://127.0.0.1:8123"

STATEMENTS: list[str] = []
_connect: Callable[..., sqlite3.Connection] = sqlite3.connect


def _traced_connect(*args: Any, **kwargs: Any) -> sqlite3.Connection:
    connection = _connect(*args, **kwargs)
    connection.set_trace_callback(STATEMENTS.append)
    return connection


async def _login(client: httpx.AsyncClient, sink: SmtpSink, n: int) -> None:
    email = f"user{n % 50}@bench.example"
    code = sink.expect(email)
    start = {"client_id": CLIENT_ID, "connection": "email", "email": email, "send": "code"}
    answer = await client.post("/passwordless/start", json=start)
    answer.raise_for_status()
    token = {
        "grant_type": OTP_GRANT,
        "client_id": CLIENT_ID,
        "username": email,
        "otp": await asyncio.wait_for(code, 10),
        "realm": "email",
        "scope": "openid offline_access",
    }
    (await client.post("/oauth/token", json=token)).raise_for_status()


async def main(logins: int, top: int) -> None:
    sqlite3.connect = _traced_connect  # aiosqlite connects through the module attribute
    import nopass
    from nopass.app import create_app
    from nopass.config_file import parse_config
    from nopass.settings import Settings
    from nopass.store.apply import apply_config
    from nopass.store.engine import create_engine
    from nopass.store.migrate import migrate_engine

    sa_path: Counter[str] = Counter()

    def record(_c: Any, _cursor: Any, statement: str, *_rest: Any) -> None:
        sa_path[" ".join(statement.split())[:100]] += 1

    sink = SmtpSink(NOPASS_CODE)
    smtp_port = await sink.start()
    with tempfile.TemporaryDirectory(prefix="nopass-calls-") as tmp:
        url = f"sqlite+aiosqlite:///{tmp}/calls.db"
        engine = create_engine(url)
        await migrate_engine(engine)
        config = tenant_file(8123, smtp_port)
        await apply_config(engine, parse_config(config), now=datetime.now(UTC))
        await engine.dispose()
        settings = Settings(
            database_url=url, secret_key=SecretStr("bench-calls-" + "x" * 32), log_level="warning"
        )
        app = create_app(settings)
        async with LifespanManager(app) as manager:
            transport = httpx.ASGITransport(app=manager.app, client=("203.0.113.7", 50000))
            async with httpx.AsyncClient(transport=transport, base_url=ORIGIN) as client:
                for n in range(20):  # plans, caches and pools warm up
                    await _login(client, sink, n)
                STATEMENTS.clear()
                event.listen(Engine, "before_cursor_execute", record)
                profile = cProfile.Profile()
                cpu = time.process_time()
                profile.enable()
                for n in range(logins):
                    await _login(client, sink, n)
                profile.disable()
                cpu = time.process_time() - cpu
                event.remove(Engine, "before_cursor_execute", record)
    await sink.stop()
    stats = pstats.Stats(profile)
    print(f"nopass from {nopass.__file__}; {logins} logins")
    print(f"SQL statements per login: {len(STATEMENTS) / logins:.2f}")
    fallbacks = {s: n / logins for s, n in sa_path.items() if n >= logins / 2}
    print(f"  through SQLAlchemy's execution, per login: {sum(fallbacks.values()):.2f}")
    for statement, n in sorted(fallbacks.items(), key=lambda kv: -kv[1]):
        print(f"    {n:5.2f}  {statement}")
    print(f"Python calls per login: {stats.total_calls / logins:,.0f}")  # type: ignore[attr-defined]
    print(f"CPU per login (profiled, indicative): {cpu / logins * 1000:.2f} ms")
    if top:
        stats.sort_stats("ncalls").print_stats(top)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--logins", type=int, default=150)
    parser.add_argument("--top", type=int, default=0, help="list the N most called functions")
    args = parser.parse_args()
    sys.exit(asyncio.run(main(args.logins, args.top)))
