"""A user an administrator blocked (``User.blocked``) is refused by every sign-in path, on the
in-memory store: the one code check (OTP grant, ``/passwordless/verify``, ``/co/authenticate``,
the hosted page, the magic link), the refresh-token and authorization-code grants, a login
ticket and ``/authorize`` answering from a session. A refused right code is not consumed and
nothing is written but the audit event; unblocked, the user signs in again."""

from __future__ import annotations

import pytest

from nopass.api.commands import token_command
from nopass.core.errors import CodeRejected, UserBlocked
from nopass.core.models import AuditEvent, User
from nopass.flows.authorization_request import AuthorizeFailed, AuthorizeRequest, parse_authorize
from nopass.flows.code_check import (
    BROWSER_FAILURES,
    CROSS_ORIGIN_FAILURES,
    OTP_GRANT_FAILURES,
    VERIFY_FAILURES,
    FailureEvents,
)
from nopass.flows.cross_origin import answer_ticket
from nopass.flows.login_page import (
    Sender,
    answer_from_session,
    begin_login,
    page_connection,
    send_message,
    verify_page_code,
)
from nopass.flows.magic_link import read_link, redeem_link
from nopass.flows.token import TokenCommand, exchange
from tests.support.flows import (
    ISSUER,
    MEMBERS,
    ORIGIN,
    REQUEST,
    WEB,
    WEB_CALLBACK,
    WEB_SECRET,
    World,
    authorize,
    link_query,
    tenant_config,
)

OFFLINE = {"scope": "openid offline_access"}


async def blocked_user(flows: World, connection: str = "email") -> tuple[User, str, str]:
    """ann, signed up then blocked, with a fresh code: ``(user, challenge id, code)``."""
    user = await flows.block(await flows.sign_up(connection))
    result = await flows.start(connection)
    return user, result.id, flows.code_of(result.id)


def last_event(flows: World) -> AuditEvent:
    return flows.events()[-1]


def assert_refused_and_untouched(
    flows: World, user: User, challenge_id: str, events_before: int
) -> None:
    """The code is as it was, the user too, and one ``f`` "user is blocked" was audited."""
    challenge = flows.challenge(challenge_id)
    assert challenge.consumed_at is None and challenge.voided_at is None
    assert challenge.attempts == 0
    assert flows.users() == [user]  # not counted: logins_count, last_login as they were
    assert flows.failure_count() == 0  # a right code is not a failed guess
    assert len(flows.events()) == events_before + 1
    event = last_event(flows)
    assert (event.type, event.description, event.user_id) == ("f", "user is blocked", user.user_id)


# ----------------------------------------------------------------------- the code check


@pytest.mark.parametrize(
    "failures", [OTP_GRANT_FAILURES, VERIFY_FAILURES, CROSS_ORIGIN_FAILURES, BROWSER_FAILURES]
)
async def test_the_code_check_refuses_a_blocked_users_right_code_and_keeps_it(
    flows: World, failures: FailureEvents
) -> None:
    flows.config = tenant_config({"failures_per_ip_per_hour": 5})
    user, challenge_id, code = await blocked_user(flows)
    before = len(flows.events())
    async with flows.store() as uow:
        with pytest.raises(UserBlocked) as refused:
            await flows.codes.sign_in(
                uow, flows.config.tenant, flows.attempt(code, failures=failures)
            )
    assert refused.value.user_id == user.user_id
    assert_refused_and_untouched(flows, user, challenge_id, before)
    assert flows.counter("failures_per_ip_per_hour") == 0  # the reservation was given back
    unblocked = await flows.block(user, blocked=False)
    async with flows.store() as uow:  # the code stayed usable: unblocked in time, it works
        login = await flows.codes.sign_in(uow, flows.config.tenant, flows.attempt(code))
        await uow.commit()
    assert login.user.logins_count == unblocked.logins_count + 1 and not login.created
    assert flows.challenge(challenge_id).consumed_at is not None


async def test_a_wrong_code_of_a_blocked_user_counts_as_any_wrong_code(flows: World) -> None:
    _, challenge_id, code = await blocked_user(flows)
    with pytest.raises(CodeRejected):
        await flows.otp(f"{(int(code) + 1) % 1_000_000:06d}")
    assert flows.challenge(challenge_id).attempts == 1 and flows.failure_count() == 1


async def test_a_connection_without_signup_refuses_a_blocked_user_too(flows: World) -> None:
    user, challenge_id, code = await blocked_user(flows, MEMBERS)
    before = len(flows.events())
    with pytest.raises(UserBlocked):
        await flows.otp(code, realm=MEMBERS)
    challenge = flows.challenge(challenge_id)
    assert challenge.consumed_at is None and flows.users() == [user]
    assert len(flows.events()) == before + 1 and last_event(flows).type == "f"


async def test_another_user_is_not_affected(flows: World) -> None:
    await flows.block(await flows.sign_up(identifier="bob@example.com"))
    result = await flows.start()
    tokens = await flows.otp(flows.code_of(result.id))
    assert tokens.access_token
    assert {u.identifier: u.blocked for u in flows.users()} == {
        "bob@example.com": True,
        "ann@example.com": False,
    }


# ------------------------------------------------------------------- the JSON endpoints


async def test_the_otp_grant_refuses_a_blocked_user(flows: World) -> None:
    user, challenge_id, code = await blocked_user(flows)
    before = len(flows.events())
    with pytest.raises(UserBlocked):
        await flows.otp(code)
    assert_refused_and_untouched(flows, user, challenge_id, before)
    assert flows.store.tables.refresh_tokens == {}


async def test_passwordless_verify_refuses_a_blocked_user(flows: World) -> None:
    user, challenge_id, code = await blocked_user(flows)
    before = len(flows.events())
    with pytest.raises(UserBlocked):
        await flows.verify(verification_code=code)
    assert_refused_and_untouched(flows, user, challenge_id, before)


async def test_cross_origin_authentication_refuses_a_blocked_user(flows: World) -> None:
    user, challenge_id, code = await blocked_user(flows)
    before = len(flows.events())
    with pytest.raises(UserBlocked):
        await flows.co_authenticate(code)
    assert_refused_and_untouched(flows, user, challenge_id, before)
    assert flows.store.tables.tickets == {}


async def test_the_refresh_grant_refuses_a_blocked_user_and_keeps_the_token(
    flows: World,
) -> None:
    result = await flows.start()
    refresh = (await flows.otp(flows.code_of(result.id), **OFFLINE)).refresh_token
    assert refresh is not None
    [user] = flows.users()
    await flows.block(user)
    grants = dict(flows.store.tables.refresh_tokens)
    with pytest.raises(UserBlocked):
        await flows.refresh(refresh)
    assert flows.store.tables.refresh_tokens == grants  # not rotated, not revoked
    assert (last_event(flows).type, last_event(flows).description) == (
        "fertft",
        "user is blocked",
    )
    await flows.block(user, blocked=False)
    assert (await flows.refresh(refresh)).access_token


def web_request(**params: str) -> AuthorizeRequest:
    query = {"client_id": WEB, "redirect_uri": WEB_CALLBACK, "response_type": "code", **params}
    return parse_authorize(authorize(query), tenant_config())


def code_exchange(code: str) -> TokenCommand:
    body: dict[str, object] = {
        "grant_type": "authorization_code",
        "client_id": WEB,
        "client_secret": WEB_SECRET,
        "code": code,
        "redirect_uri": WEB_CALLBACK,
    }
    return token_command(body, None, issuer=ISSUER, request=REQUEST)


async def test_the_code_grant_refuses_a_user_blocked_since_the_code(flows: World) -> None:
    user = await flows.sign_up()
    session = await flows.open_session(user)
    response = await answer_from_session(
        flows.browser_deps, flows.config, ISSUER, web_request(), session, audit=flows.audit()
    )
    assert response is not None
    await flows.block(user)
    with pytest.raises(UserBlocked):
        await exchange(code_exchange(response.params["code"]), flows.config, flows.token_deps)
    assert (last_event(flows).type, last_event(flows).description) == (
        "feacft",
        "user is blocked",
    )
    assert flows.store.tables.refresh_tokens == {}


# -------------------------------------------------------------------- the browser paths


async def test_a_session_of_a_blocked_user_answers_nothing(flows: World) -> None:
    user = await flows.sign_up()
    session = await flows.open_session(user)
    await flows.block(user)
    for prompt in ({}, {"prompt": "none"}):
        with pytest.raises(AuthorizeFailed) as failed:
            await answer_from_session(
                flows.browser_deps,
                flows.config,
                ISSUER,
                web_request(state="s", **prompt),
                session,
                audit=flows.audit(),
            )
        assert isinstance(failed.value.cause, UserBlocked)
        assert failed.value.request.state == "s"
    assert flows.store.tables.authorization_codes == {}
    assert [(e.type, e.description) for e in flows.events()] == [("f", "user is blocked")] * 2


async def test_the_magic_link_refuses_a_blocked_user(flows: World) -> None:
    user = await flows.block(await flows.sign_up())
    result = await flows.start(
        send="link",
        authParams={
            "response_type": "code",
            "redirect_uri": "https://app.acme.example/callback",
            "code_challenge": "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
            "code_challenge_method": "S256",
        },
    )
    link = read_link(link_query(flows.link_params(result.id)), flows.config)
    before = len(flows.events())
    with pytest.raises(AuthorizeFailed) as failed:
        await redeem_link(
            link, flows.config, ISSUER, flows.browser_deps, ip=REQUEST.ip, audit=flows.audit()
        )
    assert isinstance(failed.value.cause, UserBlocked)
    assert_refused_and_untouched(flows, user, result.id, before)
    assert flows.store.tables.sessions == {}


async def test_the_hosted_page_refuses_a_blocked_user(flows: World) -> None:
    user = await flows.block(await flows.sign_up())
    request = web_request()
    _, tx = await begin_login(flows.browser_deps, flows.config, request)
    connection = page_connection(flows.config, request)
    sender = Sender(origin=ORIGIN, info=REQUEST, language="en")
    tx = await send_message(
        flows.page_deps, flows.config, tx, connection, request, "ann@example.com", sender
    )
    assert tx.challenge_id is not None
    before = len(flows.events())
    with pytest.raises(UserBlocked):
        await verify_page_code(
            flows.browser_deps,
            flows.config,
            ISSUER,
            tx,
            connection,
            request,
            flows.code_of(tx.challenge_id),
            ip=REQUEST.ip,
            audit=flows.audit(),
        )
    assert_refused_and_untouched(flows, user, tx.challenge_id, before)
    assert flows.store.tables.transactions[tx.id].tx.completed_at is None
    assert flows.store.tables.sessions == {}


async def test_a_login_ticket_of_a_user_blocked_since_is_refused(flows: World) -> None:
    result = await flows.start()
    issued = await flows.co_authenticate(flows.code_of(result.id))
    [user] = flows.users()
    await flows.block(user)
    with pytest.raises(AuthorizeFailed) as failed:
        await answer_ticket(
            flows.browser_deps,
            flows.config,
            ISSUER,
            web_request(),
            issued.login_ticket,
            issued.co_verifier,
            audit=flows.audit(),
        )
    assert isinstance(failed.value.cause, UserBlocked)
    assert flows.store.tables.sessions == {} and flows.store.tables.authorization_codes == {}
    assert (last_event(flows).type, last_event(flows).description) == ("f", "user is blocked")
