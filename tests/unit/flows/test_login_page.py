"""The hosted login page on the in-memory store: a login transaction, the message it sends
through the start flow, the resend cooldown, the typed code that signs the browser in, and
the answers a nopass session gives at once (single sign-on, ``prompt=none``)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from nopass.core.errors import (
    AuthorizeInvalid,
    AuthorizeProblem,
    CodeFailure,
    CodeRejected,
    IdentityBlocked,
    InvalidFormat,
    MissingProperty,
    ResendTooSoon,
)
from nopass.core.keyring import opaque_hash
from nopass.core.models import Connection, LoginTransaction
from nopass.flows.authorization_request import AuthorizeFailed, AuthorizeRequest, parse_authorize
from nopass.flows.login_page import (
    RESEND_COOLDOWN,
    TRANSACTION_LIFETIME,
    Sender,
    answer_from_session,
    begin_login,
    find_transaction,
    page_connection,
    resend_message,
    send_message,
    verify_page_code,
)
from tests.support.flows import (
    EMAIL,
    ISSUER,
    ORIGIN,
    REQUEST,
    SMS,
    TENANT_ID,
    WEB,
    WEB_CALLBACK,
    World,
    authorize,
    tenant_config,
)

SENDER = Sender(origin=ORIGIN, info=REQUEST, language="en")


def web_request(**params: str) -> AuthorizeRequest:
    return parse_authorize(
        authorize(
            {"client_id": WEB, "redirect_uri": WEB_CALLBACK, "response_type": "code", **params}
        ),
        tenant_config(),
    )


class Page:
    """One browser on the page: its transaction, as the store holds it after each step."""

    def __init__(self, flows: World, request: AuthorizeRequest) -> None:
        self.flows, self.request = flows, request
        self.connection: Connection = page_connection(flows.config, request)

    async def begin(self) -> tuple[str, LoginTransaction]:
        token, self.tx = await begin_login(self.flows.browser_deps, self.flows.config, self.request)
        return token, self.tx

    async def send(self, typed: str) -> LoginTransaction:
        self.tx = await send_message(
            self.flows.page_deps,
            self.flows.config,
            self.tx,
            self.connection,
            self.request,
            typed,
            SENDER,
        )
        return self.tx

    async def resend(self) -> LoginTransaction:
        self.tx = await resend_message(
            self.flows.page_deps, self.flows.config, self.tx, self.connection, self.request, SENDER
        )
        return self.tx

    async def verify(self, code: str) -> tuple[dict[str, str], str]:
        response, session = await verify_page_code(
            self.flows.browser_deps,
            self.flows.config,
            ISSUER,
            self.tx,
            self.connection,
            self.request,
            code,
            ip=REQUEST.ip,
            audit=self.flows.audit(self.connection.name, self.tx.identifier),
        )
        assert response.redirect_uri == WEB_CALLBACK
        return response.params, session

    def stored(self) -> LoginTransaction:
        return self.flows.store.tables.transactions[self.tx.id].tx


async def page(flows: World, **params: str) -> Page:
    started = Page(flows, web_request(**params))
    await started.begin()
    return started


async def test_a_visit_stores_a_transaction_by_its_cookie_hash(flows: World) -> None:
    on_page = Page(flows, web_request(state="s"))
    token, tx = await on_page.begin()
    [record] = flows.store.tables.transactions.values()
    assert record.token_hash == opaque_hash(token) and record.tx == tx
    assert (tx.client_id, tx.connection, tx.params["state"]) == (WEB, EMAIL, "s")
    assert tx.expires_at - tx.created_at == TRANSACTION_LIFETIME
    assert await find_transaction(flows.browser_deps, TENANT_ID, token) == tx
    assert await find_transaction(flows.browser_deps, TENANT_ID, "other") is None
    flows.clock.advance(TRANSACTION_LIFETIME.total_seconds())
    assert await find_transaction(flows.browser_deps, TENANT_ID, token) is None


def test_the_page_picks_the_requested_connection_else_email(flows: World) -> None:
    assert page_connection(flows.config, web_request()).name == EMAIL
    assert page_connection(flows.config, web_request(connection=SMS)).name == SMS
    flows.set_enabled(EMAIL, frozenset())
    assert page_connection(flows.config, web_request()).name == SMS
    with pytest.raises(AuthorizeFailed) as failed:
        page_connection(flows.config, web_request(connection=EMAIL))
    cause = failed.value.cause
    assert isinstance(cause, AuthorizeInvalid) and cause.problem is AuthorizeProblem.CONNECTION


async def test_sending_remembers_the_identity_and_queues_the_code(flows: World) -> None:
    on_page = await page(flows)
    tx = await on_page.send("  Ann@Example.com ")
    assert tx.identifier == "ann@example.com" and tx.send == "code"
    assert on_page.stored() == tx and tx.last_sent_at is not None
    [record] = flows.outbox()
    assert record.challenge_id == tx.challenge_id and tx.challenge_id is not None
    assert flows.challenge(tx.challenge_id).send == "code"
    assert flows.code_of(tx.challenge_id) in record.message.text


async def test_a_link_request_sends_a_link_that_finishes_this_request(flows: World) -> None:
    on_page = await page(flows, send="link", state="st-9")
    tx = await on_page.send("ann@example.com")
    assert tx.send == "link"
    assert tx.challenge_id is not None
    params = flows.link_params(tx.challenge_id)
    assert (params["state"], params["redirect_uri"], params["client_id"]) == (
        "st-9",
        WEB_CALLBACK,
        WEB,
    )


async def test_a_typed_phone_number_is_forgiven_its_punctuation(flows: World) -> None:
    on_page = await page(flows, connection=SMS)
    tx = await on_page.send(" +1 (555) 123-4567 ")
    assert tx.identifier == "+15551234567" and tx.send == "code"


async def test_a_bad_email_is_refused_and_changes_nothing(flows: World) -> None:
    on_page = await page(flows)
    before = on_page.stored()
    with pytest.raises(InvalidFormat):
        await on_page.send("not an email")
    assert on_page.stored() == before and flows.outbox() == []
    assert flows.store.tables.challenges == {}


async def test_a_resend_waits_for_the_cooldown_then_voids_the_old_code(flows: World) -> None:
    on_page = await page(flows)
    with pytest.raises(MissingProperty):  # nothing was sent yet
        await on_page.resend()
    first = (await on_page.send("ann@example.com")).challenge_id
    flows.clock.advance(10)
    with pytest.raises(ResendTooSoon) as refused:
        await on_page.resend()
    assert refused.value.retry_after == 20
    assert len(flows.outbox()) == 1
    flows.clock.advance(RESEND_COOLDOWN.total_seconds() - 10)
    second = (await on_page.resend()).challenge_id
    assert second != first and on_page.stored().challenge_id == second
    assert first is not None and flows.challenge(first).voided_at is not None


async def test_the_typed_code_signs_in_and_completes_the_transaction(flows: World) -> None:
    on_page = await page(flows, state="st-2")
    tx = await on_page.send("ann@example.com")
    assert tx.challenge_id is not None
    code = flows.code_of(tx.challenge_id)
    answer, session = await on_page.verify(f" {code[:3]} {code[3:]} ")
    [user] = flows.users()
    assert answer["state"] == "st-2" and "code" in answer
    [stored] = flows.store.tables.sessions.values()
    assert stored.token_hash == opaque_hash(session) and stored.session.user_id == user.user_id
    assert on_page.stored().completed_at is not None
    assert flows.event_types()[-2:] == ["ss", "s"]


async def test_a_wrong_typed_code_is_counted_and_audited(flows: World) -> None:
    on_page = await page(flows)
    tx = await on_page.send("ann@example.com")
    assert tx.challenge_id is not None
    code = flows.code_of(tx.challenge_id)
    with pytest.raises(CodeRejected) as refused:
        await on_page.verify(f"{(int(code) + 1) % 1_000_000:06d}")
    assert refused.value.reason is CodeFailure.WRONG
    assert flows.challenge(tx.challenge_id).attempts == 1 and flows.failure_count() == 1
    assert flows.event_types()[-1] == "f"
    assert on_page.stored().completed_at is None and flows.store.tables.sessions == {}
    await on_page.verify(code)  # the right one still works
    assert on_page.stored().completed_at is not None


async def test_a_blocked_identity_is_refused_on_the_page(flows: World) -> None:
    flows.config = tenant_config({"failures_per_identity_per_15min": 1})
    on_page = await page(flows)
    tx = await on_page.send("ann@example.com")
    assert tx.challenge_id is not None
    with pytest.raises(CodeRejected):
        await on_page.verify("0000000")
    with pytest.raises(IdentityBlocked):
        await on_page.verify(flows.code_of(tx.challenge_id))
    assert flows.event_types()[-2:] == ["f", "f"] and flows.users() == []


async def answer_from(
    flows: World, request: AuthorizeRequest, session: str | None
) -> dict[str, str] | None:
    response = await answer_from_session(
        flows.browser_deps, flows.config, ISSUER, request, session, audit=flows.audit()
    )
    return None if response is None else response.params


async def test_a_session_answers_at_once_and_prompt_none_silently(flows: World) -> None:
    user = await flows.sign_up()
    session = await flows.open_session(user)
    sso = await answer_from(flows, web_request(state="a"), session)
    assert sso is not None and sso["state"] == "a" and "code" in sso
    assert flows.event_types() == []  # single sign-on is not a silent authentication
    silent = await answer_from(flows, web_request(prompt="none"), session)
    assert silent is not None and "code" in silent
    [event] = flows.events()
    assert (event.type, event.user_id) == ("ssa", user.user_id)
    [first, second] = flows.store.tables.authorization_codes.values()
    assert first.code.auth_time == second.code.auth_time  # the session's, not now


async def test_without_a_usable_session_prompt_none_is_login_required(flows: World) -> None:
    user = await flows.sign_up(connection=SMS, identifier="+15551234567")
    session = await flows.open_session(user)
    assert await answer_from(flows, web_request(), None) is None  # show the page
    assert await answer_from(flows, web_request(connection=EMAIL), session) is None
    with pytest.raises(AuthorizeFailed) as failed:
        await answer_from(flows, web_request(prompt="none", connection=EMAIL), session)
    cause = failed.value.cause
    assert isinstance(cause, AuthorizeInvalid)
    assert cause.problem is AuthorizeProblem.LOGIN_REQUIRED
    assert flows.event_types() == ["fsa"] and flows.store.tables.authorization_codes == {}
    flows.clock.advance(timedelta(days=7).total_seconds())
    assert await answer_from(flows, web_request(), session) is None  # the session expired
