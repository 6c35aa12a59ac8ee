"""SIGKILL right after a 200 from ``/passwordless/start`` loses nothing (issue 5, item 5;
security.md §6 "Email delivery" and "Durability"): the code was committed with its outbox
message before the answer, so after a restart on the same database the email goes out once,
and its code signs the user in.

The SMTP server is down while the first process runs, so that process cannot have delivered
(or half-delivered) the message before it died. Its outbox worker may still have claimed the
message in the instant before the kill (a refused connection schedules a retry at once, but
the kill can land first). A message claimed by a sender that died is never sent again (at
most once: the outcome of its send is unknown), so in that case the test puts the message
back as the kill a moment earlier would have left it: pending. What is tested is that the
200 came after the commit.
"""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text, update

from nopass.store.engine import create_engine
from nopass.store.tables import OutboxRow, table
from tests.support.config import NATIVE_ID
from tests.support.harness import prepare_database
from tests.support.live import live_server, nopass_env
from tests.support.services import free_port
from tests.support.smtp import SmtpSink
from tests.support.tokens import email_code, login_config, otp_body

pytestmark = pytest.mark.slow

EMAIL = "crash@example.com"


async def test_sigkill_after_start_then_restart_sends_the_email_exactly_once(
    database_url: str, tmp_path: Path
) -> None:
    port = free_port()
    sink = SmtpSink(free_port())  # nothing listens there yet
    await prepare_database(database_url, login_config(f"127.0.0.1:{port}", smtp_port=sink.port))
    env = nopass_env(database_url)

    with live_server(env, tmp_path, port=port) as first:
        async with httpx.AsyncClient(base_url=first.url) as http:
            response = await http.post(
                "/passwordless/start",
                json={
                    "client_id": NATIVE_ID,
                    "connection": "email",
                    "email": EMAIL,
                    "send": "code",
                },
            )
            first.process.send_signal(signal.SIGKILL)
        assert response.status_code == 200, response.text
        assert first.process.wait(10) == -signal.SIGKILL
    assert sink.received == []
    await unclaim(database_url)

    sink.start()
    try:
        with live_server(env, tmp_path, port=port) as second:
            code = await email_code(sink, EMAIL, seen=0, timeout=15)
            await asyncio.sleep(2.0)  # many poll and retry periods later: still exactly one
            assert [m.recipients for m in sink.received] == [[EMAIL]]
            async with httpx.AsyncClient(base_url=second.url) as http:
                token = await http.post("/oauth/token", json=otp_body(EMAIL, code))
            assert token.status_code == 200, token.text
            assert {"access_token", "id_token", "refresh_token"} <= token.json().keys()
    finally:
        sink.stop()
    [row] = await outbox_rows(database_url)
    assert (row["recipient"], row["status"]) == (EMAIL, "sent")


async def outbox_rows(database_url: str) -> list[dict[str, Any]]:
    engine = create_engine(database_url)
    try:
        async with engine.connect() as conn:
            result = await conn.execute(text("SELECT recipient, status FROM outbox_messages"))
            return [dict(r._mapping) for r in result]
    finally:
        await engine.dispose()


async def unclaim(database_url: str) -> None:
    """A claim by the killed process, undone: the message is pending again."""
    engine = create_engine(database_url)
    try:
        async with engine.begin() as conn:
            outbox = table(OutboxRow)
            await conn.execute(
                update(outbox)
                .where(outbox.c.status == "sending")
                .values(status="pending", lease_until=None)
            )
    finally:
        await engine.dispose()
