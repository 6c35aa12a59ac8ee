"""SIGKILL at any instant after a 200 from ``/passwordless/start`` loses no email (issue 5,
item 5; issue 13): the code was committed with its outbox message before the answer, and a
claim of the killed process runs out (a short lease here) and goes back to pending, so after
a restart on the same database the email arrives and its code signs the user in. Nothing edits
the outbox table by hand.

* killed before the claim, or while it holds one: the SMTP server is down while the first
  process runs (a refused connection releases the claim at once, but the kill may land while
  the message is claimed), so that process cannot have sent anything;
* killed while the message is being sent: the SMTP server has the message's data and stalls
  its reply; the email then arrives twice, with exactly the same Message-ID.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import text

from nopass.store.engine import create_engine
from tests.support.config import NATIVE_ID
from tests.support.harness import prepare_database
from tests.support.live import LiveServer, live_server, nopass_env
from tests.support.services import free_port
from tests.support.smtp import Received, SmtpSink
from tests.support.tokens import email_code, login_config, otp_body

pytestmark = pytest.mark.slow

EMAIL = "crash@example.com"
LEASE = "2"  # seconds: a killed process's claim runs out soon after the restart


async def start(server: LiveServer) -> httpx.Response:
    async with httpx.AsyncClient(base_url=server.url) as http:
        return await http.post(
            "/passwordless/start",
            json={"client_id": NATIVE_ID, "connection": "email", "email": EMAIL, "send": "code"},
        )


def kill(server: LiveServer) -> None:
    server.process.send_signal(signal.SIGKILL)
    assert server.process.wait(10) == -signal.SIGKILL


async def signs_in(server: LiveServer, code: str) -> None:
    async with httpx.AsyncClient(base_url=server.url) as http:
        token = await http.post("/oauth/token", json=otp_body(EMAIL, code))
    assert token.status_code == 200, token.text
    assert {"access_token", "id_token", "refresh_token"} <= token.json().keys()


async def test_sigkill_before_or_during_the_claim_then_restart_sends_the_email_once(
    database_url: str, tmp_path: Path
) -> None:
    port = free_port()
    sink = SmtpSink(free_port())  # nothing listens there yet
    await prepare_database(database_url, login_config(f"127.0.0.1:{port}", smtp_port=sink.port))
    env = nopass_env(database_url, NOPASS_OUTBOX_LEASE_SECONDS=LEASE)

    with live_server(env, tmp_path, port=port) as first:
        response = await start(first)
        kill(first)  # at once: before the worker's claim, or while it holds one
    assert response.status_code == 200, response.text
    assert sink.received == []

    sink.start()
    try:
        with live_server(env, tmp_path, port=port) as second:
            code = await email_code(sink, EMAIL, seen=0, timeout=20)
            await until_settled(database_url)
            assert [m.recipients for m in sink.received] == [[EMAIL]]
            await signs_in(second, code)
    finally:
        sink.stop()
    [row] = await outbox_rows(database_url)
    assert (row["recipient"], row["status"]) == (EMAIL, "sent")


@dataclass
class StallOnFirstData:
    """Keeps each message's data; answers the first DATA only when ``release`` is set (the
    sender is killed meanwhile), every later one at once."""

    received: list[Received] = field(default_factory=list)
    release: threading.Event = field(default_factory=threading.Event)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        mail = email.message_from_bytes(envelope.content, policy=email.policy.default)
        assert isinstance(mail, email.message.EmailMessage)
        self.received.append(Received(envelope.mail_from, list(envelope.rcpt_tos), mail))
        if len(self.received) == 1:
            while not self.release.is_set():
                await asyncio.sleep(0.01)
        return "250 OK"


async def test_sigkill_while_the_email_is_being_sent_then_restart_resends_it(
    database_url: str, tmp_path: Path
) -> None:
    port, smtp_port = free_port(), free_port()
    handler = StallOnFirstData()
    controller = Controller(handler, hostname="127.0.0.1", port=smtp_port)
    await prepare_database(database_url, login_config(f"127.0.0.1:{port}", smtp_port=smtp_port))
    env = nopass_env(database_url, NOPASS_OUTBOX_LEASE_SECONDS=LEASE)
    controller.start()
    try:
        with live_server(env, tmp_path, port=port) as first:
            response = await start(first)
            assert response.status_code == 200, response.text
            await until(lambda: len(handler.received) == 1)  # its data is in, no reply yet
            kill(first)
        handler.release.set()
        assert [status for _, status in await outbox_statuses(database_url)] == ["sending"]

        with live_server(env, tmp_path, port=port) as second:
            await until(lambda: len(handler.received) == 2, timeout=20)
            await until_settled(database_url)
            first_mail, resent = handler.received
            code = await email_code_of(resent)
            await signs_in(second, code)
    finally:
        controller.stop()
    assert len(handler.received) == 2
    assert first_mail.message["Message-ID"] == resent.message["Message-ID"]
    [(outbox_id, status)] = await outbox_statuses(database_url)
    assert status == "sent"
    assert resent.message["Message-ID"] == f"<{outbox_id}@acme.example>"


async def email_code_of(mail: Received) -> str:
    sink = SmtpSink(0)
    sink.received.append(mail)
    return await email_code(sink, EMAIL, seen=0, timeout=0)


async def until(check: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.02)


async def until_settled(database_url: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while [s for _, s in await outbox_statuses(database_url)] != ["sent"]:
        assert time.monotonic() < deadline, "the message was not settled in time"
        await asyncio.sleep(0.05)


async def outbox_statuses(database_url: str) -> list[tuple[str, str]]:
    return [(r["id"], r["status"]) for r in await outbox_rows(database_url)]


async def outbox_rows(database_url: str) -> list[dict[str, Any]]:
    engine = create_engine(database_url)
    try:
        async with engine.connect() as conn:
            result = await conn.execute(text("SELECT id, recipient, status FROM outbox_messages"))
            return [dict(r._mapping) for r in result]
    finally:
        await engine.dispose()
