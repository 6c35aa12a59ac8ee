"""Client grants through the Management API (docs/specs/management-api.md §2.3).

A grant is an entry of the tenant's ``client_grants:`` in its ``nopass apply`` document,
changed through ``configuration.change``: a confidential client of the tenant may get
client-credentials tokens for one API (``audience``: one of the tenant's or the built-in
Management API) with at most ``scope``, each of which that API defines (400 otherwise). One
grant per (client, audience) (409). Grants are for clients (``subject_type: client``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from nopass.core import ids
from nopass.core.errors import InvalidManagementRequest, ObjectConflict, ObjectNotFound
from nopass.core.management import management_audience
from nopass.core.models import TenantConfig
from nopass.flows.management import configuration
from nopass.flows.management.caller import ApiCall, ManagementDeps
from nopass.flows.management.clients import additional_properties
from nopass.flows.management.configuration import Document

KIND = "client_grant"
SETTINGS = frozenset(
    {"organization_usage", "allow_any_organization", "authorization_details_types"}
)
CREATE = frozenset({"client_id", "audience", "scope", "subject_type"}) | SETTINGS
UPDATE = frozenset({"scope"}) | SETTINGS
READ_ONLY = frozenset({"id", "client_id", "audience", "subject_type", "is_system", "default_for"})


@dataclass(frozen=True, slots=True)
class GrantFilter:
    audience: str | None = None
    client_id: str | None = None
    subject_type: str | None = None
    allow_any_organization: bool | None = None


def view(entry: Mapping[str, Any]) -> dict[str, Any]:
    return {**entry, "subject_type": "client"}


def _matches(grant: Mapping[str, Any], wanted: GrantFilter) -> bool:
    return (
        (wanted.audience is None or grant["audience"] == wanted.audience)
        and (wanted.client_id is None or grant["client_id"] == wanted.client_id)
        and (wanted.subject_type in (None, "client"))
        and (
            wanted.allow_any_organization is None
            or bool(grant.get("allow_any_organization", False)) is wanted.allow_any_organization
        )
    )


async def list_grants(
    tenant: TenantConfig, wanted: GrantFilter, deps: ManagementDeps
) -> list[dict[str, Any]]:
    """The tenant's grants that match, in ``id`` order (a checkpoint is the last id seen)."""
    document = await configuration.read(tenant, deps)
    grants = [view(g) for g in document["client_grants"] if _matches(g, wanted)]
    return sorted(grants, key=lambda g: str(g["id"]))


def _index(document: Document, grant_id: str) -> int:
    for i, grant in enumerate(document["client_grants"]):
        if grant.get("id") == grant_id:
            return i
    raise ObjectNotFound(KIND, grant_id)


async def get_grant(tenant: TenantConfig, grant_id: str, deps: ManagementDeps) -> dict[str, Any]:
    document = await configuration.read(tenant, deps)
    return view(document["client_grants"][_index(document, grant_id)])


def _scope(body: Mapping[str, Any]) -> None:
    scope = body.get("scope")
    if not isinstance(scope, list) or not all(isinstance(s, str) for s in scope):
        raise InvalidManagementRequest(
            "Payload validation error: 'Expected type array but found type "
            f"{type(scope).__name__}' on property scope."
        )


async def create_grant(
    tenant: TenantConfig, body: Mapping[str, Any], call: ApiCall, deps: ManagementDeps
) -> dict[str, Any]:
    """POST /client-grants: 201; 404 for an unknown client or API; 409 for a second grant."""
    additional_properties(body, CREATE)
    for required in ("client_id", "audience", "scope"):
        if required not in body:
            raise InvalidManagementRequest(
                f"Payload validation error: 'Missing required property: {required}'."
            )
    _scope(body)
    if body.get("subject_type", "client") != "client":
        raise InvalidManagementRequest(
            "Payload validation error: subject_type: nopass grants are for clients only."
        )
    for name in ("client_id", "audience"):
        if not isinstance(body[name], str):
            raise InvalidManagementRequest(
                f"Payload validation error: 'Expected type string but found type "
                f"{type(body[name]).__name__}' on property {name}."
            )
    client_id, audience = body["client_id"], body["audience"]
    grant_id = ids.grant_id()
    entry: dict[str, Any] = {"id": grant_id, "client_id": client_id, "audience": audience}
    entry["scope"] = list(body["scope"])
    entry.update({k: v for k, v in body.items() if k in SETTINGS and v is not None})

    def edit(document: Document) -> str:
        if not any(c.get("client_id") == client_id for c in document["clients"]):
            raise ObjectNotFound("client", client_id)
        apis = {r["identifier"] for r in document["resource_servers"]}
        apis |= {management_audience(o) for o in document["tenant"]["domains"]}
        if audience not in apis:
            raise ObjectNotFound("resource_server", audience)
        for grant in document["client_grants"]:
            if grant["client_id"] == client_id and grant["audience"] == audience:
                raise ObjectConflict("A client grant for this client and audience already exists.")
        document["client_grants"].append(entry)
        return f"client_grants[{len(document['client_grants']) - 1}]"

    await configuration.change(
        tenant, call, deps, edit, "Create a client grant", client_id=client_id, audience=audience
    )
    return view(entry)


async def update_grant(
    tenant: TenantConfig,
    grant_id: str,
    body: Mapping[str, Any],
    call: ApiCall,
    deps: ManagementDeps,
) -> dict[str, Any]:
    """PATCH /client-grants/{id}: ``scope`` (and Auth0's organization settings)."""
    additional_properties(body, UPDATE | READ_ONLY)
    if "scope" in body:
        _scope(body)
    edits = {k: v for k, v in body.items() if k in UPDATE}
    found: dict[str, Any] = {}

    def edit(document: Document) -> str:
        i = _index(document, grant_id)
        grant = document["client_grants"][i]
        for key, value in edits.items():
            if value is None:
                grant.pop(key, None)
            else:
                grant[key] = value
        found.update(grant)
        return f"client_grants[{i}]"

    changed = await configuration.change(
        tenant, call, deps, edit, "Update a client grant", grant_id=grant_id
    )
    [grant] = [g for g in changed.document["client_grants"] if g.get("id") == grant_id]
    return view(grant)


async def delete_grant(
    tenant: TenantConfig, grant_id: str, call: ApiCall, deps: ManagementDeps
) -> None:
    def edit(document: Document) -> None:
        del document["client_grants"][_index(document, grant_id)]

    await configuration.change(tenant, call, deps, edit, "Delete a client grant", grant_id=grant_id)
