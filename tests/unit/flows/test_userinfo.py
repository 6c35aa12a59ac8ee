"""``userinfo`` on the in-memory store: the claims an access token's scopes allow, and the
refusals of a token that is malformed, expired, of another issuer, or whose user is gone."""

from __future__ import annotations

import pytest

from nopass.core.errors import InvalidAccessToken
from nopass.core.models import Resolved
from nopass.flows.userinfo import userinfo
from tests.support.flows import World


async def access_token(flows: World, scope: str = "openid email") -> str:
    result = await flows.start()
    token = (await flows.otp(flows.code_of(result.id), scope=scope)).access_token
    assert token is not None
    return token


async def test_the_claims_follow_the_tokens_scopes(flows: World) -> None:
    token = await access_token(flows)
    [user] = flows.users()
    claims = await userinfo(token, flows.resolved, flows.userinfo_deps)
    assert claims["sub"] == user.user_id and claims["email"] == "ann@example.com"
    only_openid = await userinfo(
        await access_token(flows, "openid"), flows.resolved, flows.userinfo_deps
    )
    assert only_openid == {"sub": user.user_id}


async def test_an_expired_token_is_refused(flows: World) -> None:
    token = await access_token(flows)
    flows.clock.advance(86400 + 120)
    with pytest.raises(InvalidAccessToken):
        await userinfo(token, flows.resolved, flows.userinfo_deps)


@pytest.mark.parametrize("token", ["not-a-jwt", "e30.e30.e30", ""])
async def test_a_malformed_token_is_refused(flows: World, token: str) -> None:
    with pytest.raises(InvalidAccessToken):
        await userinfo(token, flows.resolved, flows.userinfo_deps)


async def test_a_token_of_another_issuer_is_refused(flows: World) -> None:
    token = await access_token(flows)
    other = Resolved(config=flows.config, origin="https://other.acme.example")
    with pytest.raises(InvalidAccessToken):
        await userinfo(token, other, flows.userinfo_deps)


async def test_an_id_token_is_no_access_token(flows: World) -> None:
    result = await flows.start()
    id_token = (await flows.otp(flows.code_of(result.id))).id_token
    assert id_token is not None
    with pytest.raises(InvalidAccessToken):
        await userinfo(id_token, flows.resolved, flows.userinfo_deps)


async def test_a_token_whose_user_is_gone_is_refused(flows: World) -> None:
    token = await access_token(flows)
    flows.store.tables.users.clear()
    with pytest.raises(InvalidAccessToken, match="no longer exists"):
        await userinfo(token, flows.resolved, flows.userinfo_deps)
