"""``parse_authorize`` and ``respond`` on the in-memory store: what never redirects, what goes
back to the client with its ``state``, and the code and implicit responses."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

import jwt
import pytest

from nopass.core.errors import AuthorizeInvalid, AuthorizeProblem, RedirectRejected, UnknownAudience
from nopass.core.keyring import opaque_hash
from nopass.core.models import ResourceServer, SigningKey
from nopass.flows.authorization_request import (
    CODE_LIFETIME,
    IMPLICIT_ACCESS_LIFETIME,
    AuthorizationResponse,
    AuthorizeFailed,
    AuthorizeRequest,
    error_response,
    parse_authorize,
    respond,
)
from nopass.flows.issue import at_hash
from tests.support.flows import ISSUER, NATIVE, SMS, T0, WEB, WEB_CALLBACK, World, authorize

NATIVE_CALLBACK = "https://app.acme.example/callback"
CHALLENGE = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
API = "https://api.acme.example/"
CODE = {"client_id": WEB, "redirect_uri": WEB_CALLBACK, "response_type": "code"}
IMPLICIT = {**CODE, "response_type": "token id_token", "nonce": "n-1"}


def failure(params: Mapping[str, str | list[str]], flows: World) -> AuthorizeFailed:
    with pytest.raises(AuthorizeFailed) as failed:
        parse_authorize(authorize({**params, "state": "st"}), flows.config)
    assert failed.value.request.state == "st"  # it goes back to the client with its state
    return failed.value


def problem(params: Mapping[str, str | list[str]], flows: World) -> AuthorizeProblem:
    cause = failure(params, flows).cause
    assert isinstance(cause, AuthorizeInvalid)
    return cause.problem


def test_a_code_request_is_parsed_with_its_defaults(flows: World) -> None:
    request = parse_authorize(authorize(CODE), flows.config)
    assert (request.response_type, request.response_mode, request.scope) == (
        "code",
        "query",
        "openid",
    )
    implicit = parse_authorize(
        authorize({**IMPLICIT, "response_type": "token id_token"}), flows.config
    )
    assert (implicit.response_type, implicit.response_mode) == ("id_token token", "fragment")


def test_a_client_with_one_callback_needs_no_redirect_uri(flows: World) -> None:
    params = {k: v for k, v in CODE.items() if k != "redirect_uri"}
    assert parse_authorize(authorize(params), flows.config).redirect_uri == WEB_CALLBACK


@pytest.mark.parametrize(
    ("params", "reason"),
    [
        ({**CODE, "client_id": ""}, "missing_client_id"),
        ({**CODE, "client_id": "nobody"}, "unknown_client"),
        ({**CODE, "redirect_uri": "https://evil.example/callback"}, "callback_mismatch"),
        ({**CODE, "redirect_uri": WEB_CALLBACK + "/"}, "callback_mismatch"),
        ({**CODE, "redirect_uri": [WEB_CALLBACK, WEB_CALLBACK]}, "repeated_parameter"),
        ({**CODE, "client_id": [WEB, WEB]}, "repeated_parameter"),
    ],
)
def test_requests_that_must_not_redirect(
    flows: World, params: dict[str, str | list[str]], reason: str
) -> None:
    with pytest.raises(RedirectRejected) as rejected:
        parse_authorize(authorize({**params, "state": "st"}), flows.config)
    assert rejected.value.reason == reason


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({**CODE, "response_type": "code token"}, AuthorizeProblem.UNSUPPORTED_RESPONSE_TYPE),
        ({**CODE, "response_mode": "post_message"}, AuthorizeProblem.UNSUPPORTED_RESPONSE_MODE),
        ({**IMPLICIT, "nonce": ""}, AuthorizeProblem.NONCE_REQUIRED),
        ({**CODE, "code_challenge_method": "S256"}, AuthorizeProblem.PKCE_REQUIRED),
        (
            {**CODE, "code_challenge": CHALLENGE, "code_challenge_method": "plain"},
            AuthorizeProblem.PKCE_METHOD,
        ),
        ({**CODE, "code_challenge": CHALLENGE}, AuthorizeProblem.PKCE_METHOD),
        (
            {"client_id": NATIVE, "redirect_uri": NATIVE_CALLBACK, "response_type": "code"},
            AuthorizeProblem.PKCE_REQUIRED,
        ),
        (
            {**IMPLICIT, "client_id": NATIVE, "redirect_uri": NATIVE_CALLBACK},
            AuthorizeProblem.GRANT_NOT_ALLOWED,
        ),
        ({**CODE, "connection": "nowhere"}, AuthorizeProblem.CONNECTION),
    ],
)
def test_invalid_requests_go_back_to_the_client(
    flows: World, params: dict[str, str | list[str]], expected: AuthorizeProblem
) -> None:
    assert problem(params, flows) is expected


@pytest.mark.parametrize("response_type", ["token", "id_token", "token id_token"])
def test_tokens_are_never_sent_in_the_query(flows: World, response_type: str) -> None:
    """OAuth 2.0 Multiple Response Type Encoding Practices §5: parameters whose default mode
    is the fragment must never be encoded in the query (they would reach logs and Referer
    headers). The refusal itself goes back in the fragment."""
    params = {**IMPLICIT, "response_type": response_type, "response_mode": "query"}
    refused = failure(params, flows)
    cause = refused.cause
    assert isinstance(cause, AuthorizeInvalid)
    assert cause.problem is AuthorizeProblem.UNSUPPORTED_RESPONSE_MODE
    assert refused.request.response_mode == "fragment"


def test_a_connection_not_enabled_for_the_client_goes_back(flows: World) -> None:
    flows.set_enabled(SMS, frozenset({NATIVE}))
    assert problem({**CODE, "connection": SMS}, flows) is AuthorizeProblem.CONNECTION
    assert (
        parse_authorize(authorize({**CODE, "connection": "email"}), flows.config).connection
        == "email"
    )


def test_an_unknown_audience_goes_back(flows: World) -> None:
    assert isinstance(failure({**CODE, "audience": API}, flows).cause, UnknownAudience)


def test_a_public_client_with_s256_pkce_is_accepted(flows: World) -> None:
    params = {
        "client_id": NATIVE,
        "response_type": "code",
        "code_challenge": CHALLENGE,
        "code_challenge_method": "S256",
    }
    request = parse_authorize(authorize(params), flows.config)
    assert (request.redirect_uri, request.code_challenge) == (NATIVE_CALLBACK, CHALLENGE)


async def answer(flows: World, request: AuthorizeRequest) -> AuthorizationResponse:
    user = await flows.sign_up()
    async with flows.store() as uow:
        response = await respond(
            uow, flows.keys, flows.config, ISSUER, request, user, auth_time=T0, now=T0
        )
        await uow.commit()
    return response


async def test_a_code_response_stores_the_code_by_its_hash(flows: World) -> None:
    request = parse_authorize(
        authorize({**CODE, "state": "st", "scope": "openid email offline_access", "nonce": "n"}),
        flows.config,
    )
    response = await answer(flows, request)
    assert (response.redirect_uri, response.mode) == (WEB_CALLBACK, "query")
    assert set(response.params) == {"code", "state"} and response.params["state"] == "st"
    [record] = flows.store.tables.authorization_codes.values()
    [user] = flows.users()
    stored = record.code
    assert record.code_hash == opaque_hash(response.params["code"])
    assert response.params["code"] not in str(stored)
    assert (stored.client_id, stored.user_id, stored.redirect_uri, stored.nonce) == (
        WEB,
        user.user_id,
        WEB_CALLBACK,
        "n",
    )
    assert stored.scope == "openid email offline_access"  # the web client may refresh
    assert stored.expires_at - stored.created_at == CODE_LIFETIME


async def test_an_implicit_response_carries_tokens_and_stores_no_code(
    flows: World, signing_key: SigningKey
) -> None:
    request = parse_authorize(
        authorize({**IMPLICIT, "state": "st", "scope": "openid email offline_access"}), flows.config
    )
    response = await answer(flows, request)
    params = response.params
    assert response.mode == "fragment" and flows.store.tables.authorization_codes == {}
    assert (params["token_type"], params["state"]) == ("Bearer", "st")
    assert int(params["expires_in"]) == IMPLICIT_ACCESS_LIFETIME
    assert params["scope"] == "openid email"  # no refresh from the front channel
    claims = jwt.decode(
        params["id_token"],
        signing_key.private.public_key(),
        algorithms=["RS256"],
        audience=WEB,
        issuer=ISSUER,
        options={"verify_exp": False, "verify_iat": False},
    )
    [user] = flows.users()
    assert (claims["sub"], claims["nonce"]) == (user.user_id, "n-1")
    assert claims["at_hash"] == at_hash(params["access_token"])


async def test_an_id_token_only_response_has_no_access_token(flows: World) -> None:
    request = parse_authorize(authorize({**IMPLICIT, "response_type": "id_token"}), flows.config)
    params = (await answer(flows, request)).params
    assert set(params) == {"id_token"}


async def test_an_apis_lifetime_is_capped_for_implicit_and_kept_for_code(flows: World) -> None:
    api = ResourceServer(
        identifier=API, name="API", token_lifetime=30000, allow_offline_access=False
    )
    flows.config = replace(flows.config, resource_servers={API: api})
    implicit = parse_authorize(authorize({**IMPLICIT, "audience": API}), flows.config)
    assert int((await answer(flows, implicit)).params["expires_in"]) == IMPLICIT_ACCESS_LIFETIME
    code = parse_authorize(
        authorize({**CODE, "audience": API, "scope": "openid offline_access"}), flows.config
    )
    await answer(flows, code)
    [record] = flows.store.tables.authorization_codes.values()
    assert (record.code.audience, record.code.scope) == (API, "openid")  # API refuses offline


def test_an_error_response_keeps_the_state(flows: World) -> None:
    request = parse_authorize(authorize({**CODE, "state": "st"}), flows.config)
    response = error_response(request, "access_denied", "no")
    assert response.params == {"error": "access_denied", "error_description": "no", "state": "st"}
    assert response.redirect_uri == WEB_CALLBACK
