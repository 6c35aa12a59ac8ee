"""``revoke`` (``/oauth/revoke``, RFC 7009) on the in-memory store: a refresh token and its
whole rotation family are revoked; an unknown token or one of another client changes
nothing and is no error; the client must be known and prove itself."""

from __future__ import annotations

import pytest

from nopass.core.errors import (
    ClientAuthenticationFailed,
    InvalidRefreshToken,
    MissingProperty,
    UnknownClient,
)
from tests.support.flows import WEB, WEB_SECRET, World

OFFLINE = {"scope": "openid offline_access"}


async def refresh_token(flows: World) -> str:
    result = await flows.start()
    token = (await flows.otp(flows.code_of(result.id), **OFFLINE)).refresh_token
    assert token is not None
    return token


def revoked(flows: World) -> list[bool]:
    return [r.grant.revoked_at is not None for r in flows.store.tables.refresh_tokens.values()]


async def test_revoking_a_token_revokes_its_whole_family(flows: World) -> None:
    first = await refresh_token(flows)
    second = (await flows.refresh(first)).refresh_token
    assert second is not None
    await flows.revoke(second)
    assert revoked(flows) == [True, True]
    with pytest.raises(InvalidRefreshToken, match="revoked refresh token"):
        await flows.refresh(second)


async def test_revoking_an_old_token_of_the_family_revokes_the_newest(flows: World) -> None:
    first = await refresh_token(flows)
    second = (await flows.refresh(first)).refresh_token
    assert second is not None
    await flows.revoke(first)
    with pytest.raises(InvalidRefreshToken):
        await flows.refresh(second)


async def test_an_unknown_token_is_no_error_and_changes_nothing(flows: World) -> None:
    token = await refresh_token(flows)
    await flows.revoke("v1.not-a-token")
    assert revoked(flows) == [False]
    assert (await flows.refresh(token)).refresh_token


async def test_another_clients_token_is_left_alone(flows: World) -> None:
    token = await refresh_token(flows)
    await flows.revoke(token, client_id=WEB, client_secret=WEB_SECRET)
    assert revoked(flows) == [False]


@pytest.mark.parametrize(
    ("basic", "body", "error"),
    [
        (None, {"client_id": "nobody"}, UnknownClient),
        (None, {"client_id": None}, MissingProperty),
        (None, {"token": None}, MissingProperty),
        (None, {"client_id": WEB}, ClientAuthenticationFailed),
        ((WEB, "wrong"), {"client_id": None}, ClientAuthenticationFailed),
    ],
)
async def test_bad_requests_are_refused_and_revoke_nothing(
    flows: World,
    basic: tuple[str, str] | None,
    body: dict[str, object],
    error: type[Exception],
) -> None:
    token = await refresh_token(flows)
    with pytest.raises(error):
        values: dict[str, object] = {"token": token, **body}
        await flows.revoke(values.pop("token"), basic, **values)
    assert revoked(flows) == [False]
