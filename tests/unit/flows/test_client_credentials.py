"""``exchange`` with ``grant_type=client_credentials`` on the in-memory store: the claims of a
machine-to-machine token, the built-in Management API, scope selection, every refusal and
what each one audits."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
import pytest

from nopass.core.errors import (
    AudienceRequired,
    ClientAuthenticationFailed,
    GrantNotAllowed,
    InvalidScope,
    NoClientGrant,
    UnknownAudience,
    UnsupportedParameter,
)
from nopass.core.management import MANAGEMENT_TOKEN_LIFETIME
from nopass.core.models import AuthMethod, SigningKey
from nopass.flows.client_credentials import NO_SCOPE_GRANTED
from tests.support.clock import MovableClock
from tests.support.flows import (
    API,
    ISSUER,
    MACHINE,
    MACHINE_SECRET,
    MANAGEMENT,
    NATIVE,
    WEB,
    WEB_SECRET,
    World,
)
from tests.support.tokens import KeyPair, generate_keypair


@pytest.fixture(scope="module")
def client_keys() -> KeyPair:
    return generate_keypair()


@pytest.fixture
def machine(flows: World) -> World:
    flows.add_machine_client()
    return flows


def claims_of(token: str | None, signing_key: SigningKey, audience: str) -> dict[str, Any]:
    header = jwt.get_unverified_header(token or "")
    assert header == {"alg": "RS256", "kid": signing_key.kid, "typ": "at+jwt"}
    claims: dict[str, Any] = jwt.decode(
        token or "",
        signing_key.private.public_key(),
        algorithms=["RS256"],
        audience=audience,
        issuer=ISSUER,
        options={"verify_exp": False, "verify_iat": False},
    )
    return claims


def nothing_but_audit(flows: World) -> None:
    tables = flows.store.tables
    assert not tables.users and not tables.refresh_tokens and not tables.challenges


async def test_a_token_for_an_api_carries_the_grants_scope(
    machine: World, signing_key: SigningKey
) -> None:
    tokens = await machine.client_credentials()
    assert (tokens.scope, tokens.expires_in) == ("read:things", 7200)
    assert tokens.id_token is None and tokens.refresh_token is None
    assert set(tokens.as_json()) == {"access_token", "expires_in", "scope", "token_type"}
    claims = claims_of(tokens.access_token, signing_key, API)
    now = int(machine.clock.now().timestamp())
    assert claims == {
        "iss": ISSUER,
        "sub": MACHINE + "@clients",
        "aud": API,
        "iat": now,
        "exp": now + 7200,
        "scope": "read:things",
        "gty": "client-credentials",
        "azp": MACHINE,
        "client_id": MACHINE,
        "jti": claims["jti"],
    }
    [event] = machine.events()
    assert (event.type, event.client_id) == ("seccft", MACHINE)
    assert event.details == {"client_name": "Machine App", "audience": API, "scope": "read:things"}
    nothing_but_audit(machine)


async def test_the_management_api_is_built_in_at_the_requests_origin(
    machine: World, signing_key: SigningKey
) -> None:
    tokens = await machine.client_credentials(audience=MANAGEMENT)
    assert (tokens.scope, tokens.expires_in) == ("read:users", MANAGEMENT_TOKEN_LIFETIME)
    claims = claims_of(tokens.access_token, signing_key, MANAGEMENT)
    assert claims["aud"] == MANAGEMENT and claims["exp"] - claims["iat"] == 86400
    # Without the trailing slash it is not the Management API's audience.
    with pytest.raises(UnknownAudience):
        await machine.client_credentials(audience=MANAGEMENT.rstrip("/"))


async def test_a_grant_keeps_only_the_scopes_the_api_defines(machine: World) -> None:
    machine.add_machine_client({MANAGEMENT: ("read:users", "read:everything", "delete:users")})
    tokens = await machine.client_credentials(audience=MANAGEMENT)
    assert tokens.scope == "read:users delete:users"


async def test_requested_scopes_narrow_the_grant(machine: World) -> None:
    machine.add_machine_client({API: ("read:things", "write:things")})
    assert (await machine.client_credentials(scope="write:things")).scope == "write:things"
    both = await machine.client_credentials(scope="write:things other read:things")
    assert both.scope == "read:things write:things"  # ungranted ones are dropped
    assert (await machine.client_credentials(scope=["write:things"])).scope == "write:things"
    assert (await machine.client_credentials(scope="")).scope == "read:things write:things"


async def test_no_granted_scope_among_the_requested_is_refused(machine: World) -> None:
    with pytest.raises(InvalidScope) as refused:
        await machine.client_credentials(scope="delete:things")
    assert refused.value.message == NO_SCOPE_GRANTED
    [event] = machine.events()
    assert event.type == "feccft"
    assert event.details["audience"] == API and event.details["scope"] == "delete:things"


async def test_an_empty_grant_gives_a_token_without_scope(machine: World) -> None:
    machine.add_machine_client({API: ()})
    assert (await machine.client_credentials()).scope == ""


async def test_resource_and_the_default_audience(machine: World, signing_key: SigningKey) -> None:
    tokens = await machine.client_credentials(audience=None, resource=API)
    assert claims_of(tokens.access_token, signing_key, API)["aud"] == API
    with pytest.raises(AudienceRequired):
        await machine.client_credentials(audience=None)
    tenant = replace(machine.config.tenant, default_audience=MANAGEMENT)
    machine.config = replace(machine.config, tenant=tenant)
    tokens = await machine.client_credentials(audience=None)
    assert claims_of(tokens.access_token, signing_key, MANAGEMENT)["scope"] == "read:users"


async def test_organization_null_is_absent_and_a_value_is_refused(machine: World) -> None:
    assert (await machine.client_credentials(organization=None)).scope == "read:things"
    with pytest.raises(UnsupportedParameter):
        await machine.client_credentials(organization="org_abc")


async def test_http_basic_carries_the_secret(machine: World) -> None:
    tokens = await machine.client_credentials(basic=(MACHINE, MACHINE_SECRET), client_secret=None)
    assert tokens.scope == "read:things"
    with pytest.raises(ClientAuthenticationFailed):
        await machine.client_credentials(basic=(MACHINE, "wrong"), client_secret=None)


async def test_private_key_jwt(machine: World, client_keys: KeyPair) -> None:
    machine.add_machine_client(
        auth_method=AuthMethod.PRIVATE_KEY_JWT, public_keys=(client_keys.public_pem,)
    )
    now = datetime.now(UTC)  # PyJWT checks exp against the real clock
    machine.clock = MovableClock(now)
    claims = {
        "iss": MACHINE,
        "sub": MACHINE,
        "aud": ISSUER,
        "iat": now,
        "exp": now + timedelta(seconds=60),
        "jti": str(uuid.uuid4()),
    }
    token = jwt.encode(claims, client_keys.private_pem, "RS256")
    jwt_bearer = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"

    async def with_assertion() -> str:
        tokens = await machine.client_credentials(
            client_secret=None, client_assertion=token, client_assertion_type=jwt_bearer
        )
        return tokens.scope

    assert await with_assertion() == "read:things"
    with pytest.raises(ClientAuthenticationFailed):  # replayed
        await with_assertion()
    assert machine.event_types() == ["seccft"]


async def test_refusals_before_authentication_write_nothing(machine: World) -> None:
    with pytest.raises(ClientAuthenticationFailed):  # not UnknownClient: told like a bad secret
        await machine.client_credentials(client_id="nobody")
    with pytest.raises(ClientAuthenticationFailed):
        await machine.client_credentials(client_secret="wrong-secret-0123456789")
    with pytest.raises(ClientAuthenticationFailed):
        await machine.client_credentials(client_secret=None)
    with pytest.raises(GrantNotAllowed):
        await machine.client_credentials(client_id=NATIVE)
    machine.add_machine_client(auth_method=AuthMethod.NONE)
    with pytest.raises(GrantNotAllowed):  # a public client, whatever its grant types
        await machine.client_credentials(client_secret=None)
    assert machine.events() == []
    nothing_but_audit(machine)


async def test_refusals_of_an_authenticated_client_are_audited(machine: World) -> None:
    with pytest.raises(GrantNotAllowed):
        await machine.client_credentials(client_id=WEB, client_secret=WEB_SECRET)
    with pytest.raises(UnknownAudience):
        await machine.client_credentials(audience="https://unknown.example/")
    machine.add_machine_client({API: ("read:things",)})
    with pytest.raises(NoClientGrant):
        await machine.client_credentials(audience=MANAGEMENT)
    with pytest.raises(AudienceRequired):
        await machine.client_credentials(audience=None)
    events = machine.events()
    assert [e.type for e in events] == ["feccft"] * 4
    assert [e.details["audience"] for e in events] == [
        API,
        "https://unknown.example/",
        MANAGEMENT,
        None,
    ]
    assert all(MACHINE_SECRET not in str(e) and WEB_SECRET not in str(e) for e in events)
    nothing_but_audit(machine)


async def test_grant_type_must_be_allowed_for_the_client(machine: World) -> None:
    machine.add_machine_client(grant_types=("authorization_code",))
    with pytest.raises(GrantNotAllowed) as refused:
        await machine.client_credentials()
    assert refused.value.grant_type == "client_credentials"
