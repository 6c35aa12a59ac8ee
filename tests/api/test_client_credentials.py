"""``POST /oauth/token`` with ``grant_type=client_credentials`` (docs/specs/management-api.md
§2.1-2.2): form and JSON bodies (auth0-python v4's ``"organization": null``), the secret in
the body, in HTTP Basic, or a private_key_jwt assertion; the token checked against the JWKS;
every refusal with Auth0's status and body, and nothing written but its audit event."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import jwt
import pytest

from tests.cli.helpers import dump_tables
from tests.support.config import (
    API_ID,
    JWT_ID,
    MACHINE_ID,
    MACHINE_SECRET,
    NATIVE_ID,
    WEB_ID,
    WEB_SECRET,
    machine_config,
)
from tests.support.harness import Harness, prepare_database, running_app
from tests.support.tokens import KeyPair, generate_keypair, jwks_of, verify_with

ORIGIN = "http://127.0.0.1:8123"
ISSUER = ORIGIN + "/"
MANAGEMENT = ORIGIN + "/api/v2/"
JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
FORM = {"grant_type": "client_credentials", "client_id": MACHINE_ID, "audience": API_ID}
UNAUTHORIZED = {"error": "access_denied", "error_description": "Unauthorized"}
NOT_ALLOWED = {
    "error": "unauthorized_client",
    "error_description": "Grant type 'client_credentials' not allowed for the client.",
    "error_uri": "https://auth0.com/docs/clients/client-grant-types",
}


@pytest.fixture(scope="module")
def client_keys() -> KeyPair:
    return generate_keypair()


@pytest.fixture
async def app(database_url: str, client_keys: KeyPair) -> AsyncIterator[Harness]:
    config = machine_config(ORIGIN, public_key_pem=client_keys.public_pem)
    [jwt_app] = [c for c in config["clients"] if c["client_id"] == JWT_ID]
    jwt_app["grant_types"] = ["client_credentials"]
    config["client_grants"].append(
        {"client_id": JWT_ID, "audience": MANAGEMENT, "scope": ["read:clients"]}
    )
    async with running_app(database_url, config) as harness:
        yield harness


async def post(app: Harness, **kwargs: Any) -> httpx.Response:
    return await app.client.post("/oauth/token", **kwargs)


async def verified(app: Harness, response: httpx.Response, audience: str) -> dict[str, Any]:
    """The answer's body is Auth0's and its token verifies against the JWKS."""
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    body: dict[str, Any] = response.json()
    assert set(body) == {"access_token", "expires_in", "scope", "token_type"}
    assert body["token_type"] == "Bearer"
    claims = verify_with(
        body["access_token"], await jwks_of(app.client), audience=audience, issuer=ISSUER
    )
    assert claims["exp"] - claims["iat"] == body["expires_in"]
    assert claims["scope"] == body["scope"]
    return claims


async def test_a_form_with_the_secret_gets_a_token_for_the_api(app: Harness) -> None:
    response = await post(app, data={**FORM, "client_secret": MACHINE_SECRET})
    claims = await verified(app, response, API_ID)
    assert response.json()["expires_in"] == 7200  # the API's token_lifetime
    assert claims["sub"] == MACHINE_ID + "@clients"
    assert (claims["aud"], claims["azp"], claims["gty"]) == (
        API_ID,
        MACHINE_ID,
        "client-credentials",
    )
    assert claims["scope"] == "read:things write:things"
    assert jwt.get_unverified_header(response.json()["access_token"])["typ"] == "at+jwt"
    [event] = await app.rows("SELECT type, client_id, details FROM audit_events")
    assert (event["type"], event["client_id"]) == ("seccft", MACHINE_ID)
    details = event["details"]
    details = json.loads(details) if isinstance(details, str) else details  # SQLite: text
    assert (details["audience"], details["scope"]) == (API_ID, "read:things write:things")
    assert MACHINE_SECRET not in str(event)


async def test_auth0_python_json_with_organization_null_for_the_management_api(
    app: Harness,
) -> None:
    body = {
        "client_id": MACHINE_ID,
        "audience": MANAGEMENT,
        "grant_type": "client_credentials",
        "organization": None,
        "client_secret": MACHINE_SECRET,
    }
    response = await post(app, json=body)
    claims = await verified(app, response, MANAGEMENT)
    assert response.json()["expires_in"] == 86400
    assert claims["aud"] == MANAGEMENT and claims["scope"] == "read:users read:logs"


async def test_http_basic_resource_and_a_narrower_scope(app: Harness) -> None:
    basic = base64.b64encode(f"{MACHINE_ID}:{MACHINE_SECRET}".encode()).decode()
    form = {"grant_type": "client_credentials", "resource": API_ID, "scope": "write:things x"}
    response = await post(app, data=form, headers={"Authorization": f"Basic {basic}"})
    claims = await verified(app, response, API_ID)
    assert claims["scope"] == "write:things"  # the ungranted "x" is dropped


async def test_private_key_jwt(app: Harness, client_keys: KeyPair) -> None:
    now = datetime.now(UTC)
    claims = {
        "iss": JWT_ID,
        "sub": JWT_ID,
        "aud": ISSUER,
        "iat": now,
        "exp": now + timedelta(seconds=60),
        "jti": str(uuid.uuid4()),
    }
    form = {
        "grant_type": "client_credentials",
        "client_id": JWT_ID,
        "audience": MANAGEMENT,
        "client_assertion": jwt.encode(claims, client_keys.private_pem, "RS256"),
        "client_assertion_type": JWT_BEARER,
    }
    token = await verified(app, await post(app, data=form), MANAGEMENT)
    assert token["sub"] == JWT_ID + "@clients" and token["scope"] == "read:clients"
    replayed = await post(app, data=form)
    assert (replayed.status_code, replayed.json()) == (401, UNAUTHORIZED)


async def test_default_audience(database_url: str) -> None:
    config = machine_config(ORIGIN)
    config["tenant"]["default_audience"] = MANAGEMENT
    async with running_app(database_url, config) as app:
        form = {**FORM, "client_secret": MACHINE_SECRET, "audience": ""}
        claims = await verified(app, await post(app, data=form), MANAGEMENT)
        assert claims["scope"] == "read:users read:logs"


def _no_grant(audience: str) -> dict[str, str]:
    text = (
        f'Client is not authorized to access "{audience}". You need to create a "client-grant" '
        "associated to this API."
    )
    return {"error": "access_denied", "error_description": text}


# name -> (body, status, answer, audited as feccft?)
REFUSALS: dict[str, tuple[dict[str, Any], int, dict[str, Any], bool]] = {
    "unknown client": (
        {**FORM, "client_id": "nobody", "client_secret": "x"},
        401,
        UNAUTHORIZED,
        False,
    ),
    "wrong secret": (
        {**FORM, "client_secret": "wrong-secret-0123456789"},
        401,
        UNAUTHORIZED,
        False,
    ),
    "no secret": (FORM, 401, UNAUTHORIZED, False),
    "public client": ({**FORM, "client_id": NATIVE_ID}, 403, NOT_ALLOWED, False),
    "grant type not allowed": (
        {**FORM, "client_id": WEB_ID, "client_secret": WEB_SECRET},
        403,
        NOT_ALLOWED,
        True,
    ),
    "no client grant for the audience": (
        {**FORM, "client_id": WEB_ID, "client_secret": WEB_SECRET, "audience": MANAGEMENT},
        403,
        _no_grant(MANAGEMENT),
        True,
    ),
    "missing audience, no default": (
        {**FORM, "client_secret": MACHINE_SECRET, "audience": None},
        403,
        {
            "error": "access_denied",
            "error_description": (
                "No audience parameter was provided, and no default audience has been configured"
            ),
        },
        True,
    ),
    "unknown audience": (
        {**FORM, "client_secret": MACHINE_SECRET, "audience": "https://nowhere.example/"},
        403,
        {
            "error": "access_denied",
            "error_description": "Service not found: https://nowhere.example/",
        },
        True,
    ),
    "no requested scope granted": (
        {**FORM, "client_secret": MACHINE_SECRET, "scope": "delete:things"},
        400,
        {
            "error": "invalid_scope",
            "error_description": "None of the requested scopes is granted to the client",
        },
        True,
    ),
    "an organization": (
        {**FORM, "client_secret": MACHINE_SECRET, "organization": "org_abc"},
        400,
        {"error": "invalid_request", "error_description": "Unsupported parameter: organization"},
        False,
    ),
}


@pytest.mark.parametrize("encoding", ["form", "json"])
async def test_each_refusal_answers_like_auth0_and_writes_nothing_else(
    database_url: str, encoding: str
) -> None:
    config = machine_config(ORIGIN)
    config["clients"][1]["grant_types"] = ["client_credentials", "authorization_code"]
    async with running_app(database_url, config) as app:
        before = await dump_tables(database_url)
        problems = []
        audited = 0
        for case, (body, status, answer, audit) in REFUSALS.items():
            if case == "grant type not allowed":
                continue  # below, on a client without the grant type
            present = {k: v for k, v in body.items() if v is not None}
            sent = {"json": present} if encoding == "json" else {"data": present}
            response = await post(app, **sent)
            if (response.status_code, response.json()) != (status, answer):
                problems.append(f"{case}: {response.status_code} {response.text}")
            if response.headers.get("cache-control") != "no-store":
                problems.append(f"{case}: no Cache-Control: no-store")
            audited += audit
        assert not problems, "\n".join(problems)
        after = await dump_tables(database_url)
        events = after.pop("audit_events")
        before.pop("audit_events")
        assert after == before, "a refusal writes nothing but its audit event"
        assert [e["type"] for e in events] == ["feccft"] * audited
        assert all(MACHINE_SECRET not in str(e) and WEB_SECRET not in str(e) for e in events)
        assert {e["details"]["audience"] for e in events} == {
            MANAGEMENT,
            None,
            "https://nowhere.example/",
            API_ID,
        }


async def test_a_client_without_the_grant_type_is_refused(app: Harness) -> None:
    body, status, answer, _ = REFUSALS["grant type not allowed"]
    response = await post(app, data=body)
    assert (response.status_code, response.json()) == (status, answer)
    [event] = await app.rows("SELECT type, client_id FROM audit_events")
    assert (event["type"], event["client_id"]) == ("feccft", WEB_ID)


async def test_another_tenant_knows_neither_the_client_nor_its_grants(database_url: str) -> None:
    other = machine_config("http://beta.example:8123", name="beta")
    for client in other["clients"]:
        client["client_id"] = "beta-" + client["client_id"]
    for grant in other["client_grants"]:
        grant["client_id"] = "Machine App"
    await prepare_database(database_url, other)
    async with running_app(database_url, machine_config(ORIGIN)) as app:
        form = {**FORM, "client_secret": MACHINE_SECRET}
        at_beta = await post(app, data=form, headers={"Host": "beta.example:8123"})
        assert (at_beta.status_code, at_beta.json()) == (401, UNAUTHORIZED)
        beta_management = "http://beta.example:8123/api/v2/"
        response = await post(app, data={**form, "audience": beta_management})
        assert response.status_code == 403
        assert response.json()["error_description"] == f"Service not found: {beta_management}"
