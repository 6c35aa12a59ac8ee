"""``make bench``: whole email-code logins and single endpoints, nopass and a peer, one run.

The runner (this process) is the load generator: it pins itself to the last core, serves
the SMTP sink the codes arrive at, drives logins over keep-alive HTTP, and starts ``wrk``
(pinned to the same core) for single endpoints. The servers under test may use every core.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import re
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg

from bench import procstat, report, seed, user_listing
from bench.client import ConnectionPool, HttpConnection, SmtpSink
from bench.loadgen import Driver, allauth_login, nopass_login
from bench.servers import ALL_CPUS, CLIENT_ID, Nopass, free_port

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
NOPASS_CODE = re.compile(r"(?m)^\s*(\d{6})\s*$")
GENERATOR_CPU = (os.cpu_count() or 1) - 1


@dataclass(frozen=True)
class Plan:
    """How long each measurement runs (the smoke plan only checks that everything works)."""

    warmup: float = 3.0
    seconds: float = 12.0
    open_seconds: float = 10.0
    endpoint_seconds: float = 4.0
    concurrency: int = 24
    accounting_logins: int = 200
    datasets: tuple[int, ...] = (1_000, 1_000_000)
    workers: int = 2


SMOKE = Plan(  # long enough that a login completes on a loaded 2-core CI machine
    warmup=1.0,
    seconds=5.0,
    open_seconds=1.0,
    endpoint_seconds=1.0,
    concurrency=4,
    accounting_logins=10,
    datasets=(1_000,),
)


def log(message: str) -> None:
    print(f"[bench {datetime.now(UTC):%H:%M:%S}] {message}", flush=True)


# -- measurements ---------------------------------------------------------------------------


@dataclass
class Cpu:
    """CPU seconds spent by the server processes (and the database's) during a window."""

    server: Callable[[], list[int]]
    database: Callable[[], list[int]]

    @contextlib.contextmanager
    def window(self, into: dict[str, float]) -> Iterator[None]:
        server, database = self.server(), self.database()
        s0, d0 = procstat.cpu_seconds(server), procstat.cpu_seconds(database)
        yield
        into["server_cpu_s"] = procstat.cpu_seconds(server) - s0
        into["database_cpu_s"] = procstat.cpu_seconds(database) - d0


async def logins(driver: Driver, cpu: Cpu, plan: Plan) -> dict[str, Any]:
    """Peak throughput (closed loop), then latency at half that rate (open loop)."""
    used: dict[str, float] = {}
    with cpu.window(used):
        peak = await driver.closed_loop(plan.concurrency, plan.warmup, plan.seconds)
    # the window includes the warm-up: scale CPU to the measured logins' share of it
    share = plan.seconds / (plan.warmup + plan.seconds)
    result: dict[str, Any] = {"peak": peak.summary()}
    if peak.ok:
        per_login = {k: v * share / peak.ok * 1000 for k, v in used.items()}
        result["cpu_ms_per_login"] = {
            "server": round(per_login["server_cpu_s"], 3),
            "database": round(per_login["database_cpu_s"], 3),
            "total": round(sum(per_login.values()), 3),
        }
        half = await driver.open_loop(max(1.0, peak.rate / 2), 1.0, plan.open_seconds)
        result["half_load"] = {"offered_per_second": round(peak.rate / 2, 1), **half.summary()}
    return result


async def wrk(script: str, port: int, seconds: float, env: dict[str, str]) -> dict[str, Any]:
    wrk_bin = shutil.which("wrk")
    if wrk_bin is None:
        return {"skipped": "wrk is not installed (apt-get install wrk)"}
    process = await asyncio.create_subprocess_exec(
        "taskset",
        "-c",
        str(GENERATOR_CPU),
        wrk_bin,
        "-t1",
        "-c16",
        f"-d{max(1, round(seconds))}s",
        "-s",
        str(HERE / "wrk" / script),
        f"http://127.0.0.1:{port}",
        env={**os.environ, "BENCH_WRK_DIR": str(HERE / "wrk"), **env},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await process.communicate()
    text = out.decode(errors="replace")
    found = re.search(r"BENCH_JSON (\{.*\})", text)
    if not found:
        return {"error": text[-500:]}
    raw = json.loads(found.group(1))
    seconds_run = raw["duration_us"] / 1e6
    return {
        "per_second": round(raw["requests"] / seconds_run, 1),
        "requests": raw["requests"],
        "non_2xx": raw["non2xx"],
        "socket_errors": raw["socket_errors"],
        "p50_ms": raw["p50_us"] / 1000,
        "p95_ms": raw["p95_us"] / 1000,
        "p99_ms": raw["p99_us"] / 1000,
    }


async def token_alone(
    sink: SmtpSink, pool: ConnectionPool, users: int, count: int, concurrency: int
) -> dict[str, Any]:
    """OTP exchanges only: codes are requested first, then exchanged as fast as possible."""
    emails = [seed.email_of(i) for i in range(min(users, count))]
    codes: dict[str, str] = {}

    async def get_code(email: str, conn: HttpConnection) -> None:
        future = sink.expect(email)
        body = json.dumps(
            {"client_id": CLIENT_ID, "connection": "email", "email": email, "send": "code"}
        ).encode()
        r = await conn.request("POST", "/passwordless/start", body=body)
        if r.status == 200:
            codes[email] = await asyncio.wait_for(future, 10)
        sink.forget(email)

    await _fan_out(pool, concurrency, emails, get_code)
    latencies: list[float] = []
    failures = 0

    async def exchange(email: str, conn: HttpConnection) -> None:
        nonlocal failures
        body = json.dumps(
            {
                "grant_type": "http://auth0.com/oauth/grant-type/passwordless/otp",
                "client_id": CLIENT_ID,
                "username": email,
                "otp": codes[email],
                "realm": "email",
                "scope": "openid profile email",
            }
        ).encode()
        began = time.perf_counter()
        r = await conn.request("POST", "/oauth/token", body=body)
        if r.status == 200:
            latencies.append(time.perf_counter() - began)
        else:
            failures += 1

    began = time.perf_counter()
    await _fan_out(pool, concurrency, list(codes), exchange)
    elapsed = time.perf_counter() - began
    latencies.sort()

    def pct(p: float) -> float:
        return round(latencies[min(len(latencies) - 1, int(p / 100 * len(latencies)))] * 1000, 2)

    return (
        {
            "per_second": round(len(latencies) / elapsed, 1),
            "requests": len(latencies) + failures,
            "non_2xx": failures,
            "p50_ms": pct(50),
            "p95_ms": pct(95),
            "p99_ms": pct(99),
        }
        if latencies
        else {"error": f"no successful exchange ({failures} failed)"}
    )


async def _fan_out(pool: ConnectionPool, concurrency: int, items: list[str], work: Any) -> None:
    queue = list(reversed(items))

    async def worker() -> None:
        conn = pool.take()
        try:
            while queue:
                await work(queue.pop(), conn)
        finally:
            pool.give(conn)

    await asyncio.gather(*(worker() for _ in range(concurrency)))


# -- database accounting --------------------------------------------------------------------


async def accounting(
    driver: Driver, backend: str, server: Callable[[], list[int]], database_url: str, plan: Plan
) -> dict[str, Any]:
    """Durable writes per login, from a separate low-concurrency pass."""
    n = plan.accounting_logins
    if backend == "sqlite":
        strace = shutil.which("strace")
        if strace is None:
            return {"skipped": "strace is not installed (apt-get install strace)"}
        pids = [str(p) for p in server()]
        args = ["-f", "-c", "-e", "trace=fsync,fdatasync,pwrite64,write"]
        for pid in pids:
            args += ["-p", pid]
        tracer = await asyncio.create_subprocess_exec(
            strace, *args, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE
        )
        await asyncio.sleep(1.0)  # let strace attach to every thread
        outcome = await _count(driver, n)
        await asyncio.sleep(0.5)
        tracer.send_signal(2)
        _, err = await tracer.communicate()
        calls = _strace_calls(err.decode(errors="replace"))
        fsyncs = calls.get("fsync", 0) + calls.get("fdatasync", 0)
        return {
            "logins": outcome,
            "fsyncs_per_login": round(fsyncs / outcome, 2) if outcome else None,
            "note": "SQLite WAL with synchronous=FULL syncs the WAL once per commit",
        }
    db = await asyncpg.connect(database_url)
    try:
        query = (
            "SELECT xact_commit, tup_inserted + tup_updated + tup_deleted AS rows"
            " FROM pg_stat_database WHERE datname = current_database()"
        )

        async def snapshot() -> tuple[int, int]:
            await asyncio.sleep(1.2)  # statistics are flushed about once a second
            await db.execute("SELECT pg_stat_clear_snapshot()")
            row = await db.fetchrow(query)
            return int(row["xact_commit"]), int(row["rows"])

        c0, r0 = await snapshot()
        began = time.perf_counter()
        outcome = await _count(driver, n)
        busy = time.perf_counter() - began
        c1, r1 = await snapshot()
        await asyncio.sleep(busy)  # the same time idle: background commits to subtract
        c2, _ = await snapshot()
        idle_c = max(0, (c2 - c1) - 1) * busy / (busy + 1.2)  # -1: our own snapshot
        commits = (c1 - c0) - 1 - idle_c
        return {
            "logins": outcome,
            "commits_per_login": round(commits / outcome, 2) if outcome else None,
            "rows_written_per_login": round((r1 - r0) / outcome, 2) if outcome else None,
        }
    finally:
        await db.close()


async def _count(driver: Driver, n: int) -> int:
    done = 0
    while done < n:
        outcome = await driver.closed_loop(4, 0.0, 0.5)
        done += outcome.ok
    return done


def _strace_calls(summary: str) -> dict[str, int]:
    calls: dict[str, int] = {}
    for line in summary.splitlines():
        parts = line.split()
        if len(parts) >= 5 and parts[-1] in ("fsync", "fdatasync", "pwrite64", "write"):
            calls[parts[-1]] = int(parts[3])
    return calls


# -- scenarios ------------------------------------------------------------------------------


async def nopass_run(
    backend: str,
    users: int,
    plan: Plan,
    sink: SmtpSink,
    smtp_port: int,
    workdir: Path,
    *,
    endpoints: bool,
) -> dict[str, Any]:
    port = free_port()
    if backend == "sqlite":
        database_url = f"sqlite:///{workdir / f'nopass-{users}.db'}"
        redis_url = None
    else:
        database_url = await fresh_postgres(f"nopass_bench_{users}")
        redis_url = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/14")
        await flush_redis(redis_url)
    server = Nopass(database_url, redis_url, workdir, port, smtp_port)
    log(f"nopass {backend} {users:,} users: migrate, apply, seed")
    server.prepare()
    began = time.perf_counter()
    if backend == "sqlite":
        seed.seed_sqlite(database_url.removeprefix("sqlite:///"), users, CLIENT_ID)
    else:
        await seed.seed_postgres(database_url, users, CLIENT_ID)
    seeded = time.perf_counter() - began
    result: dict[str, Any] = {"backend": backend, "users": users, "seed_seconds": round(seeded, 1)}
    with server.serve(plan.workers) as process:
        pool = ConnectionPool("127.0.0.1", port)
        driver = Driver(
            nopass_login(sink, CLIENT_ID),
            pool,
            [seed.email_of(i) for i in range(min(users, 20_000))],
        )
        cpu = Cpu(
            server=lambda: procstat.tree(process.pid),
            database=(lambda: [])
            if backend == "sqlite"
            else (lambda: procstat.named("postgres", "redis-server")),
        )
        log(f"nopass {backend} {users:,} users: whole logins")
        result["logins"] = await logins(driver, cpu, plan)
        await sink.drain()
        if endpoints:
            log(f"nopass {backend}: endpoints alone")
            result["endpoints"] = await endpoint_suite(sink, pool, port, users, plan)
        await sink.drain()
        log(f"nopass {backend} {users:,} users: writes per login")
        result["writes"] = await accounting(
            driver, backend, lambda: procstat.tree(process.pid), database_url, plan
        )
        pool.close()
        await sink.drain()
    if backend != "sqlite":
        await drop_postgres(database_url)
    return result


async def endpoint_suite(
    sink: SmtpSink, pool: ConnectionPool, port: int, users: int, plan: Plan
) -> dict[str, Any]:
    conn = pool.take()
    email = seed.email_of(users - 1)
    future = sink.expect(email)
    start = {"client_id": CLIENT_ID, "connection": "email", "email": email, "send": "code"}
    await conn.request("POST", "/passwordless/start", body=json.dumps(start).encode())
    code = await asyncio.wait_for(future, 10)
    sink.forget(email)
    r = await conn.request(
        "POST",
        "/oauth/token",
        body=json.dumps(
            {
                "grant_type": "http://auth0.com/oauth/grant-type/passwordless/otp",
                "client_id": CLIENT_ID,
                "username": email,
                "otp": code,
                "realm": "email",
                "scope": "openid profile email offline_access",
            }
        ).encode(),
    )
    tokens = r.json()
    pool.give(conn)
    env = {
        "BENCH_CLIENT_ID": CLIENT_ID,
        "BENCH_USERS": str(min(users, 20_000)),
        "BENCH_ACCESS_TOKEN": tokens["access_token"],
        "BENCH_REFRESH_TOKEN": tokens.get("refresh_token", ""),
    }
    results: dict[str, Any] = {}
    results["start"] = await wrk("start.lua", port, plan.endpoint_seconds, env)
    await sink.drain()
    count = max(50, int(results["start"].get("per_second", 100) * plan.endpoint_seconds))
    results["token"] = await token_alone(sink, pool, users, min(count, 20_000), 16)
    for name in ("userinfo", "refresh", "jwks"):
        results[name] = await wrk(f"{name}.lua", port, plan.endpoint_seconds, env)
    return results


async def allauth_run(
    users: int, plan: Plan, sink: SmtpSink, smtp_port: int, workdir: Path
) -> dict[str, Any]:
    sys.path.insert(0, str(HERE / "allauth"))
    import server as allauth  # type: ignore[import-not-found]

    database = f"sqlite:///{workdir / 'allauth.db'}"
    emails = [seed.email_of(i) for i in range(users)]
    log(f"allauth sqlite {users:,} users: migrate, seed")
    allauth.prepare(database, emails, sys.executable)
    port = free_port()
    with every_cpu():  # gunicorn inherits the affinity of the process that starts it
        process = allauth.serve(database, smtp_port, port, plan.workers, sys.executable)
    result: dict[str, Any] = {"backend": "sqlite", "users": users}
    try:
        sink.code_pattern = allauth.CODE_PATTERN
        pool = ConnectionPool("127.0.0.1", port)
        driver = Driver(
            allauth_login(sink, allauth.REQUEST_PATH, allauth.CONFIRM_PATH),
            pool,
            emails[: min(users, 20_000)],
        )
        cpu = Cpu(server=lambda: procstat.tree(process.pid), database=lambda: [])
        log(f"allauth sqlite {users:,} users: whole logins")
        result["logins"] = await logins(driver, cpu, plan)
        pool.close()
    finally:
        sink.code_pattern = NOPASS_CODE
        process.terminate()
        process.wait(20)
    return result


@contextlib.contextmanager
def every_cpu() -> Iterator[None]:
    mine = os.sched_getaffinity(0)
    os.sched_setaffinity(0, ALL_CPUS)
    try:
        yield
    finally:
        os.sched_setaffinity(0, mine)


# -- services -------------------------------------------------------------------------------


def postgres_admin_url() -> str:
    return os.environ.get("BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


async def fresh_postgres(name: str) -> str:
    admin = await asyncpg.connect(postgres_admin_url())
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    return postgres_admin_url().rsplit("/", 1)[0] + f"/{name}"


async def drop_postgres(url: str) -> None:
    admin = await asyncpg.connect(postgres_admin_url())
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{url.rsplit("/", 1)[1]}" WITH (FORCE)')
    finally:
        await admin.close()


async def flush_redis(url: str) -> None:
    import redis.asyncio as redis

    client = redis.from_url(url)
    try:
        await client.flushdb()
    finally:
        await client.aclose()


async def reachable() -> tuple[bool, bool]:
    async def probe(port: int) -> bool:
        try:
            _, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 1)
        except (OSError, TimeoutError):
            return False
        writer.close()
        return True

    return await probe(5432), await probe(6379)


# -- main -----------------------------------------------------------------------------------


def machine() -> dict[str, Any]:
    cpu_model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    return {
        "cpus": os.cpu_count(),
        "cpu_model": cpu_model,
        "python": platform.python_version(),
        "kernel": platform.release(),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        "generator_cpu": GENERATOR_CPU,
    }


async def run(
    plan: Plan, *, baseline: bool, postgres: bool, smoke: bool, listing: bool = True
) -> dict[str, Any]:
    sink = SmtpSink(NOPASS_CODE)
    smtp_port = await sink.start()
    pg_ok, redis_ok = await reachable()
    results: dict[str, Any] = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "smoke": smoke,
        "machine": machine(),
        "plan": plan.__dict__,
        "nopass": [],
    }
    with tempfile.TemporaryDirectory(prefix="nopass-bench-") as tmp:
        workdir = Path(tmp)
        backends = ["sqlite"]
        if not postgres:
            results["postgres_skipped"] = "--no-postgres"
        elif pg_ok and redis_ok:
            backends.append("postgres+redis")
        else:
            results["postgres_skipped"] = "PostgreSQL or Redis is not reachable on loopback"
        for backend in backends:
            for users in plan.datasets:
                results["nopass"].append(
                    await nopass_run(
                        backend,
                        users,
                        plan,
                        sink,
                        smtp_port,
                        workdir,
                        endpoints=users == plan.datasets[0],
                    )
                )
        if baseline:
            results["allauth"] = await allauth_run(plan.datasets[0], plan, sink, smtp_port, workdir)
    await sink.stop()
    if listing:  # GET /api/v2/users at 10⁴ and 10⁶ users (bench/user_listing.py)
        results["user_listing"] = await user_listing.run(
            smoke=smoke, postgres=postgres, workers=plan.workers
        )
    return results


async def only_listing(*, smoke: bool, postgres: bool) -> dict[str, Any]:
    return {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "smoke": smoke,
        "machine": machine(),
        "nopass": [],
        "user_listing": await user_listing.run(smoke=smoke, postgres=postgres),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--smoke", action="store_true", help="a few seconds: check that it works")
    parser.add_argument("--no-baseline", action="store_true", help="skip django-allauth")
    parser.add_argument("--no-postgres", action="store_true", help="SQLite only")
    parser.add_argument("--no-listing", action="store_true", help="skip GET /api/v2/users")
    parser.add_argument("--only-listing", action="store_true", help="GET /api/v2/users only")
    parser.add_argument("--out", type=Path, default=RESULTS, help="where latest.{json,md} go")
    args = parser.parse_args(argv)
    if GENERATOR_CPU > 0:
        os.sched_setaffinity(0, {GENERATOR_CPU})  # the generator keeps to its own core
    plan = SMOKE if args.smoke else Plan()
    began = time.perf_counter()
    if args.only_listing:
        results = asyncio.run(only_listing(smoke=args.smoke, postgres=not args.no_postgres))
    else:
        results = asyncio.run(
            run(
                plan,
                baseline=not args.no_baseline,
                postgres=not args.no_postgres,
                smoke=args.smoke,
                listing=not args.no_listing,
            )
        )
    results["wall_seconds"] = round(time.perf_counter() - began, 1)
    args.out.mkdir(parents=True, exist_ok=True)
    earlier = args.out / "latest.json"
    if args.only_listing and earlier.exists():  # the rest of the last run's figures stay
        kept = json.loads(earlier.read_text())
        if kept.get("smoke") == args.smoke:
            kept["user_listing"] = {
                **results["user_listing"],
                "when": results["when"],
                "machine": results["machine"],
                "wall_seconds": results["wall_seconds"],
            }
            results = kept
    (args.out / "latest.json").write_text(json.dumps(results, indent=2) + "\n")
    (args.out / "latest.md").write_text(report.markdown(results))
    print(report.markdown(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
