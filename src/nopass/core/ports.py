"""What the flows need from the outside world, as ``typing.Protocol``s.

``nopass.store`` and ``nopass.delivery`` implement them; tests may use hand-written fakes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import datetime, timedelta
from types import TracebackType
from typing import Any, Protocol, Self

from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey

from nopass.core.errors import DeliveryFailed
from nopass.core.jobs import Download, Job, RowError
from nopass.core.lucene import Node
from nopass.core.models import (
    AuditEvent,
    AuthorizationCode,
    Challenge,
    Connection,
    EmailProvider,
    LoggedEvent,
    LoginTicket,
    LoginTransaction,
    Message,
    OutboxEntry,
    RefreshGrant,
    Resolved,
    Session,
    SigningKey,
    User,
)
from nopass.core.user_query import Sort


class ChallengeRepo(Protocol):
    async def void_pending(
        self, tenant_id: str, connection_id: str, identifier: str, now: datetime
    ) -> int: ...

    async def add(self, challenge: Challenge) -> None: ...

    async def void(self, tenant_id: str, challenge_id: str, now: datetime) -> None: ...

    async def latest(
        self, tenant_id: str, connection_id: str, identifier: str
    ) -> Challenge | None: ...

    async def get(self, tenant_id: str, challenge_id: str) -> Challenge | None: ...

    async def attempt(
        self, tenant_id: str, challenge_id: str, guess_mac: str, now: datetime
    ) -> bool | None:
        """Count one guess and decide it in one atomic statement: True consumed, False a
        counted wrong guess, None not open for guesses (used, voided, expired, exhausted)."""
        ...

    async def check(
        self, tenant_id: str, challenge_id: str, guess_mac: str, now: datetime
    ) -> bool | None:
        """Like ``attempt`` without consuming: a right guess changes nothing, a wrong one
        is counted (``/passwordless/verify``)."""
        ...


UserSort = Sort  # how a page of users is ordered (core/user_query.py)


class UserRepo(Protocol):
    async def exists(self, tenant_id: str, connection_id: str, identifier: str) -> bool: ...

    async def get(self, tenant_id: str, user_id: str) -> User | None: ...

    async def record_login(
        self,
        tenant_id: str,
        connection_id: str,
        identifier: str,
        *,
        new_user_id: str,
        profile: Mapping[str, Any],
        ip: str | None,
        now: datetime,
    ) -> tuple[User, bool] | None:
        """Create the user or count its login, in one statement: ``(user, created)``; None,
        writing nothing, when the identity's user is blocked."""
        ...

    async def count_login(
        self, tenant_id: str, connection_id: str, identifier: str, *, ip: str | None, now: datetime
    ) -> User | None:
        """Count an existing user's login; None, writing nothing, when the identity has none
        or its user is blocked (``find`` tells which)."""
        ...

    async def find(self, tenant_id: str, connection_id: str, identifier: str) -> User | None:
        """The identity's user, if it has one."""
        ...

    async def set_blocked(
        self, tenant_id: str, user_id: str, blocked: bool, *, now: datetime
    ) -> User | None:
        """Block or unblock a user (``updated_at`` is ``now``); None when there is no such
        user."""
        ...

    async def add(self, user: User) -> bool:
        """Store a new user; False, writing nothing, when its ``user_id`` or its identity
        (connection, identifier) is taken."""
        ...

    async def replace(self, user: User) -> bool:
        """Overwrite the stored user of ``user.user_id`` (profile, identifier, metadata,
        ``blocked``, ``updated_at``); False, writing nothing, when the new identity is another
        user's or the user is gone."""
        ...

    async def delete(self, tenant_id: str, user_id: str) -> User | None:
        """Remove the user; the removed user, or None when there was none."""
        ...

    async def delete_for_connection(self, tenant_id: str, connection_id: str) -> list[str]:
        """Remove every user of the connection; their user_ids, sorted."""
        ...

    async def page(
        self,
        tenant_id: str,
        *,
        offset: int,
        limit: int,
        sort: UserSort,
        query: Node | None = None,
    ) -> list[User]:
        """Users in ``sort`` order (then ``user_id``; absent values last). ``query`` is a
        parsed search (not yet supported: ignored)."""
        ...

    async def count(self, tenant_id: str, query: Node | None = None) -> int: ...

    async def by_identifier(self, tenant_id: str, identifier: str) -> list[User]:
        """The users of every connection whose identifier (email, phone) is ``identifier``,
        oldest first."""
        ...


class RefreshTokenRepo(Protocol):
    async def add(self, tenant_id: str, grant: RefreshGrant, token_hash: str) -> None: ...

    async def find(self, tenant_id: str, token_hash: str) -> RefreshGrant | None: ...

    async def mark_rotated(self, tenant_id: str, grant_id: str, now: datetime) -> bool: ...

    async def revoke_family(self, tenant_id: str, family_id: str, now: datetime) -> int: ...

    async def delete_for_user(self, tenant_id: str, user_id: str) -> int:
        """Remove every refresh token of the user; how many there were."""
        ...

    async def delete_for_client(self, tenant_id: str, client_id: str) -> int:
        """Remove every refresh token issued to the client (it is deleted); how many."""
        ...

    async def list_for_user(
        self, tenant_id: str, user_id: str, *, after: str | None, limit: int, now: datetime
    ) -> list[RefreshGrant]:
        """The user's usable refresh tokens (not revoked, not rotated, unexpired) in ``id``
        order, those after ``after`` (a checkpoint: the last id of the previous page)."""
        ...

    async def get(self, tenant_id: str, grant_id: str, now: datetime) -> RefreshGrant | None:
        """The usable refresh token ``grant_id`` (as ``list_for_user`` shows them), or None."""
        ...

    async def delete(self, tenant_id: str, grant_id: str) -> bool:
        """Remove the refresh token ``grant_id``; whether there was one."""
        ...


class AuthorizationCodeRepo(Protocol):
    async def add(self, tenant_id: str, code: AuthorizationCode, code_hash: str) -> None: ...

    async def redeem(
        self, tenant_id: str, code_hash: str, now: datetime
    ) -> tuple[AuthorizationCode | None, bool]: ...

    async def remember_refresh_family(self, tenant_id: str, code_id: str, family: str) -> None: ...


class SessionRepo(Protocol):
    async def add(self, tenant_id: str, session: Session, token_hash: str) -> None: ...

    async def find(self, tenant_id: str, token_hash: str, now: datetime) -> Session | None: ...

    async def revoke(self, tenant_id: str, token_hash: str, now: datetime) -> None: ...

    async def delete_for_user(self, tenant_id: str, user_id: str) -> int:
        """Remove every browser session of the user; how many there were."""
        ...

    async def list_for_user(
        self, tenant_id: str, user_id: str, *, after: str | None, limit: int, now: datetime
    ) -> list[Session]:
        """The user's open sessions (not revoked, unexpired) in ``id`` order, those after
        ``after`` (a checkpoint: the last id of the previous page)."""
        ...

    async def get(self, tenant_id: str, session_id: str, now: datetime) -> Session | None:
        """The open session ``session_id`` (as ``list_for_user`` shows them), or None."""
        ...

    async def delete(self, tenant_id: str, session_id: str) -> bool:
        """Remove the session ``session_id``; whether there was one."""
        ...


class TransactionRepo(Protocol):
    async def add(self, tenant_id: str, tx: LoginTransaction, token_hash: str) -> None: ...

    async def find(
        self, tenant_id: str, token_hash: str, now: datetime
    ) -> LoginTransaction | None: ...

    async def update(self, tenant_id: str, tx_id: str, values: Mapping[str, Any]) -> None: ...


class LoginTicketRepo(Protocol):
    async def add(
        self, tenant_id: str, ticket: LoginTicket, ticket_hash: str, now: datetime
    ) -> None: ...

    async def consume(
        self, tenant_id: str, ticket_hash: str, client_id: str, now: datetime
    ) -> LoginTicket | None: ...


class FailureWindowRepo(Protocol):
    async def current(
        self, tenant_id: str, connection_id: str, identifier: str, window: timedelta, now: datetime
    ) -> tuple[int, datetime | None]: ...

    async def record_failure(
        self, tenant_id: str, connection_id: str, identifier: str, window: timedelta, now: datetime
    ) -> int: ...

    async def reset(self, tenant_id: str, connection_id: str, identifier: str) -> None: ...


class OutboxRepo(Protocol):
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
    ) -> str: ...


class AuditRepo(Protocol):
    async def add(self, event: AuditEvent, now: datetime) -> None: ...

    async def get(self, tenant_id: str, log_id: str) -> LoggedEvent | None: ...

    async def page(
        self,
        tenant_id: str,
        *,
        user_id: str | None,
        newest_first: bool,
        offset: int,
        limit: int,
        query: Node | None = None,
    ) -> tuple[list[LoggedEvent], int]:
        """A page of the tenant's events (only ``user_id``'s when given, only those matching
        ``query`` when given), by log id, and how many there are in all. ``query`` is a log
        search prepared over the stored fields (``nopass.core.log_query.prepare``)."""
        ...

    async def after(self, tenant_id: str, log_id: str | None, limit: int) -> list[LoggedEvent]:
        """Up to ``limit`` events written after ``log_id`` (from the first when None), oldest
        first: the checkpoint reading of ``GET /api/v2/logs?from=``."""
        ...


class AssertionRepo(Protocol):
    async def claim_jti(
        self, tenant_id: str, client_id: str, jti: str, expires_at: datetime, now: datetime
    ) -> bool:
        """Record a client-assertion ``jti``; False when it was seen before."""
        ...


class ConfigRepo(Protocol):
    """A tenant's configuration as the document ``nopass apply`` reads (docs/specs/interface.md),
    so that the Management API changes configuration through the same model as the file."""

    async def document(self, tenant_id: str) -> dict[str, Any]:
        """The tenant's whole configuration, client secrets left out (a client without
        ``client_secret`` keeps its own); locked against other changes until the unit of work
        ends."""
        ...

    async def replace(
        self, tenant_id: str, document: Mapping[str, Any], now: datetime
    ) -> dict[str, Any]:
        """Validate ``document`` as ``nopass apply`` validates a file (``ConfigFileError``,
        one line naming the key) and make it the tenant's whole configuration, as
        ``nopass apply --prune`` does (``ApplyConflict`` when it contradicts another
        tenant's); returns apply's summary (generated client secrets included)."""
        ...


class JobRepo(Protocol):
    """Import and export jobs (docs/specs/management-api.md §7), their files and row errors.
    A claim is a lease fenced by ``Job.attempts``: a fenced write (``progress``, ``finish``)
    does nothing, returning False, once another runner has claimed the job."""

    async def add(self, job: Job, file: bytes | None) -> None: ...

    async def get(self, tenant_id: str, job_id: str) -> Job | None: ...

    async def count_active(self, tenant_id: str, job_type: str) -> int:
        """The tenant's jobs of ``job_type`` that are pending or processing; other counts
        (submits) of the tenant wait until this unit of work ends."""
        ...

    async def claim(self, now: datetime, lease_until: datetime) -> Job | None:
        """Claim the oldest job that is pending, or processing under a lease that ran out
        (its runner died): processing, ``attempts`` + 1, leased until ``lease_until``. No two
        claimers get the same claim."""
        ...

    async def file(self, tenant_id: str, job_id: str) -> bytes | None:
        """An import's uploaded file."""
        ...

    async def progress(
        self, job: Job, *, done: int, summary: Mapping[str, int], lease_until: datetime
    ) -> bool:
        """Record a batch done and extend the lease (fenced)."""
        ...

    async def finish(
        self,
        job: Job,
        *,
        status: str,
        summary: Mapping[str, int] | None,
        details: str | None,
        output: bytes | None,
        now: datetime,
    ) -> bool:
        """Complete or fail the job, the upload dropped, an export's file kept (fenced)."""
        ...

    async def add_errors(
        self, tenant_id: str, job_id: str, errors: Sequence[RowError], now: datetime
    ) -> None: ...

    async def errors(self, tenant_id: str, job_id: str) -> list[RowError]:
        """The job's row errors in file order."""
        ...

    async def offer_download(
        self, tenant_id: str, job_id: str, token_hash: str, expires_at: datetime
    ) -> bool:
        """Make ``token_hash`` the one token of the export's file (a previous one stops
        working); False when there is no file to offer."""
        ...

    async def take_download(
        self, tenant_id: str, token_hash: str, now: datetime
    ) -> Download | None:
        """Spend the token, atomically (one taker wins): the file, which is dropped; a
        ``Download`` without data when the token is spent or expired; None when unknown."""
        ...


class UnitOfWork(Protocol):
    """One database transaction; nothing is visible to others until ``commit``."""

    @property
    def challenges(self) -> ChallengeRepo: ...
    @property
    def users(self) -> UserRepo: ...
    @property
    def outbox(self) -> OutboxRepo: ...
    @property
    def audit(self) -> AuditRepo: ...
    @property
    def assertions(self) -> AssertionRepo: ...
    @property
    def refresh_tokens(self) -> RefreshTokenRepo: ...
    @property
    def failures(self) -> FailureWindowRepo: ...
    @property
    def authorization_codes(self) -> AuthorizationCodeRepo: ...
    @property
    def sessions(self) -> SessionRepo: ...
    @property
    def transactions(self) -> TransactionRepo: ...
    @property
    def tickets(self) -> LoginTicketRepo: ...
    @property
    def config(self) -> ConfigRepo: ...
    @property
    def jobs(self) -> JobRepo: ...

    def savepoint(self, *, keep: bool) -> AbstractAsyncContextManager[None]:
        """Work in a savepoint: kept at the end when ``keep``, else (or on an error) undone,
        while the rest of the transaction goes on."""
        ...

    async def __aenter__(self) -> Self: ...

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...

    async def commit(self) -> None: ...


class UnitOfWorkFactory(Protocol):
    def __call__(self) -> UnitOfWork: ...


@dataclass(frozen=True, slots=True)
class TemplateContext:
    """What message templates may use (Auth0 names: code/password, link, application.name,
    request_language, send, phone_number)."""

    code: str
    link: str
    application_name: str
    request_language: str | None  # raw x-request-language / Accept-Language value
    send: str  # code | link | link_ios | link_android
    recipient: str  # the normalised email address or phone number
    lifetime_seconds: int


class Renderer(Protocol):
    def email(
        self, connection: Connection, context: TemplateContext, default_sender: str
    ) -> Message: ...

    def sms(self, connection: Connection, context: TemplateContext) -> Message: ...


@dataclass(frozen=True, slots=True)
class RequestInfo:
    ip: str | None
    user_agent: str | None
    auth0_client: Mapping[str, object] | None = None  # decoded Auth0-Client telemetry
    # ``auth0-forwarded-for`` when it holds an IP address: the end user's IP according to the
    # caller, believed only from an authenticated confidential client that is trusted for it.
    forwarded_for: str | None = None


class SmsSender(Protocol):
    async def send(self, connection: Connection, message: Message, request: RequestInfo) -> None:
        """Deliver now or raise ``DeliveryFailed``."""
        ...


class OutboxSignal(Protocol):
    def notify(self) -> None:
        """Tell the local outbox worker that a message is waiting."""
        ...


class OutboxQueue(Protocol):
    """The delivery side of the outbox: claim (a lease), then settle each message. A claim
    whose lease runs out is taken back (at least once); only the latest claim of a message
    may retry or fail it."""

    async def claim_due(
        self, now: datetime, *, lease_seconds: float, limit: int
    ) -> list[OutboxEntry]:
        """Claim up to ``limit`` due messages in one statement (no two claimers share one)."""
        ...

    async def mark_sent(self, entries: Sequence[OutboxEntry], now: datetime) -> None:
        """Settle delivered messages (also those whose lease ran out meanwhile)."""
        ...

    async def settle_and_claim(
        self, sent: Sequence[OutboxEntry], now: datetime, *, lease_seconds: float, limit: int
    ) -> list[OutboxEntry]:
        """``mark_sent`` then ``claim_due``, in one transaction (one commit per batch)."""
        ...

    async def retry_later(self, entry: OutboxEntry, at: datetime, error: str) -> None: ...

    async def fail(self, entry: OutboxEntry, error: str, now: datetime) -> None:
        """Give up on a message and write an ``fn`` audit event, in one transaction."""
        ...

    async def release_abandoned(
        self, now: datetime, *, max_lost_claims: int, oldest: datetime
    ) -> int:
        """Messages whose sender died or stalled (the lease ran out) are pending again, due
        now: sent at least once, maybe twice (with the same Message-ID). One lost for the
        ``max_lost_claims``-th time, or created before ``oldest``, fails with ``fn``."""
        ...


class EmailTransport(Protocol):
    async def send_many(
        self, provider: EmailProvider, messages: list[Message], *, message_ids: Sequence[str]
    ) -> list[DeliveryFailed | None]:
        """Hand the messages to the provider (over one session, where that saves round
        trips) and return each one's ``DeliveryFailed``, or None when it was handed over, in
        order. ``message_ids`` (one per message, stable across attempts) make each email's
        Message-ID, so a resend is recognisable. One message's failure does not stop the
        others; a failure that may have reached the provider is never retried here (the
        outbox decides by ``retryable``)."""
        ...


class EmailProviderLookup(Protocol):
    async def __call__(self, tenant_id: str) -> EmailProvider | None: ...


class TenantResolver(Protocol):
    async def resolve(self, host: str) -> Resolved | None: ...


class OutboxReader(Protocol):
    async def list_recent(self, tenant_id: str, *, limit: int = 50) -> list[OutboxEntry]: ...


class KeyStore(Protocol):
    """A tenant's signing keys, created on first need and cached."""

    async def signing_key(self, tenant_id: str) -> SigningKey: ...

    async def public_keys(
        self, tenant_id: str, *, kid: str | None = None
    ) -> Mapping[str, RSAPublicKey]: ...

    async def jwks(self, tenant_id: str) -> list[dict[str, Any]]: ...
