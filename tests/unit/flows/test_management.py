"""The Management API's use cases on the in-memory store: who may call (tokens, scopes) and
the users (create, sign-in, update, delete), each write one transaction with its audit."""

from __future__ import annotations

import pytest

from nopass.core.errors import (
    InsufficientScope,
    InvalidManagementRequest,
    ManagementTokenRejected,
    TokenProblem,
    UserExists,
    UserNotFound,
)
from nopass.core.models import Session
from nopass.flows.management.caller import ApiCall, Caller, authenticate, require
from nopass.flows.management.users import (
    NewUser,
    UserPatch,
    create_user,
    delete_user,
    get_user,
    update_user,
)
from tests.support.flows import ORIGIN, TENANT_ID, World
from tests.support.management import token

ALL = frozenset({"create:users", "read:users", "update:users", "delete:users"})


def call(*scopes: str) -> ApiCall:
    caller = Caller(client_id="machine", scopes=frozenset(scopes) or ALL)
    return ApiCall(caller, "POST", "/api/v2/users", "203.0.113.7", "unit-test", "corr-1")


async def test_a_management_token_names_its_client_and_scopes(flows: World) -> None:
    key = await flows.keys.signing_key(TENANT_ID)
    caller = await authenticate(
        token(key, ["read:users"], origin=ORIGIN), flows.resolved, flows.management_deps
    )
    assert caller == Caller("machine-client-id", frozenset({"read:users"}))
    require(caller, ["read:clients", "read:users"])
    with pytest.raises(InsufficientScope) as caught:
        require(caller, ["create:users"])
    assert caught.value.accepted == ("create:users",)


async def test_tokens_refused(flows: World) -> None:
    key = await flows.keys.signing_key(TENANT_ID)
    deps = flows.management_deps
    with pytest.raises(ManagementTokenRejected) as missing:
        await authenticate(None, flows.resolved, deps)
    assert missing.value.problem is TokenProblem.MISSING
    other = "https://other.example/api/v2/"
    with pytest.raises(ManagementTokenRejected) as audience:
        await authenticate(token(key, origin=ORIGIN, aud=other), flows.resolved, deps)
    assert audience.value.problem is TokenProblem.AUDIENCE and audience.value.audience == other
    flows.clock.advance(400 * 86400)  # past the token's exp
    with pytest.raises(ManagementTokenRejected) as expired:
        await authenticate(token(key, origin=ORIGIN), flows.resolved, deps)
    assert expired.value.problem is TokenProblem.EXPIRED


async def test_a_created_user_is_verified_by_its_first_login(flows: World) -> None:
    deps = flows.management_deps
    new = NewUser(connection="email", email="Ann@Example.com", attributes={"given_name": "Ann"})
    view = await create_user(flows.config, new, call(), deps)
    assert view.user.profile["email_verified"] is False
    [event] = [e for e in flows.store.tables.audit_of(TENANT_ID) if e.type == "sapi"]
    assert event.user_id == view.user.user_id and event.client_id == "machine"
    assert event.details["references"] == {"correlation_id": "corr-1"}

    result = await flows.start()
    await flows.otp(flows.code_of(result.id))
    signed_in = (await get_user(flows.config, view.user.user_id, deps)).user
    assert signed_in.profile["email_verified"] is True
    assert signed_in.profile["given_name"] == "Ann" and signed_in.logins_count == 1

    with pytest.raises(UserExists):
        await create_user(flows.config, new, call(), deps)
    assert len(flows.users()) == 1


async def test_updates_and_their_refusals_write_nothing_when_refused(flows: World) -> None:
    deps = flows.management_deps
    ann = await create_user(flows.config, NewUser("email", email="ann@example.com"), call(), deps)
    await create_user(flows.config, NewUser("email", email="bob@example.com"), call(), deps)
    before = dict(flows.store.tables.users)
    user_id = ann.user.user_id
    for patch, error in (
        (UserPatch(email="bob@example.com"), UserExists),
        (UserPatch(phone_number="+15005550006"), InvalidManagementRequest),
        (UserPatch(connection="sms"), InvalidManagementRequest),
    ):
        with pytest.raises(error):
            await update_user(flows.config, user_id, patch, call(), deps)
    with pytest.raises(InsufficientScope):
        await update_user(
            flows.config,
            user_id,
            UserPatch(attributes={"name": "x"}),
            call("update:users_app_metadata"),
            deps,
        )
    with pytest.raises(UserNotFound):
        await update_user(flows.config, "email|nobody", UserPatch(blocked=True), call(), deps)
    assert flows.store.tables.users == before

    patched = await update_user(
        flows.config,
        user_id,
        UserPatch(app_metadata={"a": 1}),
        call("update:users_app_metadata"),
        deps,
    )
    assert patched.user.app_metadata == {"a": 1}


async def test_delete_takes_the_sessions_along(flows: World) -> None:
    deps = flows.management_deps
    ann = await create_user(flows.config, NewUser("email", email="ann@example.com"), call(), deps)
    now = flows.clock.now()
    async with flows.store() as work:
        session = Session(id="s1", user_id=ann.user.user_id, created_at=now, expires_at=now)
        await work.sessions.add(TENANT_ID, session, "hash")
        await work.commit()
    await delete_user(flows.config, ann.user.user_id, call("delete:users"), deps)
    assert flows.users() == [] and flows.store.tables.sessions == {}
    types = [e.type for e in flows.store.tables.audit_of(TENANT_ID)]
    assert types.count("sdu") == 1
    await delete_user(flows.config, ann.user.user_id, call("delete:users"), deps)  # no error
    with pytest.raises(UserNotFound):
        await get_user(flows.config, ann.user.user_id, deps)
