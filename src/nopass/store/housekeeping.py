"""Background purge of rows nobody can use any more, so the cost of a request does not grow
with history: expired codes, authorization codes, tickets, transactions and sessions, spent
assertion ids, failure and rate-limit windows, settled outbox messages, dead refresh tokens,
and users import/export jobs a day old.

Deletes run in small batches (short transactions, no long locks). Several processes may purge
at once; deleting the same rows twice is harmless.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, Table, and_, delete, or_, select
from sqlalchemy.ext.asyncio import AsyncEngine

from nopass.core.jobs import KEPT_FOR
from nopass.store.tables import (
    AuthorizationCodeRow,
    ChallengeRow,
    ClientAssertionRow,
    FailureWindowRow,
    JobErrorRow,
    JobRow,
    LoginTicketRow,
    LoginTransactionRow,
    OutboxRow,
    RateCounterRow,
    RefreshTokenRow,
    SessionRow,
    table,
)

BATCH = 500
GRACE = timedelta(days=1)  # keep a day of history for support questions ("was it sent?")


@dataclass(frozen=True, slots=True)
class Rule:
    table: Table
    key: str
    condition: ColumnElement[bool]


def rules(now: datetime) -> list[Rule]:
    ch, ac = table(ChallengeRow), table(AuthorizationCodeRow)
    tk, tx, se = table(LoginTicketRow), table(LoginTransactionRow), table(SessionRow)
    ca, fw = table(ClientAssertionRow), table(FailureWindowRow)
    ob, rt, rc = table(OutboxRow), table(RefreshTokenRow), table(RateCounterRow)
    je, jb = table(JobErrorRow), table(JobRow)
    old = now - GRACE
    return [
        Rule(ch, "id", ch.c.expires_at < old),
        Rule(ac, "id", ac.c.expires_at < old),
        Rule(tk, "id", tk.c.expires_at < old),
        Rule(tx, "id", tx.c.expires_at < old),
        Rule(se, "id", or_(se.c.expires_at < old, se.c.revoked_at < old)),
        Rule(ca, "jti", ca.c.expires_at < now),
        Rule(fw, "identifier", fw.c.window_start < now - timedelta(hours=1)),
        Rule(rc, "key", rc.c.expires_at < now),
        Rule(
            ob,
            "id",
            or_(
                and_(ob.c.status.in_(("sent", "failed")), ob.c.created_at < old),
                and_(ob.c.status == "stored", ob.c.created_at < now - timedelta(days=7)),
            ),
        ),
        Rule(rt, "id", or_(rt.c.expires_at < old, rt.c.revoked_at < now - timedelta(days=30))),
        # "All job-related data is automatically deleted after 24 hours" (errors first)
        Rule(je, "id", je.c.created_at < now - KEPT_FOR),
        Rule(jb, "id", jb.c.created_at < now - KEPT_FOR),
    ]


async def purge(engine: AsyncEngine, now: datetime) -> int:
    """One pass over every rule; returns how many rows went."""
    removed = 0
    for rule in rules(now):
        key = rule.table.c[rule.key]
        while True:
            async with engine.begin() as conn:
                batch = select(key).where(rule.condition).limit(BATCH).scalar_subquery()
                result = await conn.execute(
                    delete(rule.table).where(rule.condition, key.in_(batch))
                )
            removed += result.rowcount
            if result.rowcount < BATCH:
                break
    return removed
