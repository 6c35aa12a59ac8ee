"""Existing users and pending codes, generated inside the database (10⁶ rows in seconds).

Users look like the ones a first login creates (``email|`` + 24 hex, the signup profile);
each has a pending code (a challenge that is neither used nor expired, with an HMAC no guess
matches), so the lookups a login does run against tables of the stated size.
"""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta

import asyncpg

PENDING_FOR = timedelta(hours=1)  # pending through the whole run: housekeeping leaves them
PROFILE = (
    '\'{{"email":"\' || {email} || \'","email_verified":true,"name":"\' || {email} ||'
    ' \'","nickname":"user\' || {i} || \'","picture":"https://cdn.auth0.com/avatars/us.png"}}\''
)


def email_of(i: int) -> str:
    return f"user{i}@bench.example"


def _sqlite_sql(table: str) -> str:
    email = "('user' || i || '@bench.example')"
    seq = "WITH RECURSIVE seq(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM seq WHERE i < :n - 1)"
    if table == "users":
        return (
            "INSERT INTO users (tenant_id, user_id, connection_id, identifier, profile,"
            " created_at, updated_at, last_login, logins_count) "
            f"{seq} SELECT :tenant, 'email|' || printf('%024x', i + 1), :connection, {email},"
            f" {PROFILE.format(email=email, i='i')}, :now, :now, :now, 1 FROM seq"
        )
    return (
        "INSERT INTO challenges (id, tenant_id, connection_id, client_id, identifier, code_hmac,"
        " key_id, send, auth_params, phantom, attempts, created_at, expires_at) "
        f"{seq} SELECT printf('%024x', i + 1), :tenant, :connection, :client, {email},"
        " printf('%064x', i), 'seed', 'code', '{}', 0, 0, :now, :expires FROM seq"
    )


def seed_sqlite(path: str, users: int, client_id: str) -> None:
    now = datetime.now(UTC).replace(tzinfo=None)
    stamp = "%Y-%m-%d %H:%M:%S.%f"
    db = sqlite3.connect(path)
    try:
        tenant, connection = db.execute(
            "SELECT tenant_id, id FROM connections WHERE name = 'email'"
        ).fetchone()
        params = {
            "n": users,
            "tenant": tenant,
            "connection": connection,
            "client": client_id,
            "now": now.strftime(stamp),
            "expires": (now + PENDING_FOR).strftime(stamp),
        }
        with db:
            db.execute(_sqlite_sql("users"), params)
            db.execute(_sqlite_sql("challenges"), params)
        db.execute("ANALYZE")
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        db.close()


async def seed_postgres(url: str, users: int, client_id: str) -> None:
    now = datetime.now(UTC)
    email = "('user' || i || '@bench.example')"
    db = await asyncpg.connect(url)
    try:
        tenant, connection = await db.fetchrow(
            "SELECT tenant_id, id FROM connections WHERE name = 'email'"
        )
        async with db.transaction():
            await db.execute(
                "INSERT INTO users (tenant_id, user_id, connection_id, identifier, profile,"
                " created_at, updated_at, last_login, logins_count) "
                "SELECT $1, 'email|' || lpad(to_hex(i + 1), 24, '0'), $2, "
                f"{email}, ({PROFILE.format(email=email, i='i')})::json, $3, $3, $3, 1"
                " FROM generate_series(0, $4 - 1) AS i",
                tenant,
                connection,
                now,
                users,
            )
            await db.execute(
                "INSERT INTO challenges (id, tenant_id, connection_id, client_id, identifier,"
                " code_hmac, key_id, send, auth_params, phantom, attempts, created_at,"
                " expires_at) SELECT lpad(to_hex(i + 1), 24, '0'), $1, $2, $3, "
                f"{email}, lpad(to_hex(i), 64, '0'), 'seed', 'code', '{{}}', false, 0, $4, $5"
                " FROM generate_series(0, $6 - 1) AS i",
                tenant,
                connection,
                client_id,
                now,
                now + PENDING_FOR,
                users,
            )
        await db.execute("ANALYZE")
    finally:
        await db.close()
