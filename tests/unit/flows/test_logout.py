"""Logging out on the in-memory store: ``rp_logout`` (RP-Initiated Logout) names the client by
``id_token_hint`` and/or ``client_id``, redirects only to an allowed logout URL with
``state``, and closes the session (``slo``); a refused request changes nothing but its
``flo`` entry. ``legacy_target`` is ``/v2/logout``'s ``returnTo`` rule."""

from __future__ import annotations

from collections.abc import Mapping

import pytest

from nopass.core.errors import RedirectRejected
from nopass.core.models import AuditEvent, User
from nopass.flows.authorization_request import parse_authorize, respond
from nopass.flows.logout import LoggedOut, end_session, legacy_target, rp_logout
from tests.support.flows import (
    ISSUER,
    NATIVE,
    REQUEST,
    TENANT_ID,
    WEB,
    WEB_CALLBACK,
    WEB_LOGOUT,
    World,
    authorize,
)

AUDIT = AuditEvent(tenant_id=TENANT_ID, type="", ip=REQUEST.ip, user_agent=REQUEST.user_agent)


async def signed_in(flows: World) -> tuple[User, str]:
    user = await flows.sign_up()
    return user, await flows.open_session(user)


async def web_id_token(flows: World, user: User) -> str:
    request = parse_authorize(
        authorize(
            {
                "client_id": WEB,
                "redirect_uri": WEB_CALLBACK,
                "response_type": "id_token",
                "nonce": "n",
            }
        ),
        flows.config,
    )
    now = flows.clock.now()
    async with flows.store() as uow:
        response = await respond(
            uow, flows.keys, flows.config, ISSUER, request, user, auth_time=now, now=now
        )
    return response.params["id_token"]


async def logout(flows: World, params: Mapping[str, object], session: str | None) -> LoggedOut:
    return await rp_logout(flows.browser_deps, flows.resolved, params, session, AUDIT)


def session_open(flows: World) -> bool:
    [record] = flows.store.tables.sessions.values()
    return record.revoked_at is None


async def test_a_bare_logout_closes_the_session_and_shows_the_page(flows: World) -> None:
    user, session = await signed_in(flows)
    out = await logout(flows, {"ui_locales": "fr"}, session)
    assert out == LoggedOut(redirect_to=None, ui_locales="fr")
    assert not session_open(flows)
    [event] = flows.events()
    assert (event.type, event.user_id) == ("slo", user.user_id)
    await logout(flows, {}, session)  # a closed session is not audited again
    assert flows.event_types() == ["slo"]


async def test_an_allowed_logout_url_gets_the_state(flows: World) -> None:
    _, session = await signed_in(flows)
    params = {"client_id": WEB, "post_logout_redirect_uri": WEB_LOGOUT, "state": "a b"}
    out = await logout(flows, params, session)
    assert out.redirect_to == WEB_LOGOUT + "?state=a+b"
    assert flows.events()[-1].client_id == WEB and not session_open(flows)


async def test_an_id_token_hint_names_the_client_even_expired(flows: World) -> None:
    user, session = await signed_in(flows)
    hint = await web_id_token(flows, user)
    flows.clock.advance(86400 * 30)
    params = {"id_token_hint": hint, "post_logout_redirect_uri": WEB_LOGOUT}
    assert (await logout(flows, params, session)).redirect_to == WEB_LOGOUT
    assert not session_open(flows)


@pytest.mark.parametrize(
    ("params", "reason"),
    [
        ({"post_logout_redirect_uri": WEB_LOGOUT}, "logout_client_missing"),
        (
            {"client_id": WEB, "post_logout_redirect_uri": "https://evil.example/"},
            "logout_url_mismatch",
        ),
        (
            {"client_id": NATIVE, "post_logout_redirect_uri": WEB_LOGOUT},
            "logout_url_mismatch",
        ),
        ({"client_id": "nobody"}, "unknown_client"),
        ({"client_id": [WEB, WEB]}, "repeated_parameter"),
        ({"id_token_hint": "not-a-token"}, "invalid_id_token_hint"),
    ],
)
async def test_refused_requests_leave_the_session_and_are_audited(
    flows: World, params: dict[str, object], reason: str
) -> None:
    _, session = await signed_in(flows)
    with pytest.raises(RedirectRejected) as refused:
        await logout(flows, params, session)
    assert refused.value.reason == reason
    assert session_open(flows)
    [event] = flows.events()
    assert (event.type, event.description) == ("flo", f"Failed Logout: {reason}")


async def test_a_hint_of_another_client_than_client_id_is_refused(flows: World) -> None:
    user, session = await signed_in(flows)
    hint = await web_id_token(flows, user)
    with pytest.raises(RedirectRejected, match="hint_client_mismatch"):
        await logout(flows, {"id_token_hint": hint, "client_id": NATIVE}, session)
    assert session_open(flows)
    assert flows.events()[-1].client_id == NATIVE


async def test_end_session_without_a_cookie_does_nothing(flows: World) -> None:
    await signed_in(flows)
    await end_session(flows.browser_deps, TENANT_ID, None, AUDIT)
    await end_session(flows.browser_deps, TENANT_ID, "unknown-cookie", AUDIT)
    assert session_open(flows) and flows.events() == []


def test_legacy_return_to_needs_the_clients_exact_logout_url(flows: World) -> None:
    assert legacy_target(flows.config, {"client_id": WEB, "returnTo": WEB_LOGOUT}) == WEB_LOGOUT
    assert legacy_target(flows.config, {"returnTo": WEB_LOGOUT}) is None
    assert legacy_target(flows.config, {"client_id": NATIVE, "returnTo": WEB_LOGOUT}) is None
    assert legacy_target(flows.config, {"client_id": [WEB, WEB], "returnTo": WEB_LOGOUT}) is None
    assert legacy_target(flows.config, {"client_id": WEB, "returnTo": WEB_LOGOUT + "x"}) is None
