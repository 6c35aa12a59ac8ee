"""``python -m bench.profile``: whole logins against nopass on SQLite while py-spy samples
every server process; writes collapsed stacks and prints the heaviest frames.

    python -m bench.profile --seconds 20 --out /tmp/nopass-profile
    python -m bench.profile --rate 200     # an open loop at 200 logins/s: latency at a load
    python -m bench.profile --no-spy       # throughput and CPU per login, not sampled
    python -m bench.profile --postgres     # on PostgreSQL + Redis (BENCH_POSTGRES_URL, ...)
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from bench import procstat, seed
from bench.client import ConnectionPool, SmtpSink
from bench.loadgen import Driver, nopass_login
from bench.run import GENERATOR_CPU, NOPASS_CODE, flush_redis, fresh_postgres
from bench.servers import CLIENT_ID, Nopass, free_port


def summarize(collapsed: Path, top: int) -> str:
    """Self and inclusive sample shares per function from py-spy's collapsed stacks."""
    own: collections.Counter[str] = collections.Counter()
    packages: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    total = 0
    for line in collapsed.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        n = int(count)
        total += n
        frames = [f.split(" (")[0] + " " + f.split("/")[-1].rstrip(")") for f in stack.split(";")]
        own[frames[-1]] += n
        packages[_package(stack.split(";")[-1])] += n
        for frame in set(frames):
            inclusive[frame] += n
    out = [f"{total} samples", "", "self %   package (innermost frame)"]
    out += [f"{100 * n / total:6.1f}   {f}" for f, n in packages.most_common(25)]
    out += ["", "self %   function"]
    out += [f"{100 * n / total:6.1f}   {f}" for f, n in own.most_common(top)]
    out += ["", "incl %   function"]
    out += [f"{100 * n / total:6.1f}   {f}" for f, n in inclusive.most_common(top * 2)]
    return "\n".join(out)


def _package(frame: str) -> str:
    """``sqlalchemy/engine/base.py`` → sqlalchemy; ``nopass/store/x.py`` → nopass.store;
    ``threading.py`` → stdlib (py-spy names files relative to their import root)."""
    found = re.search(r"\(([^():]*):\d+\)$", frame)
    path = found.group(1) if found else ""
    parts = [p for p in path.split("/") if p]
    if "nopass" in parts:
        rest = parts[parts.index("nopass") + 1 :]
        return "nopass." + rest[0].removesuffix(".py") if rest else "nopass"
    if len(parts) > 1:
        return parts[0]
    return f"stdlib {parts[0]}" if parts else "native/?"


async def main(
    seconds: float,
    out: Path,
    users: int,
    workers: int,
    concurrency: int,
    rate: float | None,
    spy: bool = True,
    postgres: bool = False,
) -> None:
    sink = SmtpSink(NOPASS_CODE)
    smtp_port = await sink.start()
    with tempfile.TemporaryDirectory(prefix="nopass-profile-") as tmp:
        workdir = Path(tmp)
        port = free_port()
        if postgres:  # BENCH_POSTGRES_URL / BENCH_REDIS_URL, as for make bench
            database_url = await fresh_postgres("nopass_profile")
            redis_url = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/14")
            await flush_redis(redis_url)
            server = Nopass(database_url, redis_url, workdir, port, smtp_port)
            server.prepare()
            await seed.seed_postgres(database_url, users, CLIENT_ID)
        else:
            server = Nopass(f"sqlite:///{workdir / 'p.db'}", None, workdir, port, smtp_port)
            server.prepare()
            seed.seed_sqlite(str(workdir / "p.db"), users, CLIENT_ID)
        with server.serve(workers) as process:
            pool = ConnectionPool("127.0.0.1", port)
            driver = Driver(
                nopass_login(sink, CLIENT_ID), pool, [seed.email_of(i) for i in range(users)]
            )
            await driver.closed_loop(concurrency, 1.0, 2.0)  # warm up
            pids = [p for p in procstat.tree(process.pid) if p != process.pid] or [process.pid]
            spies = [
                subprocess.Popen(
                    [
                        shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy"),
                        "record",
                        "--gil",
                        "--format",
                        "raw",
                        "--rate",
                        "200",
                        "--duration",
                        str(int(seconds)),
                        "--pid",
                        str(pid),
                        "--output",
                        str(out / f"stacks-{pid}.txt"),
                        "--nonblocking",
                    ],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
                for pid in (pids if spy else [])
            ]
            tree = procstat.tree(process.pid)
            u0, s0 = procstat.user_system_seconds(tree)
            g0 = sum(os.times()[:2])
            if rate:  # an open loop: arrivals at ``rate`` whatever the answers (latency)
                outcome = await driver.open_loop(rate, 0.0, seconds)
            else:
                outcome = await driver.closed_loop(concurrency, 0.0, seconds)
            u1, s1 = procstat.user_system_seconds(tree)
            g1 = sum(os.times()[:2])
            cpu0, cpu1 = u0 + s0, u1 + s1
            n = max(outcome.ok, 1)
            print(
                f"user {(u1 - u0) / n * 1000:.2f} ms,"
                f" system {(s1 - s0) / n * 1000:.2f} ms per login"
            )
            for sampler in spies:
                sampler.wait()
            print(outcome.summary())
            print(f"server CPU per login: {(cpu1 - cpu0) / n * 1000:.2f} ms")
            print(f"load generator CPU per login: {(g1 - g0) / n * 1000:.2f} ms")
    if not spy:
        return
    merged = out / "stacks.txt"
    merged.write_text("".join(p.read_text() for p in out.glob("stacks-*.txt")))
    print(summarize(merged, 40))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m bench.profile")
    parser.add_argument("--seconds", type=float, default=15)
    parser.add_argument("--users", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=24)
    parser.add_argument(
        "--rate", type=float, default=None, help="start logins at this rate (open loop) instead"
    )
    parser.add_argument(
        "--no-spy", action="store_true", help="no sampling: figures without py-spy's overhead"
    )
    parser.add_argument(
        "--postgres", action="store_true", help="on PostgreSQL + Redis instead of SQLite"
    )
    parser.add_argument("--out", type=Path, default=Path(tempfile.gettempdir()) / "nopass-profile")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    for old in args.out.glob("stacks*.txt") if not args.no_spy else ():
        old.unlink()
    if GENERATOR_CPU > 0:
        os.sched_setaffinity(0, {GENERATOR_CPU})
    asyncio.run(
        main(
            args.seconds,
            args.out,
            args.users,
            args.workers,
            args.concurrency,
            args.rate,
            not args.no_spy,
            args.postgres,
        )
    )
    sys.exit(0)
