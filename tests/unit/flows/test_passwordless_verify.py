"""``verify_passwordless`` on the in-memory store, from bodies ``api.commands.verify_command``
parses: a right code is confirmed and stays usable, a wrong one counts, and the client, its
credentials and the connection are checked first."""

from __future__ import annotations

from typing import Any

import pytest

from nopass.core.errors import (
    ClientAuthenticationFailed,
    CodeFailure,
    CodeRejected,
    ConnectionIssue,
    ConnectionProblem,
    IdentityBlocked,
    MissingProperty,
    UnknownClient,
)
from tests.support.flows import EMAIL, SMS, WEB, WEB_SECRET, World, tenant_config


async def started(flows: World, connection: str = EMAIL) -> tuple[str, str]:
    result = await flows.start(connection)
    return result.id, flows.code_of(result.id)


async def test_a_right_code_is_confirmed_and_stays_usable(flows: World) -> None:
    challenge_id, code = await started(flows)
    await flows.verify(verification_code=code)
    stored = flows.challenge(challenge_id)
    assert (stored.consumed_at, stored.attempts) == (None, 0)
    assert flows.users() == [] and flows.event_types() == ["cls"]  # no login yet
    await flows.otp(code)  # the sign-in that follows still has it
    assert flows.users()


async def test_the_references_body_and_an_sms_code_are_confirmed(flows: World) -> None:
    challenge_id, code = await started(flows, SMS)
    await flows.verify(
        connection=SMS,
        email=None,
        verification_code=None,
        grant_type="password",
        username="+15551234567",
        password=code,
    )
    assert flows.challenge(challenge_id).consumed_at is None


async def test_a_wrong_code_counts_against_the_code_and_the_identity(flows: World) -> None:
    challenge_id, code = await started(flows)
    with pytest.raises(CodeRejected) as refused:
        await flows.verify(verification_code=f"{(int(code) + 1) % 1_000_000:06d}")
    assert refused.value.reason is CodeFailure.WRONG
    assert flows.challenge(challenge_id).attempts == 1 and flows.failure_count() == 1
    assert flows.event_types()[-1] == "fp"


async def test_a_blocked_identity_is_refused_and_audited(flows: World) -> None:
    flows.config = tenant_config({"failures_per_identity_per_15min": 1})
    with pytest.raises(CodeRejected):
        await flows.verify()
    _, code = await started(flows)
    with pytest.raises(IdentityBlocked):
        await flows.verify(verification_code=code)
    assert flows.event_types()[-1] == "f"


async def test_a_confidential_client_must_authenticate(flows: World) -> None:
    challenge_id, code = await started(flows)
    with pytest.raises(ClientAuthenticationFailed):
        await flows.verify(client_id=WEB, verification_code=code)
    with pytest.raises(ClientAuthenticationFailed):
        await flows.verify(client_id=WEB, client_secret="wrong", verification_code=code)
    assert flows.challenge(challenge_id).attempts == 0 and flows.failure_count() == 0
    await flows.verify(client_id=WEB, client_secret=WEB_SECRET, verification_code=code)
    await flows.verify(basic=(WEB, WEB_SECRET), client_id=None, verification_code=code)


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ({"client_id": "nobody"}, UnknownClient),
        ({"verification_code": None}, MissingProperty),
        ({"email": None}, MissingProperty),
        ({"connection": None}, MissingProperty),
        ({"connection": "nowhere"}, ConnectionProblem),
    ],
)
async def test_bad_requests_are_refused_and_change_nothing(
    flows: World, body: dict[str, Any], error: type[Exception]
) -> None:
    challenge_id, code = await started(flows)
    with pytest.raises(error):
        await flows.verify(**{"verification_code": code, **body})
    assert flows.challenge(challenge_id).attempts == 0 and flows.failure_count() == 0
    assert flows.event_types() == ["cls"]


async def test_a_connection_not_enabled_for_the_client_is_refused(flows: World) -> None:
    flows.set_enabled(EMAIL, frozenset({WEB}))
    with pytest.raises(ConnectionProblem) as refused:
        await flows.verify()
    assert refused.value.issue is ConnectionIssue.DISABLED
    assert flows.failure_count() == 0
