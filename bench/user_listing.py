"""``GET /api/v2/users`` at 10⁴ and 10⁶ users: every query shape through the real endpoint.

Each backend (SQLite; PostgreSQL) gets one tenant of ``n`` users, generated inside the
database (one ``INSERT ... SELECT``: no row crosses the wire, faster than COPY), then a live
``nopass serve`` and a Management API token from the client-credentials grant. Each shape is
asked ``requests`` times, one request at a time on one keep-alive connection; the figures
are the median and p95 of those latencies, per shape and size, and their ratio across
sizes (flat = 1.00: the shape does not grow with the tenant).

The searches match the same users at every size (a user in the middle of the range, a
range of a few dozen), so that the ratio measures the index, not the size of the answer.
``include_totals`` on the unfiltered list counts every user of the tenant: it grows with N,
the one shape that does (README "Users at a million").

    python -m bench.user_listing [--smoke] [--no-postgres] [--out DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import asyncpg
import yaml

from bench.client import HttpConnection
from bench.servers import Nopass, free_port, tenant_file

MACHINE_ID = "bench-machine-client"
MACHINE_SECRET = "bench-machine-secret-" + "x" * 24
SIZES = (10_000, 1_000_000)
SMOKE_SIZES = (10_000,)
RARE = 50  # users 0..49 have 5000+ logins: a range that matches 50 users at any size

SORTABLE = (
    "created_at",
    "updated_at",
    "last_login",
    "logins_count",
    "email",
    "name",
    "nickname",
    "given_name",
    "family_name",
    "user_id",
)


def log(message: str) -> None:
    print(f"[bench listing {time.strftime('%H:%M:%S')}] {message}", flush=True)


def listing_tenant(port: int, smtp_port: int) -> dict[str, Any]:
    """The bench tenant, with an SMS connection and a machine client for the Management
    API (read:users), its rate limit out of the way."""
    config = tenant_file(port, smtp_port)
    config["tenant"]["rate_limits"]["management_per_client_per_second"] = 1_000_000
    config["clients"].append(
        {
            "name": "Bench Machine",
            "client_id": MACHINE_ID,
            "app_type": "non_interactive",
            "token_endpoint_auth_method": "client_secret_post",
            "client_secret": MACHINE_SECRET,
            "grant_types": ["client_credentials"],
        }
    )
    config["connections"].append({"name": "sms", "strategy": "sms", "enabled_clients": []})
    config["client_grants"] = [
        {
            "client_id": MACHINE_ID,
            "audience": f"http://127.0.0.1:{port}/api/v2/",
            "scope": ["read:users"],
        }
    ]
    return config


# -- seeding --------------------------------------------------------------------------------
# User i: one in ten an SMS user (+1555 and i on 7 digits), the others user<i>@bench.example;
# name "User<i> Bench", nickname nick<i>, given_name Given<i>, family_name Family<i mod 1000>;
# created 30 s apart from 2024-01-01, updated (i mod 30) days later; two in three have
# logged in (1 + i mod 100 times; 5000 + i for the first RARE users).

_SQLITE_USERS = """
WITH RECURSIVE seq(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM seq WHERE i < :n - 1)
INSERT INTO users (tenant_id, user_id, connection_id, identifier, profile, created_at,
  updated_at, last_login, logins_count, app_metadata, user_metadata, blocked)
SELECT :tenant,
  CASE WHEN i % 10 = 9 THEN 'sms|' ELSE 'email|' END || printf('%024x', i + 1),
  CASE WHEN i % 10 = 9 THEN :sms ELSE :email END,
  CASE WHEN i % 10 = 9 THEN printf('+1555%07d', i) ELSE 'user' || i || '@bench.example' END,
  CASE WHEN i % 10 = 9
    THEN json_object('phone_number', printf('+1555%07d', i), 'phone_verified', json('true'),
      'name', 'User' || i || ' Bench', 'nickname', 'nick' || i, 'given_name', 'Given' || i,
      'family_name', 'Family' || (i % 1000))
    ELSE json_object('email', 'user' || i || '@bench.example', 'email_verified', json('true'),
      'name', 'User' || i || ' Bench', 'nickname', 'nick' || i, 'given_name', 'Given' || i,
      'family_name', 'Family' || (i % 1000))
  END,
  strftime('%Y-%m-%d %H:%M:%S', '2024-01-01', '+' || (i * 30) || ' seconds') || '.000000',
  strftime('%Y-%m-%d %H:%M:%S', '2024-01-01', '+' || (i * 30 + (i % 30) * 86400) || ' seconds')
    || '.000000',
  CASE WHEN i % 3 = 0 AND i >= :rare THEN NULL
    ELSE strftime('%Y-%m-%d %H:%M:%S', '2025-02-01', '+' || (i * 10) || ' seconds') || '.000000'
  END,
  CASE WHEN i < :rare THEN 5000 + i WHEN i % 3 = 0 THEN 0 ELSE 1 + i % 100 END,
  '{}', '{}', 0
FROM seq
"""

_PG_USERS = """
INSERT INTO users (tenant_id, user_id, connection_id, identifier, profile, created_at,
  updated_at, last_login, logins_count, app_metadata, user_metadata, blocked)
SELECT $1,
  CASE WHEN i % 10 = 9 THEN 'sms|' ELSE 'email|' END || lpad(to_hex(i + 1), 24, '0'),
  CASE WHEN i % 10 = 9 THEN $3 ELSE $2 END,
  CASE WHEN i % 10 = 9 THEN '+1555' || lpad(i::text, 7, '0') ELSE 'user' || i || '@bench.example'
  END,
  CASE WHEN i % 10 = 9
    THEN json_build_object('phone_number', '+1555' || lpad(i::text, 7, '0'),
      'phone_verified', true, 'name', 'User' || i || ' Bench', 'nickname', 'nick' || i,
      'given_name', 'Given' || i, 'family_name', 'Family' || (i % 1000))
    ELSE json_build_object('email', 'user' || i || '@bench.example', 'email_verified', true,
      'name', 'User' || i || ' Bench', 'nickname', 'nick' || i,
      'given_name', 'Given' || i, 'family_name', 'Family' || (i % 1000))
  END,
  timestamptz '2024-01-01 00:00:00+00' + i * interval '30 seconds',
  timestamptz '2024-01-01 00:00:00+00' + i * interval '30 seconds' + (i % 30) * interval '1 day',
  CASE WHEN i % 3 = 0 AND i >= $5 THEN NULL
    ELSE timestamptz '2025-02-01 00:00:00+00' + i * interval '10 seconds' END,
  CASE WHEN i < $5 THEN 5000 + i WHEN i % 3 = 0 THEN 0 ELSE 1 + i % 100 END,
  '{}', '{}', false
FROM generate_series(0, $4 - 1) AS i
"""


def seed_sqlite(path: str, n: int) -> None:
    db = sqlite3.connect(path)
    try:
        connections = dict(db.execute("SELECT name, id FROM connections").fetchall())
        (tenant,) = db.execute("SELECT tenant_id FROM connections LIMIT 1").fetchone()
        params = {
            "n": n,
            "tenant": tenant,
            "email": connections["email"],
            "sms": connections["sms"],
            "rare": RARE,
        }
        with db:
            db.execute(_SQLITE_USERS, params)
        db.execute("ANALYZE")
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        db.close()


async def seed_postgres(url: str, n: int) -> None:
    db = await asyncpg.connect(url)
    try:
        rows = await db.fetch("SELECT name, id, tenant_id FROM connections")
        connections = {row["name"]: row["id"] for row in rows}
        tenant = rows[0]["tenant_id"]
        async with db.transaction():
            await db.execute(_PG_USERS, tenant, connections["email"], connections["sms"], n, RARE)
        await db.execute("VACUUM ANALYZE users")
    finally:
        await db.close()


# -- the shapes -----------------------------------------------------------------------------


def shapes(n: int) -> dict[str, str]:
    """Every query shape, as the path and query string sent (one name each)."""
    m = n // 2 + 123  # an email user in the middle of the range (m % 10 == 3)
    phone = m + 6  # an SMS user
    users = "/api/v2/users?"
    found: dict[str, str] = {
        "list (created_at:1)": users + "per_page=50",
        "list, page 19 (the last one)": users + "page=19&per_page=50",
        "list with include_totals": users + "per_page=50&include_totals=true",
    }
    for field in SORTABLE:
        for direction in ("1", "-1"):
            found[f"sort={field}:{direction}"] = users + urlencode(
                {"per_page": 50, "sort": f"{field}:{direction}"}
            )
    searches = {
        "q email exact": f'email:"user{m}@bench.example"',
        "q email prefix": f"email:user{m // 10}*",
        "q user_id exact": f'user_id:"email|{m + 1:024x}"',
        "q user_id prefix": f"user_id:email|{m + 1:024x}"[:-1] + "*",
        "q name exact": f'name:"user{m} bench"',
        "q name prefix": f"name:user{m // 10}*",
        "q nickname exact": f"nickname:nick{m}",
        "q given_name prefix": f"given_name:given{m // 10}*",
        "q family_name exact (n/1000 users)": f"family_name:family{m % 1000}",
        "q phone_number exact": f'phone_number:"+1555{phone:07d}"',
        "q phone_number prefix": f"phone_number:+1555{phone // 10:06d}*",
        "q logins_count range (50 users)": f"logins_count:[5000 TO {5000 + RARE}]",
        "q created_at range (one hour)": "created_at:[2024-01-01T10:00:00 TO 2024-01-01T11:00:00}",
        "q last_login range (ten minutes)": (
            "last_login:[2025-02-01T01:00:00 TO 2025-02-01T01:10:00}"
        ),
        "q bare term (every default field)": f"user{m}@bench.example",
        "q email prefix OR name prefix": f"email:user{m // 10}* OR name:user{m // 10 + 1}*",
    }
    for name, q in searches.items():
        found[name] = users + urlencode({"q": q, "per_page": 50})
    found["q email prefix with include_totals"] = users + urlencode(
        {"q": f"email:user{m // 10}*", "include_totals": "true"}
    )
    found["users-by-email"] = f"/api/v2/users-by-email?email={quote(f'user{m}@bench.example')}"
    return found


async def management_token(conn: HttpConnection, port: int) -> str:
    body = {
        "grant_type": "client_credentials",
        "client_id": MACHINE_ID,
        "client_secret": MACHINE_SECRET,
        "audience": f"http://127.0.0.1:{port}/api/v2/",
    }
    r = await conn.request("POST", "/oauth/token", body=json.dumps(body).encode())
    if r.status != 200:
        raise RuntimeError(f"no management token: {r.status} {r.body[:300]!r}")
    return str(r.json()["access_token"])


async def time_shapes(port: int, n: int, requests: int, warmups: int = 2) -> dict[str, Any]:
    conn = HttpConnection("127.0.0.1", port)
    try:
        headers = {"Authorization": f"Bearer {await management_token(conn, port)}"}
        out: dict[str, Any] = {}
        for name, path in shapes(n).items():
            latencies: list[float] = []
            errors = 0
            first = await conn.request("GET", path, headers=headers)
            for _ in range(10):  # a database restarted by someone else: wait for it
                if first.status != 503:
                    break
                await asyncio.sleep(1.0)
                first = await conn.request("GET", path, headers=headers)
            if first.status != 200:
                raise RuntimeError(f"{name}: {path} answered {first.status}: {first.body[:300]!r}")
            answer = first.json()
            items = answer if isinstance(answer, list) else answer.get("users", answer)
            for _ in range(warmups):
                await conn.request("GET", path, headers=headers)
            for _ in range(requests):
                began = time.perf_counter()
                r = await conn.request("GET", path, headers=headers)
                if r.status == 200:
                    latencies.append((time.perf_counter() - began) * 1000)
                else:  # counted, not timed
                    errors += 1
            latencies.sort()
            out[name] = {
                "path": path,
                "results": len(items) if isinstance(items, list) else None,
                "median_ms": round(statistics.median(latencies), 2),
                "p95_ms": round(latencies[min(len(latencies) - 1, int(0.95 * len(latencies)))], 2),
                "requests": requests,
                "errors": errors,
            }
        return out
    finally:
        conn.close()


# -- runs -----------------------------------------------------------------------------------


async def one_run(
    backend: str, n: int, workdir: Path, requests: int, workers: int
) -> dict[str, Any]:
    from bench.run import drop_postgres, fresh_postgres

    port = free_port()
    if backend == "sqlite":
        database_url = f"sqlite:///{workdir / f'listing-{n}.db'}"
    else:
        database_url = await fresh_postgres(f"nopass_bench_listing_{n}")
    server = Nopass(database_url, None, workdir, port, smtp_port=1)
    log(f"{backend} {n:,} users: migrate, apply, seed")
    server.cli("migrate")
    config = workdir / f"listing-{port}.yaml"
    config.write_text(yaml.safe_dump(listing_tenant(port, 1)))
    server.cli("apply", "--file", str(config))
    began = time.perf_counter()
    if backend == "sqlite":
        seed_sqlite(database_url.removeprefix("sqlite:///"), n)
    else:
        await seed_postgres(database_url, n)
    seeded = round(time.perf_counter() - began, 1)
    log(f"{backend} {n:,} users: seeded in {seeded} s; timing every shape")
    try:
        with server.serve(workers):
            timed = await time_shapes(port, n, requests, warmups=2 if requests > 10 else 0)
    finally:
        if backend != "sqlite":
            await drop_postgres(database_url)
    return {"backend": backend, "users": n, "seed_seconds": seeded, "shapes": timed}


async def run(*, smoke: bool, postgres: bool, workers: int = 2) -> dict[str, Any]:
    """Every backend at every size; ``ratios`` per shape: the largest size's median over
    the smallest's."""
    from bench.run import reachable

    sizes = SMOKE_SIZES if smoke else SIZES
    requests = 2 if smoke else 200
    backends = ["sqlite"]
    result: dict[str, Any] = {"sizes": list(sizes), "requests_per_shape": requests, "runs": []}
    if postgres and (await reachable())[0]:
        backends.append("postgres")
    elif postgres:
        result["postgres_skipped"] = "PostgreSQL is not reachable on loopback"
    with tempfile.TemporaryDirectory(prefix="nopass-listing-") as tmp:
        for backend in backends:
            for n in sizes:
                result["runs"].append(await one_run(backend, n, Path(tmp), requests, workers))
    result["ratios"] = ratios(result["runs"])
    return result


def ratios(runs: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    for backend in sorted({r["backend"] for r in runs}):
        mine = sorted((r for r in runs if r["backend"] == backend), key=lambda r: r["users"])
        if len(mine) < 2:
            continue
        small, large = mine[0]["shapes"], mine[-1]["shapes"]
        out[backend] = {
            name: round(large[name]["median_ms"] / small[name]["median_ms"], 2)
            for name in large
            if name in small and small[name]["median_ms"] > 0
        }
    return out


def _cell(shape: dict[str, Any]) -> str:
    errors = f" ({shape['errors']} errors)" if shape.get("errors") else ""
    return f"{shape['median_ms']:.2f} / {shape['p95_ms']:.2f}{errors}"


def markdown(listing: dict[str, Any]) -> str:
    runs = listing["runs"]
    lines = [
        "## GET /api/v2/users by query shape",
        "",
        *(
            [
                f"Measured {listing['when']} (load average at start "
                f"{listing['machine']['load_average_at_start']}), wall time "
                f"{listing['wall_seconds']} s.",
                "",
            ]
            if "when" in listing
            else []
        ),
        f"One request at a time on one keep-alive connection, {listing['requests_per_shape']} "
        "per shape (after two warm-ups, except in a smoke run); median / p95 in ms; ratio: "
        "median at the largest size over the smallest (flat = 1.00).",
        "",
    ]
    for backend in sorted({r["backend"] for r in runs}):
        mine = sorted((r for r in runs if r["backend"] == backend), key=lambda r: r["users"])
        head = " | ".join(f"{r['users']:,} users median / p95" for r in mine)
        seeded = ", ".join(f"{r['users']:,} in {r['seed_seconds']} s" for r in mine)
        lines += [
            f"### {backend} (seeded: {seeded})",
            "",
            f"| shape | {head} | ratio |",
            "|---|" + "---:|" * len(mine) + "---:|",
        ]
        ratio = listing.get("ratios", {}).get(backend, {})
        for name in mine[0]["shapes"]:
            cells = " | ".join(_cell(r["shapes"][name]) for r in mine)
            lines.append(f"| {name} | {cells} | {ratio.get(name, '–')} |")
        lines.append("")
    if listing.get("postgres_skipped"):
        lines += [f"PostgreSQL skipped: {listing['postgres_skipped']}", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.user_listing", description=__doc__)
    parser.add_argument("--smoke", action="store_true", help="10⁴ users only, 2 requests a shape")
    parser.add_argument("--no-postgres", action="store_true", help="SQLite only")
    parser.add_argument("--out", type=Path, help="write listing.{json,md} there")
    args = parser.parse_args(argv)
    began = time.perf_counter()
    listing = asyncio.run(run(smoke=args.smoke, postgres=not args.no_postgres))
    listing["wall_seconds"] = round(time.perf_counter() - began, 1)
    listing["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    text = markdown(listing)
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "listing.json").write_text(json.dumps(listing, indent=2) + "\n")
        (args.out / "listing.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
