"""SQL implementations of the ``nopass.core.ports`` repositories, one transaction each.

Every method takes ``tenant_id`` first and every query is scoped by it.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from datetime import datetime
from types import TracebackType
from typing import Self

from sqlalchemy import insert, text
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from nopass.core.keyring import Keyring
from nopass.core.models import Message
from nopass.core.otp import new_id
from nopass.store.audit_log import SqlAuditRepo
from nopass.store.authorization_codes import SqlAuthorizationCodeRepo
from nopass.store.challenges import SqlChallengeRepo
from nopass.store.config_document import SqlConfigRepo
from nopass.store.failure_windows import SqlFailureWindowRepo
from nopass.store.jobs import SqlJobRepo
from nopass.store.kept_connections import KeptConnections
from nopass.store.login_tickets import SqlLoginTicketRepo
from nopass.store.prebuilt import run
from nopass.store.refresh_tokens import SqlRefreshTokenRepo
from nopass.store.sessions import SqlSessionRepo, SqlTransactionRepo
from nopass.store.tables import ClientAssertionRow, OutboxRow, table
from nopass.store.users import SqlUserRepo

OUTBOX_CONTEXT = "outbox"
# Built once: the values travel as parameters (building a statement per call costs more CPU
# than running it).
ADD_OUTBOX = insert(table(OutboxRow))
# Plain statements rather than SQLAlchemy's nested transactions, which cost a greenlet switch
# and their bookkeeping at each end (the start flow opens one per request).
SAVEPOINT = text("SAVEPOINT nopass_work")
RELEASE_SAVEPOINT = text("RELEASE SAVEPOINT nopass_work")
UNDO_SAVEPOINT = text("ROLLBACK TO SAVEPOINT nopass_work")


class SqlOutboxRepo:
    def __init__(self, conn: AsyncConnection, keyring: Keyring) -> None:
        self._conn = conn
        self._keyring = keyring

    async def add(
        self,
        tenant_id: str,
        message: Message,
        *,
        provider: str,
        challenge_id: str | None,
        code: str | None,
        link: str | None,
        now: datetime,
    ) -> str:
        message_id = new_id()
        await run(
            self._conn,
            ADD_OUTBOX,
            {
                "id": message_id,
                "tenant_id": tenant_id,
                "channel": message.channel.value,
                "provider": provider,
                "recipient": message.recipient,
                "challenge_id": challenge_id,
                "payload": seal_payload(self._keyring, message_id, message, code=code, link=link),
                "status": "pending" if provider != "outbox" else "stored",
                "attempts": 0,
                "next_attempt_at": now,
                "created_at": now,
            },
        )
        return message_id


def seal_payload(
    keyring: Keyring, message_id: str, message: Message, *, code: str | None, link: str | None
) -> str:
    """Messages carry codes and links, so the stored body is encrypted (docs/specs/security.md
    §6)."""
    body = {
        "subject": message.subject,
        "text": message.text,
        "html": message.html,
        "sender": message.sender,
        "code": code,
        "link": link,
    }
    return keyring.seal(json.dumps(body).encode(), context=f"{OUTBOX_CONTEXT}:{message_id}")


class SqlAssertionRepo:
    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn

    async def claim_jti(
        self, tenant_id: str, client_id: str, jti: str, expires_at: datetime, now: datetime
    ) -> bool:
        # A savepoint keeps the surrounding transaction usable when the jti is a replay.
        try:
            async with self._conn.begin_nested():
                await self._conn.execute(
                    insert(table(ClientAssertionRow)).values(
                        tenant_id=tenant_id, client_id=client_id, jti=jti, expires_at=expires_at
                    )
                )
        except IntegrityError:
            return False
        return True


class SqlUnitOfWork:
    challenges: SqlChallengeRepo
    users: SqlUserRepo
    outbox: SqlOutboxRepo
    audit: SqlAuditRepo
    assertions: SqlAssertionRepo
    refresh_tokens: SqlRefreshTokenRepo
    failures: SqlFailureWindowRepo
    authorization_codes: SqlAuthorizationCodeRepo
    sessions: SqlSessionRepo
    transactions: SqlTransactionRepo
    tickets: SqlLoginTicketRepo

    def __init__(
        self, engine: AsyncEngine, keyring: Keyring, *, kept: KeptConnections | None = None
    ) -> None:
        """``kept``: connections of ``engine`` kept open between units of work (SQLite)."""
        self._engine = engine
        self._keyring = keyring
        self._kept = kept
        self._conn: AsyncConnection | None = None

    async def __aenter__(self) -> Self:
        conn = await (self._kept.take() if self._kept else self._engine.connect())
        await conn.begin()
        self._conn = conn
        self.challenges = SqlChallengeRepo(conn)
        self.users = SqlUserRepo(conn)
        self.outbox = SqlOutboxRepo(conn, self._keyring)
        self.audit = SqlAuditRepo(conn)
        self.assertions = SqlAssertionRepo(conn)
        self.refresh_tokens = SqlRefreshTokenRepo(conn)
        self.failures = SqlFailureWindowRepo(conn)
        self.authorization_codes = SqlAuthorizationCodeRepo(conn)
        self.sessions = SqlSessionRepo(conn)
        self.transactions = SqlTransactionRepo(conn)
        self.tickets = SqlLoginTicketRepo(conn)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        conn, self._conn = self._conn, None
        if conn is None:
            return
        # A connection that met a database error is not kept: it may be in any state.
        kept = None if isinstance(exc, (DBAPIError, OSError)) else self._kept
        try:
            if conn.in_transaction():
                await conn.rollback()
        except BaseException:
            kept = None
            raise
        finally:
            await (kept.give(conn) if kept else conn.close())

    @property
    def config(self) -> SqlConfigRepo:
        """Made on use: logins never need it."""
        return SqlConfigRepo(self.connection)

    @property
    def jobs(self) -> SqlJobRepo:
        """Made on use: logins never need it."""
        return SqlJobRepo(self.connection)

    @property
    def connection(self) -> AsyncConnection:
        """The open transaction's connection, for adapters that write in it (the database
        rate-limit counters)."""
        if self._conn is None:
            raise RuntimeError("unit of work is not open")
        return self._conn

    async def commit(self) -> None:
        if self._conn is None:
            raise RuntimeError("unit of work is not open")
        await self._conn.commit()

    @contextlib.asynccontextmanager
    async def savepoint(self, *, keep: bool) -> AsyncIterator[None]:
        """``SAVEPOINT``, then ``RELEASE`` when ``keep`` (else, or on an error, ``ROLLBACK
        TO``): both ends cost the same round trips, so kept and undone work take as long."""
        conn = self.connection
        await run(conn, SAVEPOINT)
        try:
            yield
        except BaseException:
            await run(conn, UNDO_SAVEPOINT)
            raise
        await run(conn, RELEASE_SAVEPOINT if keep else UNDO_SAVEPOINT)
