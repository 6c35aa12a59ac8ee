"""``exchange`` on the in-memory store: the passwordless OTP grant (right, wrong, expired and
exhausted codes; the per-identity failure window) and refresh-token rotation with reuse
detection."""

from __future__ import annotations

import jwt
import pytest

from nopass.core.errors import (
    CodeFailure,
    CodeRejected,
    IdentityBlocked,
    InvalidRefreshToken,
    InvalidScope,
)
from nopass.core.models import SigningKey
from nopass.flows.code_check import FAILURE_WINDOW
from tests.support.flows import ISSUER, NATIVE, SMS, TEST_CODE, TEST_EMAIL, World

OFFLINE = {"scope": "openid offline_access"}


async def started_code(flows: World, connection: str = "email", **body: object) -> str:
    result = await flows.start(connection, **body)
    return flows.code_of(result.id)


async def rejected(flows: World, otp: str) -> CodeFailure:
    with pytest.raises(CodeRejected) as refused:
        await flows.otp(otp)
    return refused.value.reason


def wrong(code: str) -> str:
    return f"{(int(code) + 1) % 1_000_000:06d}"


async def test_the_right_code_signs_the_user_up_once(flows: World, signing_key: SigningKey) -> None:
    code = await started_code(flows)
    tokens = await flows.otp(code)
    claims = jwt.decode(
        tokens.id_token or "",
        signing_key.private.public_key(),
        algorithms=["RS256"],
        audience=NATIVE,
        issuer=ISSUER,
        options={"verify_exp": False, "verify_iat": False},
    )
    [user] = flows.store.tables.users.values()
    assert claims["sub"] == user.user_id and user.identifier == "ann@example.com"
    assert tokens.access_token and tokens.refresh_token is None  # no offline_access asked
    assert user.logins_count == 1 and user.last_ip == "203.0.113.7"
    assert flows.event_types()[-2:] == ["ss", "s"]
    # The code worked once; a second sign-in needs a new one and counts the login.
    assert await rejected(flows, code) is CodeFailure.WRONG
    await flows.otp(await started_code(flows))
    [again] = flows.store.tables.users.values()
    assert (again.user_id, again.logins_count) == (user.user_id, 2)
    assert flows.event_types()[-1] == "s"


async def test_the_username_is_normalised_like_the_start_normalised_it(flows: World) -> None:
    code = await started_code(flows, email="Ann@Example.COM")
    await flows.otp(code, username="ANN@example.com")
    [user] = flows.store.tables.users.values()
    assert user.identifier == "ann@example.com"


async def test_an_sms_code_signs_in_by_phone_number(flows: World) -> None:
    code = await started_code(flows, SMS)
    await flows.otp(code, username="+15551234567", realm=SMS)
    [user] = flows.store.tables.users.values()
    assert user.user_id.startswith("sms|") and user.profile["phone_number"] == "+15551234567"


async def test_a_wrong_code_is_counted_and_the_right_one_still_works(flows: World) -> None:
    result = await flows.start()
    code = flows.code_of(result.id)
    assert await rejected(flows, wrong(code)) is CodeFailure.WRONG
    assert flows.challenge(result.id).attempts == 1
    assert [f.failures for f in flows.store.tables.failures.values()] == [1]
    assert flows.event_types()[-2:] == ["fp", "fepotpft"]
    await flows.otp(code)
    assert flows.store.tables.users
    assert flows.store.tables.failures == {}  # a sign-in resets the identity's window


async def test_an_expired_code_is_refused_as_expired(flows: World) -> None:
    code = await started_code(flows)
    flows.clock.advance(180)
    assert await rejected(flows, code) is CodeFailure.EXPIRED
    assert flows.store.tables.users == {}


async def test_three_wrong_guesses_kill_the_code(flows: World) -> None:
    code = await started_code(flows)
    for _ in range(3):
        assert await rejected(flows, wrong(code)) is CodeFailure.WRONG
    assert await rejected(flows, code) is CodeFailure.EXHAUSTED
    assert flows.store.tables.users == {}


async def test_ten_failures_block_the_identity_until_the_window_passes(flows: World) -> None:
    for _ in range(10):  # no code was even sent: every guess counts
        assert await rejected(flows, "000000") is CodeFailure.WRONG
    code = await started_code(flows)
    with pytest.raises(IdentityBlocked) as blocked:
        await flows.otp(code)
    assert 0 < blocked.value.retry_after <= FAILURE_WINDOW.total_seconds() + 1
    assert flows.challenge(next(iter(flows.store.tables.challenges))).attempts == 0
    assert flows.store.tables.users == {}
    flows.clock.advance(blocked.value.retry_after)
    await flows.otp(await started_code(flows))
    assert flows.store.tables.users


async def test_a_test_identitys_fixed_code_signs_in(flows: World) -> None:
    await flows.start(email=TEST_EMAIL)
    await flows.otp(TEST_CODE, username=TEST_EMAIL)
    [user] = flows.store.tables.users.values()
    assert user.identifier == TEST_EMAIL and "test_identity" in flows.event_types()


async def test_a_refresh_token_rotates_and_a_reused_one_revokes_its_family(flows: World) -> None:
    first = (await flows.otp(await started_code(flows), **OFFLINE)).refresh_token
    assert first is not None
    flows.clock.advance(60)
    rotated = await flows.refresh(first)
    second = rotated.refresh_token
    assert second is not None and second != first and rotated.id_token
    assert (await flows.refresh(second)).refresh_token  # the newest token goes on rotating
    with pytest.raises(InvalidRefreshToken, match="reused rotated refresh token"):
        await flows.refresh(first)
    grants = [r.grant for r in flows.store.tables.refresh_tokens.values()]
    assert len(grants) == 3 and len({g.family_id for g in grants}) == 1
    assert all(g.revoked_at is not None for g in grants)
    with pytest.raises(InvalidRefreshToken, match="revoked refresh token"):
        await flows.refresh(second)
    assert "ferrt" in flows.event_types()


async def test_an_unknown_refresh_token_is_refused(flows: World) -> None:
    with pytest.raises(InvalidRefreshToken, match="unknown refresh token"):
        await flows.refresh("v1.not-a-token")
    assert flows.event_types() == ["fertft"]


async def test_a_refused_wider_scope_leaves_the_refresh_token_usable(flows: World) -> None:
    """Bad input changes nothing: asking a refresh for more than was granted is refused
    (audited ``fertft``), and the same token then still refreshes, here to a narrower scope."""
    token = (await flows.otp(await started_code(flows), **OFFLINE)).refresh_token
    assert token is not None
    with pytest.raises(InvalidScope):
        await flows.refresh(token, scope="openid offline_access email")
    assert flows.event_types()[-1] == "fertft"
    narrowed = await flows.refresh(token, scope="openid")
    assert narrowed.scope == "openid"


async def test_a_down_scoped_refresh_keeps_the_refresh_tokens_scope(flows: World) -> None:
    granted = "openid email offline_access"
    token = (await flows.otp(await started_code(flows), scope=granted)).refresh_token
    assert token is not None
    narrowed = await flows.refresh(token, scope="openid")
    assert narrowed.scope == "openid" and narrowed.refresh_token is not None
    again = await flows.refresh(narrowed.refresh_token)
    assert again.scope == granted
