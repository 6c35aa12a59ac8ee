"""Settings of the django-allauth baseline: headless login by code, production-like.

Environment:

- ``ALLAUTH_BENCH_DATABASE`` (required): ``sqlite:////abs/path/db.sqlite3`` or
  ``postgresql://user[:password]@host[:port]/dbname``.
- ``ALLAUTH_BENCH_SMTP_PORT``: port of a plain SMTP server on 127.0.0.1 (default 1025).
- ``ALLAUTH_BENCH_SECRET_KEY``: optional; a fixed value is fine for a benchmark.
"""

import os
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent

SECRET_KEY = os.environ.get(
    "ALLAUTH_BENCH_SECRET_KEY", "allauth-bench-not-a-secret-0123456789abcdefghijklmnopqrstuvwxyz"
)
DEBUG = False
ALLOWED_HOSTS = ["*"]

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "allauth",
    "allauth.account",
    "allauth.headless",
    "allauth_bench",  # only for the bench_prepare management command
]

# Django's default production stack (startproject), minus messages (not installed), plus
# allauth's AccountMiddleware. The headless views are CSRF-exempt for the "app" client.
MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "allauth.account.middleware.AccountMiddleware",
]

ROOT_URLCONF = "allauth_bench.urls"
WSGI_APPLICATION = "allauth_bench.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,  # allauth's e-mail templates
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
            ],
        },
    },
]

AUTHENTICATION_BACKENDS = [
    "django.contrib.auth.backends.ModelBackend",
    "allauth.account.auth_backends.AuthenticationBackend",
]


def _database(url: str) -> dict[str, Any]:
    parts = urlsplit(url)
    if parts.scheme == "sqlite":
        # sqlite:////abs/path/db.sqlite3 -> /abs/path/db.sqlite3
        name = parts.path
        if not name.startswith("/"):
            raise ImproperlyConfigured("ALLAUTH_BENCH_DATABASE: sqlite:////absolute/path only")
        return {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": name,
            # Same as nopass's SQLite engine (src/nopass/store/engine.py): WAL journal,
            # synchronous=FULL, BEGIN IMMEDIATE for write transactions (no deadlocked lock
            # upgrades between the gunicorn workers: "database is locked"), 10 s busy timeout.
            # transaction_mode and multi-statement init_command need Django >= 5.1. Outside
            # atomic blocks Django runs in autocommit, each statement its own transaction.
            "OPTIONS": {
                "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL",
                "transaction_mode": "IMMEDIATE",
                "timeout": 10,
            },
            # One connection per worker process, kept across requests (as nopass keeps a
            # pool), instead of Django's default of reconnecting on every request.
            "CONN_MAX_AGE": None,
        }
    if parts.scheme in ("postgresql", "postgres"):
        return {
            "ENGINE": "django.db.backends.postgresql",  # psycopg 3 when installed
            "NAME": parts.path.lstrip("/"),
            "USER": unquote(parts.username or ""),
            "PASSWORD": unquote(parts.password or ""),
            "HOST": parts.hostname or "",
            "PORT": str(parts.port or ""),
            "CONN_MAX_AGE": None,  # persistent connection per worker process
        }
    raise ImproperlyConfigured(f"ALLAUTH_BENCH_DATABASE: unsupported scheme {parts.scheme!r}")


try:
    DATABASES = {"default": _database(os.environ["ALLAUTH_BENCH_DATABASE"])}
except KeyError:
    raise ImproperlyConfigured("ALLAUTH_BENCH_DATABASE is not set") from None

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# Sessions live in the database (Django's default engine): the headless "app" client's
# X-Session-Token is the session key.
SESSION_ENGINE = "django.contrib.sessions.backends.db"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

# Real SMTP delivery, one connection per message (Django's SMTP backend), plain, no auth.
EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
EMAIL_HOST = "127.0.0.1"
EMAIL_PORT = int(os.environ.get("ALLAUTH_BENCH_SMTP_PORT", "1025"))
EMAIL_HOST_USER = ""
EMAIL_HOST_PASSWORD = ""
EMAIL_USE_TLS = False
EMAIL_USE_SSL = False
EMAIL_TIMEOUT = 10
DEFAULT_FROM_EMAIL = "login@allauth-bench.test"

# --- allauth -------------------------------------------------------------------------------
HEADLESS_ONLY = True
HEADLESS_CLIENTS = ("app",)  # session in the X-Session-Token header; no cookies, no CSRF
# Links that allauth puts in some e-mails point at the (here imaginary) front end; headless
# needs them, e.g. the "unknown account" mail a login code request for an unknown address gets.
HEADLESS_FRONTEND_URLS = {
    "account_confirm_email": "https://app.allauth-bench.test/account/verify-email/{key}",
    "account_reset_password": "https://app.allauth-bench.test/account/password/reset",
    "account_reset_password_from_key": (
        "https://app.allauth-bench.test/account/password/reset/key/{key}"
    ),
    "account_signup": "https://app.allauth-bench.test/account/signup",
}
ACCOUNT_LOGIN_METHODS = {"email"}
ACCOUNT_SIGNUP_FIELDS = ["email*"]
ACCOUNT_UNIQUE_EMAIL = True
ACCOUNT_EMAIL_VERIFICATION = "optional"  # never blocks a login
ACCOUNT_LOGIN_BY_CODE_ENABLED = True
# The load generator sends every login from one IP address, which allauth's default limits
# (per IP and per e-mail) would throttle within seconds. nopass's own limits are raised for
# its benchmark runs as well, so both servers are measured without rate limiting.
ACCOUNT_RATE_LIMITS = False

# Errors (500s) go to stderr; no per-request lines (4xx warnings are dropped).
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {"django": {"handlers": ["console"], "level": "ERROR", "propagate": False}},
}
