"""The one check of a one-time code that comes back (docs/security.md "Codes").

Five entry points bring a code back: the OTP grant (``/oauth/token``), ``/passwordless/verify``,
cross-origin authentication (``/co/authenticate``), the hosted login page and the magic link.
Each calls ``CodeCheck`` inside its own unit of work, so that every rule below is written once
and one guess budget per identity holds across all of them:

1. the request's IP reserves one failure of ``failures_per_ip_per_hour`` (429 when spent);
2. an identity whose failure window is full (default 10 failures per 15 minutes) is refused
   with ``IdentityBlocked`` (429) until the window passes;
3. only the identity's latest code counts; each guess is counted and decided in one atomic
   statement (``ChallengeRepo.attempt`` / ``check``); 3 failed guesses kill it; it works once;
4. a failure records the identity's failure, writes the entry point's audit events and
   commits, so the guess stays counted whatever the caller does next;
5. a success gives the reserved failure back and, when the code is consumed, completes the
   login: creates the user at first login (never on a connection that disables signup: that
   fails like a wrong code), voids the identity's other codes, resets its window, and counts a
   verified SMS for the conversion breaker;
6. a right code of a user an administrator blocked is refused with ``UserBlocked``: the login
   is counted by one statement that leaves a blocked user alone (``UserRepo.record_login`` /
   ``count_login``), and when it does, the consumption is undone (a savepoint), so nothing
   is written but the audit event (``f`` "user is blocked") and the reserved IP failure is
   given back. The code stays usable until it expires: unblocked in time, the user can still
   sign in with it. ``confirm`` refuses the same user after its check, which wrote nothing.

The caller commits after a success, together with what it issues (tokens, a session, a
ticket), so a login is all or nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from nopass.core.channel import Channel
from nopass.core.clock import Clock
from nopass.core.errors import (
    CodeFailure,
    CodeRejected,
    ConnectionIssue,
    ConnectionProblem,
    IdentityBlocked,
    UserBlocked,
)
from nopass.core.keyring import Keyring
from nopass.core.models import AuditEvent, Client, Connection, Tenant, TenantConfig, User
from nopass.core.otp import MAX_ATTEMPTS
from nopass.core.ports import UnitOfWork
from nopass.core.profile import initial_profile, new_user_id
from nopass.flows.limits import Limits
from nopass.ratelimit.base import Decision

FAILURE_WINDOW = timedelta(minutes=15)
LOCKED_OUT = "Too many failed codes: the identity is blocked until its failure window passes"
TEST_IDENTITY_EVENT = "test_identity"
TEST_IDENTITY_TEXT = "Signed in with a test identity's fixed code"
USER_BLOCKED_EVENT = "f"
USER_BLOCKED_TEXT = "user is blocked"


@dataclass(frozen=True, slots=True)
class FailureEvents:
    """The audit event types an entry point writes when a code fails (Auth0's codes)."""

    rejected: tuple[str, ...]  # a wrong, expired, exhausted or unusable code
    blocked: tuple[str, ...]  # the identity's failure window is full


OTP_GRANT_FAILURES = FailureEvents(rejected=("fp", "fepotpft"), blocked=("fepotpft",))
VERIFY_FAILURES = FailureEvents(rejected=("fp",), blocked=("f",))
CROSS_ORIGIN_FAILURES = FailureEvents(rejected=("fp", "fcoa"), blocked=("fcoa",))
BROWSER_FAILURES = FailureEvents(rejected=("f",), blocked=("f",))


@dataclass(frozen=True, slots=True)
class CodeAttempt:
    """One code brought back to one connection."""

    connection: Connection
    username: str | None  # as sent; None, or one that cannot be an identity, fails as wrong
    code: str
    limit_ip: str | None  # the IP ``failures_per_ip_per_hour`` counts (``limits.limit_ip``)
    user_ip: str | None  # the user's IP, remembered as ``last_ip`` at sign-in
    audit: AuditEvent  # the context of the audit events
    failures: FailureEvents


@dataclass(frozen=True, slots=True)
class LoginResult:
    user: User
    created: bool
    challenge_id: str
    at: datetime  # the moment the code was decided: the login's time
    test_identity: bool = False  # signed in with a test identity's fixed code


def normalize_identifier(connection: Connection, username: str) -> str | None:
    """The canonical identity for a typed username, or None when it cannot be one."""
    return connection.channel.normalize(username)


def realm_connection(config: TenantConfig, client: Client, name: str) -> Connection:
    """The passwordless connection ``name`` that ``client`` may sign users in with."""
    connection = config.connections.get(name)
    if connection is None or not connection.is_passwordless:
        raise ConnectionProblem(ConnectionIssue.NOT_FOUND)
    if client.client_id not in connection.enabled_clients:
        raise ConnectionProblem(ConnectionIssue.DISABLED)
    return connection


@dataclass(frozen=True, slots=True)
class _Opened:
    identifier: str
    reservation: Decision | None
    now: datetime


@dataclass(frozen=True, slots=True)
class _Decided:
    identifier: str
    challenge_id: str
    reservation: Decision | None
    now: datetime


@dataclass(frozen=True, slots=True)
class CodeCheck:
    """Decides codes for every entry point (see the module docstring)."""

    keyring: Keyring
    limits: Limits
    clock: Clock

    async def sign_in(self, uow: UnitOfWork, tenant: Tenant, attempt: CodeAttempt) -> LoginResult:
        """Consume the identity's latest code if ``attempt.code`` is it and sign the user in,
        in ``uow`` (the caller commits). Raises ``RateLimited``, ``IdentityBlocked`` or
        ``CodeRejected``, each committed with its audit events."""
        opened = await self._open(uow, tenant, attempt)
        try:
            # Undone when the user is blocked: its right code stays as it was.
            async with uow.savepoint(keep=True):
                login = await self._consume(uow, tenant, attempt, opened)
        except UserBlocked as exc:
            await self._refuse_blocked(uow, tenant, attempt, opened, exc)
            raise
        if isinstance(login, CodeRejected):
            await self._failed(uow, tenant, attempt, opened.identifier, login, opened.now)
            raise login
        decided = _Decided(opened.identifier, login.challenge_id, opened.reservation, opened.now)
        await self.limits.verified(
            decided.reservation,
            tenant,
            attempt.connection,
            decided.identifier,
            signed_in=True,
            test_identity=login.test_identity,
            uow=uow,
        )
        return login

    async def confirm(self, uow: UnitOfWork, tenant: Tenant, attempt: CodeAttempt) -> str:
        """Check the code without consuming it (``/passwordless/verify``, auth0-wire §12.10):
        a right code stays usable (the sign-in comes with the link that carries it), a wrong
        one counts as on every other entry point. Returns the challenge id; the caller
        commits. Raises as ``sign_in`` does."""
        opened = await self._open(uow, tenant, attempt)
        try:
            challenge_id = await self._judge(
                uow,
                tenant,
                attempt.connection,
                opened.identifier,
                attempt.code,
                opened.now,
                consume=False,
            )
        except CodeRejected as exc:
            await self._failed(uow, tenant, attempt, opened.identifier, exc, opened.now)
            raise
        user = await uow.users.find(tenant.id, attempt.connection.id, opened.identifier)
        if user is not None and user.blocked:
            blocked = UserBlocked(user.user_id)
            await self._refuse_blocked(uow, tenant, attempt, opened, blocked)
            raise blocked
        await self.limits.verified(
            opened.reservation,
            tenant,
            attempt.connection,
            opened.identifier,
            signed_in=False,
            uow=uow,
        )
        return challenge_id

    async def _open(self, uow: UnitOfWork, tenant: Tenant, attempt: CodeAttempt) -> _Opened:
        """Reserve the IP's failure, read the identity and refuse it when its window is full
        (rules 1-2); a failure is committed with its audit events."""
        reservation = await self.limits.reserve_verification(
            tenant, attempt.limit_ip, attempt.audit, uow
        )
        now = self.clock.now()
        connection = attempt.connection
        identifier = (
            normalize_identifier(connection, attempt.username) if attempt.username else None
        )
        try:
            if identifier is None:
                raise CodeRejected(CodeFailure.WRONG, connection.channel)
            await self._check_window(uow, tenant, connection, identifier, now)
        except (CodeRejected, IdentityBlocked) as exc:
            await self._failed(uow, tenant, attempt, identifier, exc, now)
            raise
        return _Opened(identifier, reservation, now)

    async def _consume(
        self, uow: UnitOfWork, tenant: Tenant, attempt: CodeAttempt, opened: _Opened
    ) -> LoginResult | CodeRejected:
        """Judge and consume the code and complete the login (rules 3, 5, 6). A rejected code
        is returned, not raised, so that the savepoint around this keeps its counted guess;
        ``UserBlocked`` is raised, so that the savepoint undoes the consumption."""
        try:
            challenge_id = await self._judge(
                uow,
                tenant,
                attempt.connection,
                opened.identifier,
                attempt.code,
                opened.now,
                consume=True,
            )
            decided = _Decided(opened.identifier, challenge_id, opened.reservation, opened.now)
            return await self._complete(uow, tenant, attempt, decided)
        except CodeRejected as exc:
            return exc

    async def _refuse_blocked(
        self,
        uow: UnitOfWork,
        tenant: Tenant,
        attempt: CodeAttempt,
        opened: _Opened,
        exc: UserBlocked,
    ) -> None:
        """A blocked user's right code: give the IP's failure back, audit, commit."""
        await self.limits.verified(
            opened.reservation,
            tenant,
            attempt.connection,
            opened.identifier,
            signed_in=False,
            uow=uow,
        )
        event = attempt.audit.but(USER_BLOCKED_EVENT, USER_BLOCKED_TEXT, user_id=exc.user_id)
        await uow.audit.add(event, opened.now)
        await uow.commit()

    async def _check_window(
        self,
        uow: UnitOfWork,
        tenant: Tenant,
        connection: Connection,
        identifier: str,
        now: datetime,
    ) -> None:
        limit = tenant.rate_limits.failures_per_identity_per_15min
        if not limit:
            return
        failures, started = await uow.failures.current(
            tenant.id, connection.id, identifier, FAILURE_WINDOW, now
        )
        if failures >= limit and started is not None:
            retry_after = int((started + FAILURE_WINDOW - now).total_seconds()) + 1
            raise IdentityBlocked(max(retry_after, 1))

    async def _judge(
        self,
        uow: UnitOfWork,
        tenant: Tenant,
        connection: Connection,
        identifier: str,
        code: str,
        now: datetime,
        *,
        consume: bool,
    ) -> str:
        """The challenge id when ``code`` is the identity's open latest code; else raises
        ``CodeRejected``. A phantom challenge (signup disabled, no account) never matches, so
        an identity without an account costs the same statements as one with."""
        challenge = await uow.challenges.latest(tenant.id, connection.id, identifier)
        if challenge is None:
            raise CodeRejected(CodeFailure.WRONG, connection.channel)
        guess = self.keyring.code_mac_with(challenge.key_id, challenge.id, code) or ""
        decide = uow.challenges.attempt if consume else uow.challenges.check
        outcome = await decide(tenant.id, challenge.id, guess, now)
        if outcome:
            return challenge.id
        reason = CodeFailure.WRONG
        if outcome is None:  # not open for guesses: say why, when it is the code's own state
            state = await uow.challenges.get(tenant.id, challenge.id)
            if state is not None and state.consumed_at is None and state.voided_at is None:
                if state.attempts >= MAX_ATTEMPTS:
                    reason = CodeFailure.EXHAUSTED
                elif state.expires_at <= now:
                    reason = CodeFailure.EXPIRED
        raise CodeRejected(reason, connection.channel)

    async def _complete(
        self, uow: UnitOfWork, tenant: Tenant, attempt: CodeAttempt, decided: _Decided
    ) -> LoginResult:
        """After a consumed code: count the login (creating the user at the first one, unless
        the connection disables signup), void the identity's other codes, reset its window.
        A test identity's use is audited (``test_identity``)."""
        connection, identifier, now = attempt.connection, decided.identifier, decided.now
        user, created = await self._count(uow, tenant, connection, identifier, attempt, now)
        await uow.challenges.void_pending(tenant.id, connection.id, identifier, now)
        await uow.failures.reset(tenant.id, connection.id, identifier)
        test = tenant.test_identity(connection.name, identifier, now) is not None
        if test:
            event = attempt.audit.but(TEST_IDENTITY_EVENT, TEST_IDENTITY_TEXT, user_id=user.user_id)
            await uow.audit.add(
                replace(event, details={**event.details, "test_identity": True}), now
            )
        return LoginResult(
            user=user,
            created=created,
            challenge_id=decided.challenge_id,
            at=now,
            test_identity=test,
        )

    async def _count(
        self,
        uow: UnitOfWork,
        tenant: Tenant,
        connection: Connection,
        identifier: str,
        attempt: CodeAttempt,
        now: datetime,
    ) -> tuple[User, bool]:
        """Count the login: ``(user, created)``. A connection that disables signup signs in
        existing users only; anyone else fails like a wrong code (signup was disabled after
        the code was sent: a phantom code would not have matched). A blocked user raises
        ``UserBlocked``, its row untouched."""
        user, created = await self._counted(uow, tenant, connection, identifier, attempt, now)
        # A user created over the Management API is unverified until a code reaches them.
        verified = "email_verified" if connection.channel is Channel.EMAIL else "phone_verified"
        if user.profile.get(verified) is False:
            user = replace(user, profile={**user.profile, verified: True})
            await uow.users.replace(user)
        return user, created

    async def _counted(
        self,
        uow: UnitOfWork,
        tenant: Tenant,
        connection: Connection,
        identifier: str,
        attempt: CodeAttempt,
        now: datetime,
    ) -> tuple[User, bool]:
        if not connection.disable_signup:
            counted = await uow.users.record_login(
                tenant.id,
                connection.id,
                identifier,
                new_user_id=new_user_id(connection.channel),
                profile=initial_profile(connection.channel, identifier),
                ip=attempt.user_ip,
                now=now,
            )
            if counted is None:
                known = await uow.users.find(tenant.id, connection.id, identifier)
                raise UserBlocked(known.user_id if known is not None else None)
            return counted
        user = await uow.users.count_login(
            tenant.id, connection.id, identifier, ip=attempt.user_ip, now=now
        )
        if user is None:
            known = await uow.users.find(tenant.id, connection.id, identifier)
            if known is not None:  # a user that was not counted: blocked
                raise UserBlocked(known.user_id)
            raise CodeRejected(CodeFailure.WRONG, connection.channel)
        return user, False

    async def _failed(
        self,
        uow: UnitOfWork,
        tenant: Tenant,
        attempt: CodeAttempt,
        identifier: str | None,
        exc: CodeRejected | IdentityBlocked,
        now: datetime,
    ) -> None:
        """Count a rejected code against the identity, audit, and commit."""
        if isinstance(exc, CodeRejected):
            limit = tenant.rate_limits.failures_per_identity_per_15min
            if identifier is not None and limit:
                failures = await uow.failures.record_failure(
                    tenant.id, attempt.connection.id, identifier, FAILURE_WINDOW, now
                )
                if failures == limit:  # this failure filled the window: the identity is blocked
                    await uow.audit.add(attempt.audit.but("limit_wc", LOCKED_OUT), now)
            types, text = attempt.failures.rejected, f"{exc.reason.value} verification code"
        else:
            types, text = attempt.failures.blocked, str(exc)
        for type_ in types:
            await uow.audit.add(attempt.audit.but(type_, text), now)
        await uow.commit()
