"""The magic link on the in-memory store: ``read_link`` validates a link a start sent,
``redeem_link`` consumes its code once and signs the browser in, and a GET needs the
confirmation page unless the hosted page's transaction asked for this very code."""

from __future__ import annotations

import pytest

from nopass.core.errors import (
    CodeFailure,
    CodeRejected,
    ConnectionIssue,
    ConnectionProblem,
    RedirectRejected,
)
from nopass.core.keyring import opaque_hash
from nopass.flows.authorization_request import AuthorizeFailed
from nopass.flows.magic_link import MagicLink, confirmation_needed, read_link, redeem_link
from tests.support.flows import EMAIL, ISSUER, NATIVE, REQUEST, SMS, WEB, World, link_query

CALLBACK = "https://app.acme.example/callback"
PKCE = {
    "response_type": "code",
    "redirect_uri": CALLBACK,
    "code_challenge": "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
    "code_challenge_method": "S256",
    "state": "st-1",
}


async def sent_link(flows: World, **auth: str) -> tuple[str, dict[str, str]]:
    """``(challenge id, link query)`` of a link start by the native client."""
    result = await flows.start(send="link", authParams={**PKCE, **auth})
    return result.id, flows.link_params(result.id)


async def redeem(flows: World, link: MagicLink) -> tuple[dict[str, str], str]:
    response, session = await redeem_link(
        link, flows.config, ISSUER, flows.browser_deps, ip=REQUEST.ip, audit=flows.audit()
    )
    assert (response.redirect_uri, response.mode) == (CALLBACK, "query")
    return response.params, session


async def test_a_sent_link_reads_back_as_its_request_and_code(flows: World) -> None:
    challenge_id, params = await sent_link(flows)
    link = read_link(link_query(params), flows.config)
    assert (link.connection.name, link.identifier, link.code) == (
        EMAIL,
        "ann@example.com",
        flows.code_of(challenge_id),
    )
    assert (link.request.client_id, link.request.state, link.request.response_type) == (
        NATIVE,
        "st-1",
        "code",
    )
    assert link.request.code_challenge == PKCE["code_challenge"]


async def test_redeeming_consumes_the_code_and_signs_the_browser_in(flows: World) -> None:
    challenge_id, params = await sent_link(flows)
    answer, session = await redeem(flows, read_link(link_query(params), flows.config))
    [user] = flows.users()
    assert answer["state"] == "st-1"
    [code] = flows.store.tables.authorization_codes.values()
    assert code.code_hash == opaque_hash(answer["code"]) and code.code.user_id == user.user_id
    assert code.code.code_challenge == PKCE["code_challenge"]
    [stored] = flows.store.tables.sessions.values()
    assert stored.token_hash == opaque_hash(session) and stored.session.user_id == user.user_id
    assert flows.challenge(challenge_id).consumed_at is not None
    assert flows.event_types()[-2:] == ["ss", "s"]


async def test_a_link_works_once(flows: World) -> None:
    _, params = await sent_link(flows)
    link = read_link(link_query(params), flows.config)
    await redeem(flows, link)
    with pytest.raises(AuthorizeFailed) as failed:
        await redeem(flows, link)
    assert isinstance(failed.value.cause, CodeRejected)
    assert failed.value.request.state == "st-1"  # goes back to the client
    assert flows.event_types()[-1] == "f" and len(flows.store.tables.sessions) == 1


async def test_a_tampered_code_is_counted_and_signs_nobody_in(flows: World) -> None:
    challenge_id, params = await sent_link(flows)
    params["verification_code"] = "000000" if params["verification_code"] != "000000" else "1"
    with pytest.raises(AuthorizeFailed) as failed:
        await redeem(flows, read_link(link_query(params), flows.config))
    cause = failed.value.cause
    assert isinstance(cause, CodeRejected) and cause.reason is CodeFailure.WRONG
    assert flows.challenge(challenge_id).attempts == 1 and flows.failure_count() == 1
    assert flows.users() == [] and flows.store.tables.sessions == {}
    assert flows.event_types()[-1] == "f"


async def test_a_link_without_its_identity_fails_like_a_wrong_code(flows: World) -> None:
    challenge_id, params = await sent_link(flows)
    del params["email"]
    link = read_link(link_query(params), flows.config)
    assert link.identifier is None
    with pytest.raises(AuthorizeFailed):
        await redeem(flows, link)
    assert flows.challenge(challenge_id).attempts == 0 and flows.users() == []


@pytest.mark.parametrize(
    ("change", "issue"),
    [({"connection": "nowhere"}, ConnectionIssue.NOT_FOUND), ({}, ConnectionIssue.DISABLED)],
)
async def test_a_link_to_an_unusable_connection_goes_back_to_the_client(
    flows: World, change: dict[str, str], issue: ConnectionIssue
) -> None:
    _, params = await sent_link(flows)
    if not change:
        flows.set_enabled(EMAIL, frozenset({WEB}))
    with pytest.raises(AuthorizeFailed) as failed:
        read_link(link_query({**params, **change}), flows.config)
    cause = failed.value.cause
    assert isinstance(cause, ConnectionProblem) and cause.issue is issue


@pytest.mark.parametrize(
    "change", [{"redirect_uri": "https://evil.example/cb"}, {"client_id": "nobody"}]
)
async def test_a_link_with_a_bad_redirect_never_redirects(
    flows: World, change: dict[str, str]
) -> None:
    _, params = await sent_link(flows)
    with pytest.raises(RedirectRejected):
        read_link(link_query({**params, **change}), flows.config)


async def test_the_confirmation_page_is_skipped_only_for_this_very_code(flows: World) -> None:
    challenge_id, params = await sent_link(flows)
    link = read_link(link_query(params), flows.config)
    assert confirmation_needed(link, None, challenge_id)  # a mail scanner's GET
    assert confirmation_needed(link, "another-challenge", challenge_id)
    assert not confirmation_needed(link, challenge_id, challenge_id)
    flows.set_options(EMAIL, magic_link_confirmation=False)
    assert not confirmation_needed(read_link(link_query(params), flows.config), None, challenge_id)


async def test_a_link_names_its_phone_number_for_sms(flows: World) -> None:
    params = {
        **PKCE,
        "client_id": NATIVE,
        "connection": SMS,
        "phone_number": "+15551234567",
        "verification_code": "123456",
    }
    link = read_link(link_query(params), flows.config)
    assert (link.identifier, link.code) == ("+15551234567", "123456")
