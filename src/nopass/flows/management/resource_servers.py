"""Resource servers (APIs) through the Management API (docs/specs/management-api.md §5.3).

An API is an entry of the tenant's ``resource_servers:`` in its ``nopass apply`` document,
changed through ``configuration.change``. Its ``id`` (24 hex) is derived from the tenant and
the immutable ``identifier``, so it is the same after any ``nopass apply``; ``GET`` takes the
id or the identifier. The built-in "Auth0 Management API" (``https://{domain}/api/v2/`` at the
domain asked, ``is_system: true``, the scopes the endpoints check) is listed first and cannot
be changed or deleted. Deleting an API deletes its client grants.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from nopass.config_file import ResourceServerSpec
from nopass.core import ids
from nopass.core.errors import (
    InvalidManagementRequest,
    ObjectConflict,
    ObjectNotFound,
    SystemObjectProtected,
)
from nopass.core.management import (
    MANAGEMENT_API_NAME,
    MANAGEMENT_SCOPES,
    MANAGEMENT_TOKEN_LIFETIME,
    management_audience,
)
from nopass.core.models import TenantConfig
from nopass.flows.management import configuration
from nopass.flows.management.caller import ApiCall, ManagementDeps
from nopass.flows.management.clients import additional_properties
from nopass.flows.management.configuration import Document

KIND = "resource_server"
READ_ONLY = frozenset({"id", "is_system", "client_id"})
WRITABLE = frozenset(ResourceServerSpec.model_fields)
DEFAULTS = {"signing_alg": "RS256", "skip_consent_for_verifiable_first_party_clients": False}
PROTECTED = f"The {MANAGEMENT_API_NAME} is a system API: it cannot be changed or deleted."


def view(entry: Mapping[str, Any], tenant_id: str) -> dict[str, Any]:
    shown: dict[str, Any] = {"id": ids.resource_server_id(tenant_id, entry["identifier"])}
    shown.update(entry)
    for key, value in DEFAULTS.items():
        shown.setdefault(key, value)
    shown.setdefault("token_lifetime_for_web", min(int(entry["token_lifetime"]), 7200))
    shown["is_system"] = False
    return shown


def builtin(tenant_id: str, origin: str) -> dict[str, Any]:
    """The Management API as Auth0 lists it, at the origin the request came to."""
    identifier = management_audience(origin)
    return {
        "id": ids.resource_server_id(tenant_id, identifier),
        "name": MANAGEMENT_API_NAME,
        "identifier": identifier,
        "scopes": [{"value": s, "description": s} for s in MANAGEMENT_SCOPES],
        "token_lifetime": MANAGEMENT_TOKEN_LIFETIME,
        "token_lifetime_for_web": 7200,
        "allow_offline_access": False,
        "skip_consent_for_verifiable_first_party_clients": False,
        "signing_alg": "RS256",
        "is_system": True,
    }


def _builtins(document: Document) -> set[str]:
    return {management_audience(origin) for origin in document["tenant"]["domains"]}


def _index(document: Document, tenant_id: str, key: str) -> int:
    """The API whose id or identifier is ``key`` (refusing the built-in one)."""
    if key in _builtins(document) or any(
        key == ids.resource_server_id(tenant_id, a) for a in _builtins(document)
    ):
        raise SystemObjectProtected(PROTECTED)
    for i, entry in enumerate(document["resource_servers"]):
        if key in (entry["identifier"], ids.resource_server_id(tenant_id, entry["identifier"])):
            return i
    raise ObjectNotFound(KIND, key)


async def list_resource_servers(
    tenant: TenantConfig, origin: str, deps: ManagementDeps
) -> list[dict[str, Any]]:
    tenant_id = tenant.tenant.id
    document = await configuration.read(tenant, deps)
    return [builtin(tenant_id, origin)] + [
        view(entry, tenant_id) for entry in document["resource_servers"]
    ]


async def get_resource_server(
    tenant: TenantConfig, origin: str, key: str, deps: ManagementDeps
) -> dict[str, Any]:
    for found in await list_resource_servers(tenant, origin, deps):
        if key in (found["id"], found["identifier"]):
            return found
    raise ObjectNotFound(KIND, key)


def _edits(body: Mapping[str, Any]) -> dict[str, Any]:
    additional_properties(body, WRITABLE | READ_ONLY)
    return {k: v for k, v in body.items() if k not in READ_ONLY}


async def create_resource_server(
    tenant: TenantConfig, body: Mapping[str, Any], call: ApiCall, deps: ManagementDeps
) -> dict[str, Any]:
    edits = {k: v for k, v in _edits(body).items() if v is not None}
    identifier = edits.get("identifier")
    if not identifier:
        raise InvalidManagementRequest(
            "Payload validation error: 'Missing required property: identifier'."
        )
    edits.setdefault("name", identifier)

    def edit(document: Document) -> str:
        taken = {entry["identifier"] for entry in document["resource_servers"]}
        if identifier in taken or identifier in _builtins(document):
            raise ObjectConflict(
                f"A resource server with identifier {identifier!r} already exists."
            )
        document["resource_servers"].append(edits)
        return f"resource_servers[{len(document['resource_servers']) - 1}]"

    changed = await configuration.change(
        tenant, call, deps, edit, "Create a resource server", identifier=identifier
    )
    [entry] = [e for e in changed.document["resource_servers"] if e["identifier"] == identifier]
    return view(entry, tenant.tenant.id)


async def update_resource_server(
    tenant: TenantConfig, key: str, body: Mapping[str, Any], call: ApiCall, deps: ManagementDeps
) -> dict[str, Any]:
    """PATCH: the body's properties set (``null`` resets one); ``identifier`` cannot change."""
    edits = _edits(body)
    tenant_id = tenant.tenant.id
    found: dict[str, str] = {}

    def edit(document: Document) -> str:
        i = _index(document, tenant_id, key)
        entry = document["resource_servers"][i]
        found["identifier"] = entry["identifier"]
        if edits.get("identifier", entry["identifier"]) != entry["identifier"]:
            raise InvalidManagementRequest("Payload validation error: 'identifier' cannot change.")
        for name, value in edits.items():
            if value is None and name != "name":
                entry.pop(name, None)
            elif value is not None:
                entry[name] = value
        return f"resource_servers[{i}]"

    changed = await configuration.change(
        tenant, call, deps, edit, "Update a resource server", resource_server=key
    )
    [entry] = [
        e for e in changed.document["resource_servers"] if e["identifier"] == found["identifier"]
    ]
    return view(entry, tenant_id)


async def delete_resource_server(
    tenant: TenantConfig, key: str, call: ApiCall, deps: ManagementDeps
) -> None:
    """DELETE: the API and every client grant for its audience."""
    tenant_id = tenant.tenant.id

    def edit(document: Document) -> None:
        entry = document["resource_servers"].pop(_index(document, tenant_id, key))
        document["client_grants"] = [
            g for g in document["client_grants"] if g["audience"] != entry["identifier"]
        ]

    await configuration.change(
        tenant, call, deps, edit, "Delete a resource server", resource_server=key
    )
