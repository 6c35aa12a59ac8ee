"""Housekeeping removes what nobody can use any more and keeps the rest."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import func, insert, select

from nopass.store.engine import create_engine
from nopass.store.housekeeping import purge
from nopass.store.tables import ChallengeRow, OutboxRow, TenantRow, table
from tests.support.config import tenant_config
from tests.support.harness import prepare_database


async def test_purge_removes_only_dead_rows(database_url: str) -> None:
    await prepare_database(database_url, tenant_config("http://127.0.0.1:8123"))
    engine = create_engine(database_url)
    now = datetime.now(UTC)
    try:
        async with engine.begin() as conn:
            tenant_id = await conn.scalar(select(TenantRow.id))
            for i, age in enumerate((timedelta(days=3), timedelta(minutes=1)) * 600):
                await conn.execute(
                    insert(table(ChallengeRow)).values(
                        id=f"{i:024x}",
                        tenant_id=tenant_id,
                        connection_id="c",
                        client_id="x",
                        identifier=f"u{i}@example.com",
                        code_hmac="0" * 64,
                        key_id="k",
                        send="code",
                        auth_params={},
                        phantom=False,
                        attempts=0,
                        created_at=now - age,
                        expires_at=now - age + timedelta(minutes=3),
                    )
                )
            for i, (status, age) in enumerate(
                [
                    ("sent", timedelta(days=2)),
                    ("pending", timedelta(days=2)),
                    ("sent", timedelta(hours=1)),
                    ("failed", timedelta(days=2)),
                ]
            ):
                await conn.execute(
                    insert(table(OutboxRow)).values(
                        id=f"{i:024x}",
                        tenant_id=tenant_id,
                        channel="email",
                        provider="smtp",
                        recipient="a@example.com",
                        status=status,
                        attempts=1,
                        next_attempt_at=now,
                        created_at=now - age,
                    )
                )
        removed = await purge(engine, now)
        assert removed == 600 + 2
        async with engine.connect() as conn:
            left = await conn.scalar(select(func.count()).select_from(table(ChallengeRow)))
            statuses = sorted((await conn.execute(select(table(OutboxRow).c.status))).scalars())
        assert left == 600
        assert statuses == ["pending", "sent"]
    finally:
        await engine.dispose()
