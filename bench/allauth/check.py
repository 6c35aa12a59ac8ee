"""Self-test of the allauth baseline: prepare, serve, and log in end to end.

    /tmp/allauth-venv/bin/python bench/allauth/check.py                 # temporary SQLite file
    /tmp/allauth-venv/bin/python bench/allauth/check.py --postgres postgresql://postgres@127.0.0.1:5432/allauth_bench_check

Run it with the Python that has Django, django-allauth, gunicorn, aiosmtpd and httpx. For
PostgreSQL the database must exist (createdb) and may be dropped afterwards (dropdb).
"""

from __future__ import annotations

import argparse
import email
import email.policy
import secrets
import socket
import sys
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path

import httpx
import server
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import Envelope

WORKERS = 2
CODE_CHARS = "BCDFGHJKLMNPQRSTVWXZ"
SESSION_PATH = "/_allauth/app/v1/auth/session"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Sink:
    """aiosmtpd handler that keeps every message's plain-text body by recipient."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.bodies: dict[str, list[str]] = defaultdict(list)

    async def handle_DATA(self, server: object, session: object, envelope: Envelope) -> str:
        raw = envelope.original_content or b""
        message = email.message_from_bytes(raw, policy=email.policy.default)
        body = message.get_body(("plain",))
        text = body.get_content() if body is not None else ""
        with self.lock:
            for rcpt in envelope.rcpt_tos:
                self.bodies[rcpt.lower()].append(text)
        return "250 OK"

    def last(self, recipient: str) -> str:
        with self.lock:
            bodies = self.bodies.get(recipient.lower())
            assert bodies, f"no mail to {recipient}"
            return bodies[-1]


def request_code(client: httpx.Client, sink: Sink, address: str) -> tuple[str, str]:
    """Step 1: returns (session token, code from the e-mail)."""
    r = client.post(server.REQUEST_PATH, json={"email": address})
    assert r.status_code == 401, (r.status_code, r.text)
    body = r.json()
    assert {"id": "login_by_code", "is_pending": True} in body["data"]["flows"], body
    token = body["meta"]["session_token"]
    # The mail is sent within the request: it is in the sink when the response arrives.
    match = server.CODE_PATTERN.search(sink.last(address))
    assert match, sink.last(address)
    return token, match.group(1)


def confirm(client: httpx.Client, token: str, code: str) -> httpx.Response:
    """Step 2."""
    return client.post(server.CONFIRM_PATH, json={"code": code}, headers={"X-Session-Token": token})


def assert_logged_in(r: httpx.Response, address: str) -> None:
    assert r.status_code == 200, (r.status_code, r.text)
    body = r.json()
    assert body["meta"]["is_authenticated"] is True, body
    assert body["data"]["user"]["email"] == address, body
    assert body["meta"]["session_token"], body


def run(database: str, users: int, logins: int) -> None:
    emails = [f"user{i:06d}@example.com" for i in range(users)]
    started = time.perf_counter()
    server.prepare(database, emails, sys.executable)
    print(f"prepare: {users} users in {time.perf_counter() - started:.2f} s")

    sink = Sink()
    smtp_port = free_port()
    controller = Controller(sink, hostname="127.0.0.1", port=smtp_port)
    controller.start()
    http_port = free_port()
    proc = server.serve(database, smtp_port, http_port, WORKERS, sys.executable)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{http_port}", timeout=10) as client:
            # Warm-up (first request of each worker: lazy imports, templates).
            for address in emails[-WORKERS * 2 :]:
                token, code = request_code(client, sink, address)
                assert_logged_in(confirm(client, token, code), address)

            started = time.perf_counter()
            for address in emails[:logins]:
                token, code = request_code(client, sink, address)
                r = confirm(client, token, code)
                assert_logged_in(r, address)
            elapsed = time.perf_counter() - started
            print(
                f"logins: {logins} complete logins OK, sequential, "
                f"{logins / elapsed:.1f} logins/s ({1000 * elapsed / logins:.1f} ms each)"
            )

            # The last login's session token authenticates the session endpoint.
            headers = {"X-Session-Token": r.json()["meta"]["session_token"]}
            session = client.get(SESSION_PATH, headers=headers)
            assert session.status_code == 200, (session.status_code, session.text)
            assert session.json()["data"]["user"]["email"] == emails[logins - 1]

            address = emails[logins]
            token, code = request_code(client, sink, address)
            wrong = code
            while wrong == code:
                wrong = "".join(secrets.choice(CODE_CHARS) for _ in range(8))
                wrong = f"{wrong[:4]}-{wrong[4:]}"
            r = confirm(client, token, wrong)
            assert r.status_code != 200, (r.status_code, r.text)
            print(f"wrong code: {r.status_code} {r.text}")
            assert_logged_in(confirm(client, token, code), address)
            print("right code after a wrong one: 200")
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        controller.stop()
    print("check: OK")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--postgres", metavar="URL", help="postgresql://user@host:port/dbname")
    parser.add_argument("--users", type=int, default=1000)
    parser.add_argument("--logins", type=int, default=20)
    args = parser.parse_args()
    if args.postgres:
        print(f"database: {args.postgres}")
        run(args.postgres, args.users, args.logins)
        return
    with tempfile.TemporaryDirectory(prefix="allauth-bench-") as tmp:
        database = f"sqlite:///{Path(tmp) / 'db.sqlite3'}"
        print(f"database: {database}")
        run(database, args.users, args.logins)


if __name__ == "__main__":
    main()
