"""The ``nopass`` command (docs/specs/interface.md): dev, migrate, apply, serve, logs, users,
keys."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import ssl
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncEngine

from nopass import __version__
from nopass.config_file import ApplyConflict, ConfigFileError, load_config_file, parse_config
from nopass.core.keyring import Keyring
from nopass.settings import Settings, SettingsError, with_secret
from nopass.store.apply import apply_config
from nopass.store.audit_log import read_events, tenant_id_by_name
from nopass.store.engine import DatabaseUrlError, create_engine
from nopass.store.keys import create_key
from nopass.store.migrate import is_empty, migrate, migrate_engine
from nopass.store.users import SqlUserRepo, user_record

EXIT_USAGE = 2
DEV_TENANT = "dev"

APP = "nopass.app:create_app_from_env"  # the uvicorn factory of every worker
KEY_PASSWORD_ENV = "NOPASS_SSL_KEYFILE_PASSWORD"  # noqa: S105 (a variable name, no secret)


class CliError(Exception):
    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


def _settings(*, require_secret: bool) -> Settings:
    try:
        return with_secret(Settings(), require=require_secret)
    except ValidationError as exc:
        raise CliError(f"configuration error: {_bad_setting(exc)}", EXIT_USAGE) from None
    except SettingsError as exc:
        raise CliError(f"configuration error: {_first_line(exc)}", EXIT_USAGE) from None


def _first_line(exc: Exception) -> str:
    return str(exc).strip().splitlines()[0]


def _bad_setting(exc: ValidationError) -> str:
    """The first bad setting, by its variable: ``NOPASS_X: what is wrong`` (never the
    value, which may be a secret)."""
    error = exc.errors()[0]
    name = "NOPASS_" + "_".join(str(part) for part in error["loc"]).upper()
    return f"{name}: {error['msg']}"


def cmd_migrate(_: argparse.Namespace) -> int:
    settings = _settings(require_secret=False)
    asyncio.run(migrate(settings.database_url))
    print(json.dumps({"migrated": True}))
    return 0


async def _apply(settings: Settings, data: Any, prune: bool) -> dict[str, Any]:
    config = data if not isinstance(data, dict) else parse_config(data)
    engine = create_engine(settings.database_url)
    try:
        await migrate_engine(engine)
        return await apply_config(engine, config, now=datetime.now(UTC), prune=prune)
    finally:
        await engine.dispose()


def cmd_apply(args: argparse.Namespace) -> int:
    try:
        config = load_config_file(Path(args.file))
    except ConfigFileError as exc:
        raise CliError(f"error: {exc}", EXIT_USAGE) from None
    settings = _settings(require_secret=False)
    try:
        summary = asyncio.run(_apply(settings, config, args.prune))
    except ApplyConflict as exc:
        raise CliError(f"error: {exc}", EXIT_USAGE) from None
    print(json.dumps(summary))
    return 0


def dev_config(port: int) -> dict[str, Any]:
    return {
        "tenant": {
            "name": DEV_TENANT,
            "friendly_name": "nopass dev",
            "domains": [f"http://127.0.0.1:{port}", f"http://localhost:{port}"],
        },
        "clients": [
            {
                "name": "Demo App",
                "app_type": "native",
                "token_endpoint_auth_method": "none",
                "callbacks": [
                    f"http://127.0.0.1:{port}/callback",
                    f"http://localhost:{port}/callback",
                ],
            }
        ],
        "connections": [
            {"name": "email", "strategy": "email", "enabled_clients": ["Demo App"]},
            {
                "name": "sms",
                "strategy": "sms",
                "enabled_clients": ["Demo App"],
                "options": {"provider": "outbox"},
            },
        ],
        "email_provider": {
            "name": "outbox",
            "enabled": True,
            "default_from_address": "Demo App <login@localhost>",
        },
    }


def cmd_dev(args: argparse.Namespace) -> int:
    os.environ.setdefault("NOPASS_DATABASE_URL", "sqlite:///./var/nopass.db")
    settings = _settings(require_secret=False)
    if not settings.is_sqlite:
        raise CliError("nopass dev runs on SQLite; unset NOPASS_DATABASE_URL", EXIT_USAGE)
    summary = asyncio.run(_apply(settings, dev_config(args.port), prune=False))
    client_id = summary["clients"][0]["client_id"]
    base = f"http://127.0.0.1:{args.port}"
    body = json.dumps(
        {"client_id": client_id, "connection": "email", "email": "you@example.com", "send": "code"}
    )
    print(
        f"""
nopass dev — tenant "{DEV_TENANT}" on {base} (and http://localhost:{args.port})

  client_id:  {client_id}   (Demo App, public native client)
  connections: email, sms   (dev outbox: nothing is really sent)

Start a login:

  curl -s {base}/passwordless/start -H 'content-type: application/json' \\
    -d '{body}'

Then read the code at {base}/dev/outbox
""",
        flush=True,
    )
    os.environ["NOPASS_DEV_MODE"] = "1"
    return _run_server(settings, host="127.0.0.1", port=args.port, workers=1)


@dataclass(frozen=True, slots=True)
class Tls:
    """``nopass serve``'s certificate and key, handed to uvicorn as its ``ssl_*`` options."""

    certfile: str
    keyfile: str | None
    password: str | None

    def options(self) -> dict[str, Any]:
        return {
            "ssl_certfile": self.certfile,
            "ssl_keyfile": self.keyfile,
            "ssl_keyfile_password": self.password,
        }


def serve_tls(args: argparse.Namespace) -> Tls | None:
    """The TLS options of ``serve``, checked before anything starts: each file can be read,
    and the key loads (with its password) and matches the certificate. A problem is a
    one-line error, exit status 2."""
    password = args.ssl_keyfile_password or os.environ.get(KEY_PASSWORD_ENV) or None
    if args.ssl_certfile is None:
        if args.ssl_keyfile is not None or args.ssl_keyfile_password is not None:
            raise CliError("error: --ssl-keyfile and its password need --ssl-certfile", EXIT_USAGE)
        return None
    for flag, path in (("--ssl-certfile", args.ssl_certfile), ("--ssl-keyfile", args.ssl_keyfile)):
        if path is None:
            continue
        try:
            Path(path).read_bytes()
        except OSError as exc:
            reason = exc.strerror or type(exc).__name__
            raise CliError(f"error: {flag}: cannot read {path}: {reason}", EXIT_USAGE) from None
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        # A callable, so that an encrypted key without a password fails instead of OpenSSL
        # asking for one on the terminal.
        context.load_cert_chain(
            args.ssl_certfile, args.ssl_keyfile, password=lambda: (password or "").encode()
        )
    except ssl.SSLError as exc:
        if exc.reason == "KEY_VALUES_MISMATCH":
            message = "the key does not match the certificate"
        elif args.ssl_keyfile is None:
            message = "the file holds no usable certificate and key (give --ssl-keyfile?)"
        else:
            message = (
                "the certificate or the key cannot be loaded (not PEM, or an encrypted key "
                "with a wrong or missing --ssl-keyfile-password)"
            )
        raise CliError(f"error: --ssl-certfile/--ssl-keyfile: {message}", EXIT_USAGE) from None
    return Tls(args.ssl_certfile, args.ssl_keyfile, password)


def cmd_serve(args: argparse.Namespace) -> int:
    # The dev outbox page shows codes: only `nopass dev` may turn it on, never the environment.
    if os.environ.pop("NOPASS_DEV_MODE", None) is not None:
        print("warning: NOPASS_DEV_MODE is ignored by `nopass serve`", file=sys.stderr)
    tls = serve_tls(args)
    settings = _settings(require_secret=True)
    engine = create_engine(settings.database_url)

    async def prepare() -> None:
        try:
            if await is_empty(engine):
                await migrate_engine(engine)
        finally:
            await engine.dispose()

    asyncio.run(prepare())
    return _run_server(settings, host=args.host, port=args.port, workers=args.workers, tls=tls)


def _run_server(
    settings: Settings, *, host: str, port: int, workers: int, tls: Tls | None = None
) -> int:
    import uvicorn

    from nopass.logconfig import uvicorn_log_config

    # Worker processes rebuild Settings from the environment: hand them the resolved secret.
    os.environ["NOPASS_SECRET_KEY"] = ",".join(k.decode() for k in settings.secret_keys)
    os.environ["NOPASS_DATABASE_URL"] = settings.database_url
    # uvicorn re-raises the signal that stopped it once it has shut down, so the process would
    # end "killed by SIGTERM" (status 143). A graceful stop on SIGTERM is a success: exit 0.
    signal.signal(signal.SIGTERM, _stopped)
    options: dict[str, Any] = {
        "factory": True,
        "host": host,
        "port": port,
        "workers": workers,
        "access_log": False,
        "proxy_headers": False,
        "server_header": False,
        "log_config": uvicorn_log_config(settings.log_level),
        "timeout_graceful_shutdown": 30,
        "loop": "uvloop",
        "http": "nopass.api.http_protocol:OneWriteHttpToolsProtocol",  # httptools, one write each
        **(tls.options() if tls is not None else {}),
    }
    if workers == 1:
        uvicorn.run(APP, **options)
        return 0
    from nopass.workers import ReusePortMultiprocess, worker_sockets

    # Each worker on a socket of its own, so that connections spread over them (workers.py).
    config = uvicorn.Config(APP, **options)
    with contextlib.suppress(KeyboardInterrupt):
        sockets = worker_sockets(host, port, workers, config.backlog, tls=tls is not None)
        ReusePortMultiprocess(config, sockets).run()
    return 0


def _positive(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number, not {value!r}") from None
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, not {number}")
    return number


def _stopped(signum: int, frame: object) -> None:
    raise SystemExit(0)


def cmd_logs(args: argparse.Namespace) -> int:
    settings = _settings(require_secret=False)
    since = None
    if args.since:
        try:
            since = datetime.fromisoformat(args.since.replace("Z", "+00:00"))
        except ValueError:
            raise CliError(
                f"error: --since: not an ISO 8601 time: {args.since}", EXIT_USAGE
            ) from None
        if since.tzinfo is None:
            since = since.replace(tzinfo=UTC)

    async def run() -> int:
        engine = create_engine(settings.database_url)
        try:
            tenant_id = await _tenant_id(engine, args.tenant)
            async for event in read_events(
                engine, tenant_id, type_=args.type, since=since, user_id=args.user, limit=args.limit
            ):
                sys.stdout.write(json.dumps(event) + "\n")
        finally:
            await engine.dispose()
        return 0

    return asyncio.run(run())


async def _tenant_id(engine: AsyncEngine, name: str) -> str:
    if await is_empty(engine):
        raise CliError(
            "error: the database has no nopass schema yet: run `nopass migrate` first", EXIT_USAGE
        )
    tenant_id = await tenant_id_by_name(engine, name)
    if tenant_id is None:
        raise CliError(f"error: no tenant named {name!r}", EXIT_USAGE)
    return tenant_id


def cmd_keys_rotate(args: argparse.Namespace) -> int:
    settings = _settings(require_secret=True)

    async def run() -> str:
        engine = create_engine(settings.database_url)
        try:
            tenant_id = await _tenant_id(engine, args.tenant)
            keyring = Keyring(settings.secret_keys)
            return await create_key(engine, keyring, tenant_id, datetime.now(UTC), rotate=True)
        finally:
            await engine.dispose()

    print(json.dumps({"tenant": args.tenant, "kid": asyncio.run(run())}))
    return 0


def cmd_users(args: argparse.Namespace) -> int:
    settings = _settings(require_secret=False)

    async def run() -> None:
        engine = create_engine(settings.database_url)
        try:
            tenant_id = await _tenant_id(engine, args.tenant)
            async with engine.connect() as conn:
                repo = SqlUserRepo(conn)
                names = await repo.connection_names(tenant_id)
                users = await repo.list(tenant_id, limit=args.limit)
            for user in users:
                record = user_record(user, names.get(user.connection_id, ""))
                sys.stdout.write(json.dumps(record) + "\n")
        finally:
            await engine.dispose()

    asyncio.run(run())
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="nopass",
        description="Self-hosted passwordless login server that speaks Auth0's Authentication API.",
        epilog="Environment: NOPASS_DATABASE_URL, NOPASS_SECRET_KEY, NOPASS_REDIS_URL, "
        "NOPASS_TRUSTED_PROXIES, NOPASS_LOG_LEVEL (see README).",
    )
    parser.add_argument("--version", action="version", version=f"nopass {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("dev", help="try it: SQLite in ./var, a seeded tenant, the dev outbox")
    p.add_argument("--port", type=int, default=8000, help="port on 127.0.0.1 (default 8000)")
    p.set_defaults(func=cmd_dev)

    p = sub.add_parser("migrate", help="create or upgrade the database schema (idempotent)")
    p.set_defaults(func=cmd_migrate)

    p = sub.add_parser("apply", help="create or update a tenant from a YAML or JSON file")
    p.add_argument("--file", "-f", required=True, help="the configuration file (.yaml/.json)")
    p.add_argument(
        "--prune",
        action="store_true",
        help="also delete clients, connections and APIs of the tenant that the file omits",
    )
    p.set_defaults(func=cmd_apply)

    p = sub.add_parser("serve", help="serve the HTTP API")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    p.add_argument(
        "--workers",
        type=_positive,
        default=1,
        help="worker processes, each on a socket of its own (default 1)",
    )
    p.add_argument(
        "--ssl-certfile",
        metavar="FILE",
        help="serve HTTPS only, with this PEM certificate (chain); the Management API SDKs "
        "always call https://DOMAIN",
    )
    p.add_argument(
        "--ssl-keyfile",
        metavar="FILE",
        help="the certificate's PEM private key (omit when --ssl-certfile holds it too)",
    )
    p.add_argument(
        "--ssl-keyfile-password",
        metavar="PASSWORD",
        help=f"password of an encrypted key (default: ${KEY_PASSWORD_ENV}, which keeps it "
        "out of the process list)",
    )
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("logs", help="print a tenant's audit log as JSON lines")
    p.add_argument("--tenant", required=True, help="tenant name")
    p.add_argument("--type", help="only events of this Auth0 type code (e.g. cls, cs, fn)")
    p.add_argument("--since", help="only events at or after this ISO 8601 time")
    p.add_argument("--user", help="only events of this user_id")
    p.add_argument("--limit", type=int, help="at most this many events")
    p.set_defaults(func=cmd_logs)

    p = sub.add_parser("users", help="list a tenant's users as JSON lines")
    p.add_argument("--tenant", required=True, help="tenant name")
    p.add_argument("--limit", type=int, help="at most this many users")
    p.set_defaults(func=cmd_users)

    keys = sub.add_parser("keys", help="manage token signing keys")
    keys_sub = keys.add_subparsers(dest="keys_command", required=True, metavar="ACTION")
    p = keys_sub.add_parser(
        "rotate",
        help="add a new signing key (new kid) that signs from now on; older keys stay in JWKS",
    )
    p.add_argument("--tenant", required=True, help="tenant name")
    p.set_defaults(func=cmd_keys_rotate)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except CliError as exc:
        print(str(exc), file=sys.stderr)
        return exc.code
    except DatabaseUrlError as exc:
        print(f"configuration error: NOPASS_DATABASE_URL: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130
