"""A blocked user in real Chromium: the hosted page refuses its right code with its own
message, and a session opened before the block answers the client ``error=unauthorized``
instead of signing in again."""

from __future__ import annotations

from datetime import UTC, datetime
from urllib.parse import urlsplit

import pytest
from playwright.async_api import Browser, expect
from sqlalchemy import text

from nopass.core.keyring import Keyring
from nopass.store.engine import create_engine
from nopass.store.unit_of_work import SqlUnitOfWork
from tests.browser.conftest import Callback
from tests.browser.test_login_page import (
    finish_at_callback,
    new_context,
    open_identifier_page,
    screenshot,
)
from tests.support.harness import TEST_SECRET
from tests.support.live import LiveServer
from tests.support.smtp import SmtpSink
from tests.support.tokens import email_code, mails_to

pytestmark = pytest.mark.slow

EMAIL = "grace@example.com"
BLOCKED = "This account is blocked. Contact the administrator."


async def set_blocked(database_url: str, blocked: bool = True) -> None:
    """Block every user of the database (there is one) through ``UserRepo.set_blocked``."""
    engine = create_engine(database_url)
    try:
        async with engine.connect() as conn:
            rows = (await conn.execute(text("SELECT tenant_id, user_id FROM users"))).all()
        async with SqlUnitOfWork(engine, Keyring([TEST_SECRET.encode()])) as work:
            for row in rows:
                await work.users.set_blocked(
                    row.tenant_id, row.user_id, blocked, now=datetime.now(UTC)
                )
            await work.commit()
    finally:
        await engine.dispose()
    assert rows


async def test_the_page_refuses_a_blocked_user_and_a_session_stops_answering(
    browser: Browser,
    server: LiveServer,
    callback: Callback,
    smtp_sink: SmtpSink,
    sqlite_url: str,
) -> None:
    context, page = await new_context(browser)

    async def sign_in_on_the_page() -> str:
        seen = mails_to(smtp_sink, EMAIL)
        await page.get_by_label("Email address").fill(EMAIL)
        await page.get_by_role("button", name="Continue").click()
        await expect(page.get_by_role("heading")).to_have_text("Enter your code")
        code = await email_code(smtp_sink, EMAIL, seen)
        await page.get_by_label("Code").fill(code)
        await page.get_by_role("button", name="Sign in").click()
        return code

    verifier, state = await open_identifier_page(page, server, callback)
    await sign_in_on_the_page()
    await finish_at_callback(page, server, callback, verifier, state)
    await set_blocked(sqlite_url)

    # The session opened before the block: /authorize answers the client with the refusal.
    _, state = await open_identifier_page(page, server, callback)
    await page.wait_for_url(callback.url + "?*")
    query = urlsplit(page.url).query
    assert "error=unauthorized&error_description=user%20is%20blocked" in query
    assert callback.queries[-1]["state"] == [state]

    # A new browser: the page refuses the right code with its own message, and stays.
    await context.close()
    context, page = await new_context(browser)
    await open_identifier_page(page, server, callback)
    answered = len(callback.queries)
    code = await sign_in_on_the_page()
    await expect(page.get_by_role("alert")).to_have_text(BLOCKED)
    await expect(page.get_by_role("heading")).to_have_text("Enter your code")
    await screenshot(page, "user-blocked")
    assert len(callback.queries) == answered
    assert "nopass_session" not in {c["name"] for c in await context.cookies(server.url)}

    # Unblocked, the same code signs in: the refusal did not use it up.
    await set_blocked(sqlite_url, blocked=False)
    await page.get_by_label("Code").fill(code)
    await page.get_by_role("button", name="Sign in").click()
    await page.wait_for_url(callback.url + "?*")
    assert "code" in callback.queries[-1]
    await context.close()
