"""Checking a one-time code and completing a login (security.md §6, auth0-wire.md §3.3).

Shared by every way a code comes back (the OTP grant now; magic links and cross-origin
authentication later), so one guess budget per identity holds across all of them:

* only the identity's latest code counts; 3 failed guesses kill it; it works once;
* each guess is counted and decided in one atomic statement (``ChallengeRepo.attempt``);
* a per-identity window (default 10 failures per 15 minutes) answers 429 until it passes;
* a success voids the identity's other pending codes, resets its window, and creates the
  user on first login (unless the connection disables signup: then it fails like a wrong code).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from nopass.core.errors import CodeFailure, CodeRejected, IdentityBlocked
from nopass.core.identity import is_phone_number, normalize_email
from nopass.core.keyring import Keyring
from nopass.core.models import AuditEvent, Connection, Tenant, User
from nopass.core.ports import UnitOfWork
from nopass.core.profile import initial_profile, new_user_id

FAILURE_WINDOW = timedelta(minutes=15)
DEFAULT_FAILURES_PER_WINDOW = 10
TEST_IDENTITY_EVENT = "test_identity"
TEST_IDENTITY_TEXT = "Signed in with a test identity's fixed code"


@dataclass(frozen=True, slots=True)
class LoginResult:
    user: User
    created: bool
    challenge_id: str
    test_identity: bool = False  # signed in with a test identity's fixed code


def normalize_identifier(connection: Connection, username: str) -> str | None:
    """The canonical identity for a typed username, or None when it cannot be one."""
    if connection.strategy == "email":
        return normalize_email(username)
    return username if is_phone_number(username) else None


def failure_limit(tenant: Tenant) -> int:
    value = tenant.rate_limits.get("failures_per_identity_per_15min")
    return DEFAULT_FAILURES_PER_WINDOW if value is None else int(value)


async def check_identity_window(
    uow: UnitOfWork, tenant: Tenant, connection: Connection, identifier: str, now: datetime
) -> None:
    limit = failure_limit(tenant)
    if not limit:
        return
    failures, started = await uow.failures.current(
        tenant.id, connection.id, identifier, FAILURE_WINDOW, now
    )
    if failures >= limit and started is not None:
        retry_after = int((started + FAILURE_WINDOW - now).total_seconds()) + 1
        raise IdentityBlocked(max(retry_after, 1))


async def verify_code(
    uow: UnitOfWork,
    keyring: Keyring,
    tenant: Tenant,
    connection: Connection,
    identifier: str,
    code: str,
    now: datetime,
) -> str:
    """Consume the identity's latest code if ``code`` is it; returns the challenge id.

    Raises ``CodeRejected``; the caller must commit even then, so the guess stays counted.
    """
    return await _judge(uow, keyring, tenant, connection, identifier, code, now, consume=True)


async def check_code(
    uow: UnitOfWork,
    keyring: Keyring,
    tenant: Tenant,
    connection: Connection,
    identifier: str,
    code: str,
    now: datetime,
) -> str:
    """Like ``verify_code`` but without consuming (``/passwordless/verify``, §12.10): a right
    code stays usable, a wrong one counts toward the code's 3 attempts and the identity's
    window. Returns the challenge id; raises ``CodeRejected`` (commit even then)."""
    return await _judge(uow, keyring, tenant, connection, identifier, code, now, consume=False)


async def _judge(
    uow: UnitOfWork,
    keyring: Keyring,
    tenant: Tenant,
    connection: Connection,
    identifier: str,
    code: str,
    now: datetime,
    *,
    consume: bool,
) -> str:
    challenge = await uow.challenges.latest(tenant.id, connection.id, identifier)
    outcome: bool | None = None
    if challenge is not None:
        guess = keyring.code_mac_with(challenge.key_id, challenge.id, code) or ""
        if connection.disable_signup and not await uow.users.exists(
            tenant.id, connection.id, identifier
        ):
            guess = ""  # counts as a guess, can never match: fails like a wrong code
        decide = uow.challenges.attempt if consume else uow.challenges.check
        outcome = await decide(tenant.id, challenge.id, guess, now)
        if outcome:
            return challenge.id
    reason = CodeFailure.WRONG
    if outcome is None and challenge is not None:
        state = await uow.challenges.get(tenant.id, challenge.id)
        if state is not None and state.consumed_at is None and state.voided_at is None:
            if state.attempts >= 3:
                reason = CodeFailure.EXHAUSTED
            elif state.expires_at <= now:
                reason = CodeFailure.EXPIRED
    if failure_limit(tenant):
        await uow.failures.record_failure(tenant.id, connection.id, identifier, FAILURE_WINDOW, now)
    raise CodeRejected(reason, connection.strategy)


async def complete_login(
    uow: UnitOfWork,
    tenant: Tenant,
    connection: Connection,
    identifier: str,
    challenge_id: str,
    *,
    ip: str | None,
    now: datetime,
    audit: AuditEvent,
) -> LoginResult:
    """After a consumed code: void the identity's other codes, reset its failure window,
    create the user at first login, count the login. A test identity's use is audited
    (``test_identity``, besides the caller's own events)."""
    await uow.challenges.void_pending(tenant.id, connection.id, identifier, now)
    await uow.failures.reset(tenant.id, connection.id, identifier)
    user, created = await uow.users.record_login(
        tenant.id,
        connection.id,
        identifier,
        new_user_id=new_user_id(connection.strategy),
        profile=initial_profile(connection.strategy, identifier),
        ip=ip,
        now=now,
    )
    test = tenant.test_identity(connection.name, identifier, now) is not None
    if test:
        event = audit.but(TEST_IDENTITY_EVENT, TEST_IDENTITY_TEXT, user_id=user.user_id)
        await uow.audit.add(replace(event, details={**event.details, "test_identity": True}), now)
    return LoginResult(user=user, created=created, challenge_id=challenge_id, test_identity=test)
