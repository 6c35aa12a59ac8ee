"""Drive the django-allauth baseline: prepare a database, serve it with gunicorn.

Import this module by path or with ``bench/allauth`` on ``sys.path``; it never imports Django
itself (the Django project runs in subprocesses under the given ``python``).

A whole login is two requests, both JSON, no cookies and no CSRF token (allauth headless,
"app" client):

1. ``POST REQUEST_PATH`` with ``{"email": EMAIL}`` (``Content-Type: application/json``).
   Answers **401**: the login is pending (``data.flows`` holds ``{"id": "login_by_code",
   "is_pending": true}``), and the session token is ``meta.session_token``. An e-mail with
   the code goes to the SMTP server during the request; ``CODE_PATTERN`` finds the code in
   its plain-text body. An unknown e-mail answers the same 401 (enumeration prevention) and
   gets an "unknown account" mail instead, with no code.
2. ``POST CONFIRM_PATH`` with header ``X-Session-Token: TOKEN`` and ``{"code": CODE}``.
   Answers **200** on success: ``meta.is_authenticated`` is true, ``data.user`` is the user
   (``id``, ``email``, ...), and ``meta.session_token`` is the authenticated session's token
   (a new one: Django cycles the session key on login). A wrong code answers 400 (after
   ``ACCOUNT_LOGIN_BY_CODE_MAX_ATTEMPTS``, 3, wrong codes the pending login is dropped and
   further confirms answer 409), as does any code for an unknown e-mail; an unknown session
   token answers 410. A code lives 180 s.
"""

from __future__ import annotations

import os
import re
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent

REQUEST_PATH = "/_allauth/app/v1/auth/code/request"
CONFIRM_PATH = "/_allauth/app/v1/auth/code/confirm"
CONFIG_PATH = "/_allauth/app/v1/config"

# allauth's default login code: 8 characters from "BCDFGHJKLMNPQRSTVWXZ" (RFC 8628 6.1),
# dashed in two halves, e.g. "BKTX-QZMD", alone on its line of the plain-text body
# (templates/account/email/login_code_message.txt).
CODE_PATTERN = re.compile(r"^([BCDFGHJKLMNPQRSTVWXZ]{4}-[BCDFGHJKLMNPQRSTVWXZ]{4})\s*$", re.M)

READY_TIMEOUT_S = 30.0


def _env(database: str, smtp_port: int | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env["DJANGO_SETTINGS_MODULE"] = "allauth_bench.settings"
    env["ALLAUTH_BENCH_DATABASE"] = database
    if smtp_port is not None:
        env["ALLAUTH_BENCH_SMTP_PORT"] = str(smtp_port)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(HERE), env.get("PYTHONPATH")]))
    return env


def _manage(python: str, env: dict[str, str], *args: str) -> None:
    subprocess.run([python, str(HERE / "manage.py"), *args], cwd=HERE, env=env, check=True)


def prepare(database: str, emails: list[str], python: str) -> None:
    """Migrate ``database`` and create one user per e-mail, each with a verified primary
    ``EmailAddress``. Existing users are kept, so a second call is harmless."""
    env = _env(database)
    _manage(python, env, "migrate", "--no-input", "--verbosity", "0")
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as f:
        f.write("\n".join(emails))
        f.write("\n")
    try:
        _manage(python, env, "bench_prepare", f.name, "--verbosity", "0")
    finally:
        os.unlink(f.name)


def serve(
    database: str, smtp_port: int, port: int, workers: int, python: str
) -> subprocess.Popen[bytes]:
    """Start gunicorn (sync workers) on 127.0.0.1:``port`` and wait until it answers HTTP.

    The app is loaded before forking (``--preload``), so every worker is ready when the
    first one answers. Stop the server with ``terminate()`` and ``wait()``."""
    command = [
        python, "-m", "gunicorn", "allauth_bench.wsgi:application",
        "--chdir", str(HERE),
        "--bind", f"127.0.0.1:{port}",
        "--workers", str(workers),
        "--worker-class", "sync",
        "--preload",
        "--log-level", "warning",  # no access log (gunicorn's default): none is configured
    ]  # fmt: skip
    proc = subprocess.Popen(command, cwd=HERE, env=_env(database, smtp_port))
    url = f"http://127.0.0.1:{port}{CONFIG_PATH}"
    deadline = time.monotonic() + READY_TIMEOUT_S
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"gunicorn exited with status {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return proc
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        if time.monotonic() > deadline:
            proc.terminate()
            proc.wait()
            raise TimeoutError(f"gunicorn did not answer {url} within {READY_TIMEOUT_S:.0f} s")
        time.sleep(0.1)
