"""Cross-origin login on the in-memory store: ``authenticate`` (``/co/authenticate``, commands
from ``CrossOriginCommand`` + ``api.commands.cross_origin_fields``) checks origin, body,
client, credential type and realm before the code, and answers a login ticket that
``redeem_ticket`` / ``answer_ticket`` turn into a sign-in once."""

from __future__ import annotations

import pytest

from nopass.core.errors import (
    AuthorizeInvalid,
    AuthorizeProblem,
    CodeFailure,
    CodeRejected,
    CrossOriginDisabled,
    MissingProperty,
    OriginNotAllowed,
    RateLimited,
    UnknownCredentialType,
    UnknownProperties,
    UnknownRealm,
)
from nopass.core.keyring import opaque_hash
from nopass.core.models import User
from nopass.flows.authorization_request import AuthorizeFailed, AuthorizeRequest, parse_authorize
from nopass.flows.cross_origin import (
    TICKET_LIFETIME,
    IssuedTicket,
    answer_ticket,
    co_id_for,
    redeem_ticket,
    refuse_origin,
)
from tests.support.flows import (
    EMAIL,
    ISSUER,
    NATIVE,
    REQUEST,
    WEB,
    WEB_CALLBACK,
    WEB_ORIGIN,
    World,
    authorize,
    tenant_config,
)

NATIVE_ORIGIN = "https://app.acme.example"  # the native client's callback origin


async def code(flows: World) -> str:
    result = await flows.start()
    return flows.code_of(result.id)


def web_request(state: str = "s1") -> AuthorizeRequest:
    return AuthorizeRequest(
        client_id=WEB,
        redirect_uri=WEB_CALLBACK,
        response_type="code",
        response_mode="query",
        state=state,
    )


async def redeem(
    flows: World, ticket: str, verifier: str | None, request: AuthorizeRequest | None = None
) -> User:
    """``redeem_ticket`` in a unit of work that commits even when it raises (its contract)."""
    async with flows.store() as uow:
        try:
            return await redeem_ticket(
                uow, flows.config, request or web_request(), ticket, verifier, flows.clock.now()
            )
        finally:
            await uow.commit()


async def test_a_right_code_answers_a_single_use_ticket_and_signs_up(flows: World) -> None:
    issued = await flows.co_authenticate(await code(flows))
    assert issued.co_id == co_id_for(issued.login_ticket) and issued.lifetime == 300
    [user] = flows.users()
    [stored] = flows.store.tables.tickets.values()
    assert stored.ticket_hash == opaque_hash(issued.login_ticket)
    assert stored.ticket.co_verifier_hash == opaque_hash(issued.co_verifier)
    assert (stored.ticket.client_id, stored.ticket.user_id, stored.ticket.realm) == (
        WEB,
        user.user_id,
        EMAIL,
    )
    assert stored.ticket.expires_at - stored.created_at == TICKET_LIFETIME
    assert flows.event_types()[-2:] == ["ss", "scoa"]
    assert (await redeem(flows, issued.login_ticket, issued.co_verifier)) == user
    with pytest.raises(AuthorizeInvalid) as again:
        await redeem(flows, issued.login_ticket, issued.co_verifier)
    assert again.value.problem is AuthorizeProblem.INVALID_TICKET


async def test_a_wrong_code_is_counted_and_audited(flows: World) -> None:
    right = await code(flows)
    with pytest.raises(CodeRejected) as refused:
        await flows.co_authenticate(f"{(int(right) + 1) % 1_000_000:06d}")
    assert refused.value.reason is CodeFailure.WRONG
    assert flows.failure_count() == 1 and flows.store.tables.tickets == {}
    assert flows.event_types()[-2:] == ["fp", "fcoa"]
    await flows.co_authenticate(right)  # the right one still works


@pytest.mark.parametrize("origin", ["https://evil.example", None, "null", WEB_ORIGIN + "/"])
async def test_an_origin_the_client_does_not_allow_is_refused_first(
    flows: World, origin: str | None
) -> None:
    right = await code(flows)
    with pytest.raises(OriginNotAllowed):
        await flows.co_authenticate(right, origin=origin, extra="bad body")
    event = flows.events()[-1]
    assert (event.type, event.client_id) == ("fco", WEB)
    assert flows.users() == [] and flows.failure_count() == 0
    [challenge] = flows.store.tables.challenges.values()
    assert challenge.attempts == 0


async def test_an_unknown_client_is_judged_by_every_clients_origins(flows: World) -> None:
    with pytest.raises(OriginNotAllowed):
        await flows.co_authenticate("123456", origin="https://evil.example", client_id="nobody")
    with pytest.raises(CrossOriginDisabled):
        await flows.co_authenticate("123456", origin=WEB_ORIGIN, client_id="nobody")
    assert flows.event_types() == ["fco", "fcoa"]


@pytest.mark.parametrize(
    ("body", "origin", "error"),
    [
        ({"extra": "x"}, WEB_ORIGIN, UnknownProperties),
        ({"username": None}, WEB_ORIGIN, MissingProperty),
        ({"realm": 42}, WEB_ORIGIN, MissingProperty),
        ({"client_id": NATIVE}, NATIVE_ORIGIN, CrossOriginDisabled),
        ({"credential_type": "password"}, WEB_ORIGIN, UnknownCredentialType),
        ({"realm": "nowhere"}, WEB_ORIGIN, UnknownRealm),
    ],
)
async def test_refusals_before_the_code_are_audited_and_change_nothing(
    flows: World, body: dict[str, object], origin: str, error: type[Exception]
) -> None:
    right = await code(flows)
    with pytest.raises(error):
        await flows.co_authenticate(right, origin=origin, **body)
    assert flows.event_types()[-1] == "fcoa"
    assert flows.users() == [] and flows.store.tables.tickets == {}
    assert flows.failure_count() == 0
    [challenge] = flows.store.tables.challenges.values()
    assert challenge.attempts == 0 and challenge.consumed_at is None


async def test_a_realm_not_enabled_for_the_client_is_unknown(flows: World) -> None:
    flows.set_enabled(EMAIL, frozenset({NATIVE}))
    with pytest.raises(UnknownRealm):
        await flows.co_authenticate("123456")


async def test_a_spent_ip_budget_is_refused_and_audited_as_this_request(flows: World) -> None:
    flows.config = tenant_config({"failures_per_ip_per_hour": 1})
    with pytest.raises(CodeRejected):
        await flows.co_authenticate("000000")
    with pytest.raises(RateLimited):
        await flows.co_authenticate(await code(flows))
    assert flows.event_types()[-2:] == ["api_limit", "fcoa"]
    assert flows.users() == []


async def test_a_wrong_verifier_burns_the_ticket(flows: World) -> None:
    issued = await flows.co_authenticate(await code(flows))
    with pytest.raises(AuthorizeInvalid):
        await redeem(flows, issued.login_ticket, "another-browsers-verifier")
    with pytest.raises(AuthorizeInvalid):
        await redeem(flows, issued.login_ticket, issued.co_verifier)


async def test_without_the_cookie_the_ticket_redeems_once(flows: World) -> None:
    issued = await flows.co_authenticate(await code(flows))
    assert (await redeem(flows, issued.login_ticket, None)).identifier == "ann@example.com"


async def test_a_ticket_of_another_client_or_expired_is_invalid(flows: World) -> None:
    issued = await flows.co_authenticate(await code(flows))
    other = AuthorizeRequest(
        client_id=NATIVE,
        redirect_uri="https://app.acme.example/callback",
        response_type="code",
        response_mode="query",
    )
    with pytest.raises(AuthorizeInvalid):
        await redeem(flows, issued.login_ticket, issued.co_verifier, other)
    flows.clock.advance(TICKET_LIFETIME.total_seconds())
    with pytest.raises(AuthorizeInvalid):
        await redeem(flows, issued.login_ticket, issued.co_verifier)
    [stored] = flows.store.tables.tickets.values()
    assert stored.used_at is None  # neither attempt could use it


async def test_answer_ticket_opens_a_session_and_answers_a_code(flows: World) -> None:
    issued: IssuedTicket = await flows.co_authenticate(await code(flows))
    params = {
        "client_id": WEB,
        "redirect_uri": WEB_CALLBACK,
        "response_type": "code",
        "state": "xyz",
    }
    request = parse_authorize(authorize(params), flows.config)
    response, session = await answer_ticket(
        flows.browser_deps,
        flows.config,
        ISSUER,
        request,
        issued.login_ticket,
        issued.co_verifier,
        audit=flows.audit(),
    )
    assert (response.redirect_uri, response.mode, response.params["state"]) == (
        WEB_CALLBACK,
        "query",
        "xyz",
    )
    [stored_code] = flows.store.tables.authorization_codes.values()
    assert stored_code.code_hash == opaque_hash(response.params["code"])
    [stored_session] = flows.store.tables.sessions.values()
    assert stored_session.token_hash == opaque_hash(session)
    assert flows.event_types()[-1] == "s"
    with pytest.raises(AuthorizeFailed) as failed:
        await answer_ticket(
            flows.browser_deps,
            flows.config,
            ISSUER,
            request,
            issued.login_ticket,
            issued.co_verifier,
            audit=flows.audit(),
        )
    assert isinstance(failed.value.cause, AuthorizeInvalid)
    assert flows.event_types()[-1] == "f" and len(flows.store.tables.sessions) == 1


async def test_a_refused_preflight_is_audited_without_a_client(flows: World) -> None:
    refused = await refuse_origin("https://evil.example", flows.config, REQUEST, flows.browser_deps)
    assert refused.origin == "https://evil.example"
    [event] = flows.events()
    assert (event.type, event.client_id, event.details) == (
        "fco",
        None,
        {"origin": "https://evil.example"},
    )
