"""``nopass logs --tenant NAME``: the audit log of real logins, as JSON lines, without codes."""

from __future__ import annotations

import json
import re
import subprocess
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.cli.helpers import usage_error
from tests.support.config import NATIVE_ID, tenant_config
from tests.support.harness import prepare_database
from tests.support.live import live_server, nopass_cli, nopass_env
from tests.support.services import free_port
from tests.support.sms_gateway import Gateway
from tests.support.smtp import SmtpSink

USER_AGENT = "nopass-cli-test/1.0 (logs)"
EMAIL = "grace@example.com"
PHONE = "+15557654321"


def _lines(result: subprocess.CompletedProcess[str]) -> list[dict[str, Any]]:
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    return [json.loads(line) for line in result.stdout.splitlines()]


@pytest.mark.slow
async def test_logs_show_sent_codes_as_json_lines_without_the_code(
    database_url: str, tmp_path: Path, smtp_sink: SmtpSink, gateway: Gateway
) -> None:
    port = free_port()
    config = tenant_config(
        f"http://127.0.0.1:{port}",
        smtp_port=smtp_sink.port,
        sms={"provider": "sms_gateway", "gateway_url": gateway.url, "from": "+15550001111"},
    )
    await prepare_database(database_url, config)
    env = nopass_env(database_url)
    with live_server(env, tmp_path, port=port) as server:
        async with httpx.AsyncClient(
            base_url=server.url, headers={"User-Agent": USER_AGENT}
        ) as http:
            email = await http.post(
                "/passwordless/start",
                json={"client_id": NATIVE_ID, "connection": "email", "email": EMAIL},
            )
            assert email.status_code == 200, email.text
            sms = await http.post(
                "/passwordless/start",
                json={"client_id": NATIVE_ID, "connection": "sms", "phone_number": PHONE},
            )
            assert sms.status_code == 200, sms.text
        [mail] = await smtp_sink.wait_for(1)
    email_code = re.search(r"\b(\d{6})\b", mail.text())
    sms_code = re.search(r"\b(\d{6})\b", gateway.requests[0].json()["body"])
    assert email_code is not None and sms_code is not None
    codes = {email_code.group(1), sms_code.group(1)}

    def logs(*args: str) -> subprocess.CompletedProcess[str]:
        return nopass_cli("logs", "--tenant", "acme", *args, env=env, cwd=tmp_path)

    events = _lines(logs())
    assert [e["type"] for e in events] == ["cls", "cs"]
    cls, cs = events
    for event, connection, user in ((cls, "email", EMAIL), (cs, "sms", PHONE)):
        assert event["ip"] == "127.0.0.1"
        assert event["user_agent"] == USER_AGENT
        assert event["client_id"] == NATIVE_ID
        assert event["connection"] == connection
        assert event["user_name"] == user
        assert datetime.fromisoformat(event["date"].replace("Z", "+00:00")).tzinfo is not None
    assert "verification_code=******" in cls["details"]["link"]
    for code in codes:
        assert code not in json.dumps(events)

    # The cs event's own time, written in another time zone: --since includes it, not cls.
    cs_at = datetime.fromisoformat(cs["date"].replace("Z", "+00:00"))
    since_cs = cs_at.astimezone(timezone(timedelta(hours=2))).isoformat()
    future = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    variants: dict[str, tuple[str, ...]] = {
        "type cs": ("--type", "cs"),
        "type cls": ("--type", "cls"),
        "since future": ("--since", future),
        "since cs": ("--since", since_cs),
        "limit 1": ("--limit", "1"),
        "bad since": ("--since", "yesterday"),
        "unknown tenant": (),
    }
    with ThreadPoolExecutor(max_workers=4) as pool:
        runs = {
            name: pool.submit(
                nopass_cli,
                "logs",
                "--tenant",
                "nobody" if name == "unknown tenant" else "acme",
                *args,
                env=env,
                cwd=tmp_path,
            )
            for name, args in variants.items()
        }
    assert _lines(runs["type cs"].result()) == [cs]
    assert _lines(runs["type cls"].result()) == [cls]
    future_run = runs["since future"].result()
    assert (future_run.returncode, future_run.stdout) == (0, "")
    assert _lines(runs["since cs"].result()) == [cs]
    assert _lines(runs["limit 1"].result()) == [cls]
    assert "--since" in usage_error(runs["bad since"].result())
    assert "nobody" in usage_error(runs["unknown tenant"].result())


async def test_logs_on_a_database_never_migrated_is_a_clear_error(
    database_url: str, tmp_path: Path
) -> None:
    line = usage_error(
        nopass_cli("logs", "--tenant", "acme", env=nopass_env(database_url), cwd=tmp_path)
    )
    assert "acme" in line or "migrate" in line, line
