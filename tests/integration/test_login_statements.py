"""A whole email-code login on SQLite runs every statement through a prebuilt plan
(store/prebuilt.py), none through SQLAlchemy's execution path.

A plan is silently skipped for what needs SQLAlchemy at execution time: a Python-side column
default (``default=`` on a column an insert leaves out), an expanding ``IN (...)`` list, a
literal-execute parameter. Each such statement on the login path costs some 0.2 ms of CPU
(issue 13's benchmark found three: the outbox insert and settle, and the users upsert), so
this test names any statement that falls back.
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Engine

from nopass.core.models import PASSWORDLESS_OTP_GRANT
from tests.support.config import NATIVE_ID, tenant_config
from tests.support.harness import running_app
from tests.support.smtp import SmtpSink

LOGINS = 12
CODE = re.compile(r"(?m)^\s*(\d{6})\s*$")


async def test_a_login_runs_no_statement_through_sqlalchemys_execution(
    tmp_path: Any, smtp_sink: SmtpSink
) -> None:
    database_url = f"sqlite+aiosqlite:///{tmp_path}/statements.db"
    seen: Counter[str] = Counter()

    def record(_c: Any, _cur: Any, statement: str, *_rest: Any) -> None:
        seen[" ".join(statement.split())[:120]] += 1

    config = tenant_config("http://127.0.0.1:8123", smtp_port=smtp_sink.port)
    async with running_app(database_url, config) as app:

        async def login(n: int) -> None:
            email = f"user{n}@example.com"
            body = {"client_id": NATIVE_ID, "connection": "email", "email": email, "send": "code"}
            assert (await app.start(body)).status_code == 200
            [*_, message] = await smtp_sink.wait_for(n + 1)
            code = CODE.search(message.text())
            assert code is not None and message.recipients == [email]
            token = await app.client.post(
                "/oauth/token",
                json={
                    "grant_type": PASSWORDLESS_OTP_GRANT,
                    "client_id": NATIVE_ID,
                    "username": email,
                    "otp": code.group(1),
                    "realm": "email",
                    "scope": "openid offline_access",
                },
            )
            assert token.status_code == 200, token.text

        await login(0)  # plans are made on first use
        event.listen(Engine, "before_cursor_execute", record)
        try:
            for n in range(1, LOGINS + 1):
                await login(n)
        finally:
            event.remove(Engine, "before_cursor_execute", record)
    per_login = {statement: n for statement, n in seen.items() if n >= LOGINS // 2}
    assert per_login == {}, "statements of every login that went through SQLAlchemy"
