"""``CodeCheck`` on the in-memory store: each rule of ``flows.code_check``'s docstring, the
audit events of each entry point, and what a check leaves committed."""

from __future__ import annotations

import pytest

from nopass.core.errors import CodeFailure, CodeRejected, IdentityBlocked, RateLimited
from nopass.flows.code_check import (
    BROWSER_FAILURES,
    CROSS_ORIGIN_FAILURES,
    FAILURE_WINDOW,
    OTP_GRANT_FAILURES,
    VERIFY_FAILURES,
    CodeAttempt,
    FailureEvents,
    LoginResult,
)
from tests.support.flows import EMAIL, MEMBERS, SMS, TEST_CODE, TEST_EMAIL, World, tenant_config

PHONE = "+15551234567"


def wrong(code: str) -> str:
    return f"{(int(code) + 1) % 1_000_000:06d}"


async def sent_code(flows: World, connection: str = EMAIL, **body: object) -> tuple[str, str]:
    """``(challenge id, code)`` of a start."""
    result = await flows.start(connection, **body)
    return result.id, flows.code_of(result.id)


async def sign_in(flows: World, attempt: CodeAttempt) -> LoginResult:
    """``sign_in`` in a unit of work the caller commits, as every entry point does."""
    async with flows.store() as uow:
        login = await flows.codes.sign_in(uow, flows.config.tenant, attempt)
        await uow.commit()
    return login


async def rejected(flows: World, attempt: CodeAttempt) -> CodeFailure:
    with pytest.raises(CodeRejected) as refused:
        await sign_in(flows, attempt)
    return refused.value.reason


async def test_a_right_code_signs_up_voids_the_rest_and_resets_the_window(flows: World) -> None:
    challenge_id, code = await sent_code(flows)
    assert await rejected(flows, flows.attempt(wrong(code))) is CodeFailure.WRONG
    assert flows.failure_count() == 1
    login = await sign_in(flows, flows.attempt(code))
    [user] = flows.users()
    assert (login.user, login.created, login.challenge_id) == (user, True, challenge_id)
    assert not login.test_identity and user.last_ip == "203.0.113.7"
    assert flows.challenge(challenge_id).consumed_at == login.at
    assert flows.failure_count() == 0


async def test_the_ip_failure_budget_is_reserved_and_refunded_on_success(flows: World) -> None:
    flows.config = tenant_config({"failures_per_ip_per_hour": 2})
    _, code = await sent_code(flows)
    await rejected(flows, flows.attempt(wrong(code)))
    assert flows.counter("failures_per_ip_per_hour") == 1
    await sign_in(flows, flows.attempt(code))
    assert flows.counter("failures_per_ip_per_hour") == 1  # the right code gave its hit back
    await rejected(flows, flows.attempt("000000"))
    assert flows.counter("failures_per_ip_per_hour") == 2
    with pytest.raises(RateLimited) as refused:  # the budget of 2 is spent
        await sign_in(flows, flows.attempt("000000"))
    assert refused.value.name == "failures_per_ip_per_hour"
    assert flows.event_types()[-1] == "api_limit"
    assert flows.failure_count() == 1  # refused before the code was looked at


async def test_a_full_identity_window_blocks_with_retry_after(flows: World) -> None:
    flows.config = tenant_config({"failures_per_identity_per_15min": 2})
    for _ in range(2):
        await rejected(flows, flows.attempt("000000"))
    challenge_id, code = await sent_code(flows)
    flows.clock.advance(60)
    with pytest.raises(IdentityBlocked) as blocked:
        await sign_in(flows, flows.attempt(code))
    window = int(FAILURE_WINDOW.total_seconds())
    assert window - 60 - 1 <= blocked.value.retry_after <= window - 60 + 1
    assert flows.challenge(challenge_id).attempts == 0  # the code was not looked at
    assert flows.failure_count() == 2 and flows.users() == []
    assert flows.event_types()[-1] == "fepotpft"
    assert flows.event_types().count("limit_wc") == 1  # written by the failure that filled it


async def test_only_the_latest_code_counts(flows: World) -> None:
    first_id, first = await sent_code(flows)
    second_id, second = await sent_code(flows)
    assert await rejected(flows, flows.attempt(first)) is CodeFailure.WRONG
    assert flows.challenge(first_id).consumed_at is None
    assert flows.challenge(second_id).attempts == 1  # the guess went to the latest code
    assert (await sign_in(flows, flows.attempt(second))).challenge_id == second_id


async def test_three_failed_guesses_exhaust_the_code(flows: World) -> None:
    challenge_id, code = await sent_code(flows)
    for _ in range(3):
        assert await rejected(flows, flows.attempt(wrong(code))) is CodeFailure.WRONG
    assert await rejected(flows, flows.attempt(code)) is CodeFailure.EXHAUSTED
    assert flows.challenge(challenge_id).attempts == 3 and flows.users() == []
    assert flows.failure_count() == 4


async def test_an_expired_code_is_refused_as_expired(flows: World) -> None:
    challenge_id, code = await sent_code(flows)
    flows.clock.advance(180)
    assert await rejected(flows, flows.attempt(code)) is CodeFailure.EXPIRED
    assert flows.challenge(challenge_id).consumed_at is None and flows.users() == []


async def test_a_code_works_once(flows: World) -> None:
    _, code = await sent_code(flows)
    await sign_in(flows, flows.attempt(code))
    assert await rejected(flows, flows.attempt(code)) is CodeFailure.WRONG
    [user] = flows.users()
    assert user.logins_count == 1


async def test_a_phantom_never_matches_even_its_own_code(flows: World) -> None:
    result = await flows.start(MEMBERS)
    assert flows.challenge(result.id).phantom
    flows.plant_code(result.id, "123456")
    attempt = flows.attempt("123456", connection=MEMBERS)
    assert await rejected(flows, attempt) is CodeFailure.WRONG
    assert flows.challenge(result.id).consumed_at is None and flows.users() == []
    assert flows.failure_count(MEMBERS) == 1


async def test_a_username_that_cannot_be_an_identity_fails_as_wrong(flows: World) -> None:
    assert await rejected(flows, flows.attempt("123456", username="not-an-email")) is (
        CodeFailure.WRONG
    )
    assert await rejected(flows, flows.attempt("123456", username=None)) is CodeFailure.WRONG
    assert flows.store.tables.failures == {}  # no identity to count against
    assert flows.event_types() == ["fp", "fepotpft"] * 2


async def test_signup_disabled_after_the_code_was_sent_fails_like_a_wrong_code(
    flows: World,
) -> None:
    challenge_id, code = await sent_code(flows)
    assert not flows.challenge(challenge_id).phantom
    flows.set_options(EMAIL, disable_signup=True)
    assert await rejected(flows, flows.attempt(code)) is CodeFailure.WRONG
    assert flows.users() == [] and flows.failure_count() == 1
    assert flows.event_types()[-2:] == ["fp", "fepotpft"]


async def test_signup_disabled_still_signs_in_an_existing_user(flows: World) -> None:
    user = await flows.sign_up()
    _, code = await sent_code(flows)
    flows.set_options(EMAIL, disable_signup=True)
    login = await sign_in(flows, flows.attempt(code))
    assert (login.user.user_id, login.created, login.user.logins_count) == (
        user.user_id,
        False,
        2,
    )


async def test_a_test_identitys_sign_in_is_audited(flows: World) -> None:
    await flows.start(email=TEST_EMAIL)
    login = await sign_in(flows, flows.attempt(TEST_CODE, username=TEST_EMAIL))
    assert login.test_identity
    event = flows.events()[-1]
    assert (event.type, event.user_id, event.details["test_identity"]) == (
        "test_identity",
        login.user.user_id,
        True,
    )


@pytest.mark.parametrize(
    "failures", [OTP_GRANT_FAILURES, VERIFY_FAILURES, CROSS_ORIGIN_FAILURES, BROWSER_FAILURES]
)
async def test_each_entry_point_writes_its_failure_events(
    flows: World, failures: FailureEvents
) -> None:
    flows.config = tenant_config({"failures_per_identity_per_15min": 1})
    attempt = flows.attempt("000000", failures=failures)
    await rejected(flows, attempt)
    # the one failure the window allows filled it: the identity is blocked (limit_wc), once
    assert flows.event_types() == ["limit_wc", *failures.rejected]
    [blocked, event] = flows.events()[:2]
    assert event.description == "wrong verification code" and event.user_name == "ann@example.com"
    assert blocked.user_name == "ann@example.com" and blocked.connection == "email"
    with pytest.raises(IdentityBlocked):
        await sign_in(flows, attempt)
    assert flows.event_types()[len(failures.rejected) + 1 :] == list(failures.blocked)


async def test_a_failure_stays_committed_when_the_callers_transaction_fails(
    flows: World,
) -> None:
    challenge_id, code = await sent_code(flows)
    with pytest.raises(CodeRejected):
        async with flows.store() as uow:  # never commits: the error leaves it
            await flows.codes.sign_in(uow, flows.config.tenant, flows.attempt(wrong(code)))
    assert flows.challenge(challenge_id).attempts == 1
    assert flows.failure_count() == 1
    assert flows.event_types()[-2:] == ["fp", "fepotpft"]


async def test_confirm_checks_without_consuming(flows: World) -> None:
    challenge_id, code = await sent_code(flows)
    async with flows.store() as uow:
        confirmed = await flows.codes.confirm(uow, flows.config.tenant, flows.attempt(code))
        await uow.commit()
    assert confirmed == challenge_id
    stored = flows.challenge(challenge_id)
    assert (stored.consumed_at, stored.attempts) == (None, 0) and flows.users() == []
    with pytest.raises(CodeRejected):
        async with flows.store() as uow:
            await flows.codes.confirm(uow, flows.config.tenant, flows.attempt(wrong(code)))
    assert flows.challenge(challenge_id).attempts == 1  # a wrong one counts
    await sign_in(flows, flows.attempt(code))  # and the right one still signs in
    assert flows.users()


async def test_the_sms_verified_counter_moves_only_on_a_consumed_sms_code(flows: World) -> None:
    _, code = await sent_code(flows, SMS)
    attempt = flows.attempt(code, username=PHONE, connection=SMS)
    async with flows.store() as uow:
        await flows.codes.confirm(uow, flows.config.tenant, attempt)
        await uow.commit()
    assert flows.counter("sms_verified") == 0  # confirmed, not consumed
    await rejected(flows, flows.attempt(wrong(code), username=PHONE, connection=SMS))
    assert flows.counter("sms_verified") == 0
    await sign_in(flows, attempt)
    assert flows.counter("sms_verified") == 1
    _, email_code = await sent_code(flows)
    await sign_in(flows, flows.attempt(email_code))
    assert flows.counter("sms_verified") == 1  # email codes are not counted
