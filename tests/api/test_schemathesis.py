"""Property-based fuzzing of the JSON endpoints from their OpenAPI document (issue 5;
docs/specs/security.md §5 "Schemathesis"): whatever a client sends, nopass never answers with a
server error, and every answer (status, content type, body) is one the document describes.

The document served at ``GET /openapi.json`` is the one under test. Identifiers are narrowed
to the seeded tenant's (clients, connections), so that generated requests get past client
and connection lookup into validation, client authentication and the code checks instead of
all stopping at ``bad.client_id``. Generation is derandomized: the same cases every run.
"""

from __future__ import annotations

import asyncio
import copy
import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.python.asgi import shutdown_lifespans
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from nopass.api.routes.openapi import document
from nopass.app import create_app
from tests.support import harness
from tests.support.config import JWT_ID, MACHINE_ID, NATIVE_ID, WEB_ID, machine_config

ORIGIN = "http://127.0.0.1:8123"  # the seeded tenant's domain: requests carry it as Host
CLIENTS = [NATIVE_ID, WEB_ID, JWT_ID, MACHINE_ID, "other-app-client-id", "no-such-client"]
CONNECTIONS = ["email", "sms", "legacy-db", "no-such-connection"]
IDENTIFIERS = ["person@example.com", "+15550000001"]
SPA_ORIGIN = "https://app.acme.example"  # allowed for cross-origin authentication
ORIGINS = [SPA_ORIGIN, "https://evil.example"]
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


def narrowed(doc: dict[str, Any]) -> dict[str, Any]:
    """The served document, with identifier fields limited to what the tenant knows (and
    one unknown value each), so that fuzzing reaches past the lookups."""
    doc = copy.deepcopy(doc)
    for schema in doc["components"]["schemas"].values():
        properties = schema.get("properties", {})
        for name, values in (
            ("client_id", CLIENTS),
            ("connection", CONNECTIONS),
            ("realm", CONNECTIONS),
            ("username", IDENTIFIERS),
        ):
            if name in properties:
                properties[name] = {"type": "string", "enum": values}
    [origin] = doc["paths"]["/co/authenticate"]["post"]["parameters"]
    origin["schema"] = {"type": "string", "enum": ORIGINS}
    return doc


def config() -> dict[str, Any]:
    """The test tenant with a machine-to-machine client and its grants, the Native App
    allowed to authenticate cross-origin."""
    result = machine_config(ORIGIN)
    native = next(c for c in result["clients"] if c["client_id"] == NATIVE_ID)
    native.update(cross_origin_auth=True, web_origins=[SPA_ORIGIN])
    return result


schema = schemathesis.openapi.from_dict(narrowed(json.loads(document())))
schema.config.generation.update(
    modes=[GenerationMode.POSITIVE, GenerationMode.NEGATIVE], deterministic=True, database="none"
)
schema.config.phases.update(phases=["examples", "coverage", "fuzzing"])


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FastAPI]:
    url = f"sqlite:///{tmp_path_factory.mktemp('schemathesis') / 'nopass.db'}"
    asyncio.run(harness.prepare_database(url, config()))
    app = create_app(harness.test_settings(url))
    try:
        yield app
    finally:
        shutdown_lifespans()  # the ASGI transport started the app's lifespan; stop it here


async def test_the_document_is_served_and_names_every_json_endpoint(app: FastAPI) -> None:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url=ORIGIN) as http:
        response = await http.get("/openapi.json")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    served = response.json()
    assert served == json.loads(document())
    assert served["openapi"].startswith("3.")
    assert set(served["paths"]) == {
        "/passwordless/start",
        "/oauth/token",
        "/oauth/revoke",
        "/passwordless/verify",
        "/co/authenticate",
        "/userinfo",
        "/.well-known/openid-configuration",
        "/.well-known/jwks.json",
    }


@schema.parametrize()
@settings(
    max_examples=100,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
)
def test_no_server_error_and_every_answer_is_documented(case: Any, app: FastAPI) -> None:
    case.call_and_validate(app=app, base_url=ORIGIN, checks=CHECKS)
