"""Clients through the Management API (docs/specs/management-api.md §5.1).

A client is an entry of the tenant's ``clients:`` in its ``nopass apply`` document; every
change goes through ``configuration.change``, so what the API sets is what the file can say.
The API speaks Auth0's names: ``cross_origin_authentication`` is the file's
``cross_origin_auth``; ``signing_keys``, ``tenant``, ``global`` and ``callback_url_template``
are read-only and ignored on input, as is a ``client_id`` equal to the client's own; any other
unknown property is Auth0's 400 ``Additional properties not allowed``.

Client secrets are stored hashed: ``client_secret`` is shown only in the answer that made one
(create, rotate-secret, a PATCH that sets one or makes the client confidential). Deleting a
client deletes its client grants and the refresh tokens issued to it, and takes it out of every
connection's ``enabled_clients``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from nopass.config_file import ClientSpec
from nopass.core import ids
from nopass.core.errors import InvalidManagementRequest, ObjectConflict, ObjectNotFound
from nopass.core.models import TenantConfig
from nopass.core.ports import UnitOfWork
from nopass.flows.management import configuration
from nopass.flows.management.caller import ApiCall, ManagementDeps
from nopass.flows.management.configuration import Changed, Document

READ_ONLY = frozenset({"signing_keys", "tenant", "global", "callback_url_template"})
API_NAMES = {"cross_origin_authentication": "cross_origin_auth"}  # Auth0's -> the file's
WRITABLE = frozenset(ClientSpec.model_fields) | frozenset(API_NAMES)
MERGED = frozenset({"jwt_configuration", "refresh_token"})  # a PATCH merges these objects
HIDDEN = frozenset({"client_authentication_methods"})  # accepted, never shown
KIND = "client"


def additional_properties(body: Mapping[str, Any], allowed: frozenset[str]) -> None:
    """Auth0's refusal of a property its schema does not have."""
    unknown = [key for key in body if key not in allowed]
    if unknown:
        raise InvalidManagementRequest(
            f"Payload validation error: 'Additional properties not allowed: {unknown[0]}'."
        )


def _edits(body: Mapping[str, Any], client_id: str | None) -> dict[str, Any]:
    """The body's writable properties, under the file's names."""
    additional_properties(body, WRITABLE | READ_ONLY)
    edits: dict[str, Any] = {}
    for key, value in body.items():
        if key in READ_ONLY:
            continue
        if key == "client_id":
            if client_id is not None and value != client_id:
                raise InvalidManagementRequest(
                    "Payload validation error: 'client_id' cannot change."
                )
            if client_id is not None:
                continue
        edits[API_NAMES.get(key, key)] = value
    return edits


def view(entry: Mapping[str, Any], tenant_name: str) -> dict[str, Any]:
    """A client of the document in Auth0's shape (no secret: it is stored hashed)."""
    shown = {k: v for k, v in entry.items() if k not in HIDDEN and k != "client_secret"}
    shown.setdefault("is_first_party", True)
    shown["cross_origin_authentication"] = bool(entry.get("cross_origin_auth", False))
    shown["tenant"] = tenant_name
    shown["global"] = False
    shown["callback_url_template"] = False
    return shown


def _index(document: Document, client_id: str) -> int:
    for i, entry in enumerate(document["clients"]):
        if entry.get("client_id") == client_id:
            return i
    raise ObjectNotFound(KIND, client_id)


def _entry(document: Document, client_id: str) -> dict[str, Any]:
    entry: dict[str, Any] = document["clients"][_index(document, client_id)]
    return entry


def _name_free(document: Document, name: object, client_id: str | None) -> None:
    for entry in document["clients"]:
        if entry.get("name") == name and entry.get("client_id") != client_id:
            raise ObjectConflict(f"A client named {name!r} already exists.")


def _answer(
    changed: Changed, tenant: TenantConfig, client_id: str, secret: str | None
) -> dict[str, Any]:
    shown = view(_entry(changed.document, client_id), tenant.tenant.name)
    generated = next(
        (
            c.get("client_secret")
            for c in changed.summary.get("clients", [])
            if c.get("client_id") == client_id
        ),
        None,
    )
    if secret or generated:
        shown["client_secret"] = secret or generated
    return shown


async def list_clients(tenant: TenantConfig, deps: ManagementDeps) -> list[dict[str, Any]]:
    document = await configuration.read(tenant, deps)
    return [view(entry, tenant.tenant.name) for entry in document["clients"]]


async def get_client(tenant: TenantConfig, client_id: str, deps: ManagementDeps) -> dict[str, Any]:
    document = await configuration.read(tenant, deps)
    return view(_entry(document, client_id), tenant.tenant.name)


async def create_client(
    tenant: TenantConfig, body: Mapping[str, Any], call: ApiCall, deps: ManagementDeps
) -> dict[str, Any]:
    """POST /clients: 201 with the new client and, when confidential, its secret."""
    edits = _edits(body, None)
    if "name" not in edits:
        raise InvalidManagementRequest(
            "Payload validation error: 'Missing required property: name'."
        )
    client_id = str(edits.pop("client_id", None) or ids.client_id())
    if edits.get("app_type") == "non_interactive":  # Auth0's default for a machine client
        edits.setdefault("grant_types", ["client_credentials"])
    edits = {k: v for k, v in edits.items() if v is not None}

    def edit(document: Document) -> str:
        _name_free(document, edits["name"], None)
        if any(c.get("client_id") == client_id for c in document["clients"]):
            raise ObjectConflict(f"A client with client_id {client_id!r} already exists.")
        document["clients"].append({"client_id": client_id, **edits})
        return f"clients[{len(document['clients']) - 1}]"

    changed = await configuration.change(
        tenant, call, deps, edit, "Create a client", client_id=client_id
    )
    return _answer(changed, tenant, client_id, edits.get("client_secret"))


async def update_client(
    tenant: TenantConfig,
    client_id: str,
    body: Mapping[str, Any],
    call: ApiCall,
    deps: ManagementDeps,
) -> dict[str, Any]:
    """PATCH /clients/{id}: the body's properties set (``null`` resets one to its default;
    ``jwt_configuration`` and ``refresh_token`` merged)."""
    edits = _edits(body, client_id)

    def edit(document: Document) -> str:
        i = _index(document, client_id)
        entry = document["clients"][i]
        if "name" in edits:
            _name_free(document, edits["name"], client_id)
        for key, value in edits.items():
            if value is None:
                entry.pop(key, None)
            elif key in MERGED and isinstance(value, dict) and isinstance(entry.get(key), dict):
                entry[key] = {**entry[key], **value}
            else:
                entry[key] = value
        return f"clients[{i}]"

    changed = await configuration.change(
        tenant, call, deps, edit, "Update a client", client_id=client_id
    )
    return _answer(changed, tenant, client_id, edits.get("client_secret"))


async def rotate_secret(
    tenant: TenantConfig, client_id: str, call: ApiCall, deps: ManagementDeps
) -> dict[str, Any]:
    """POST /clients/{id}/rotate-secret: a new secret, the old one no longer accepted."""
    secret = ids.client_secret()

    def edit(document: Document) -> str:
        i = _index(document, client_id)
        document["clients"][i]["client_secret"] = secret
        return f"clients[{i}]"

    changed = await configuration.change(
        tenant, call, deps, edit, "Rotate a client secret", client_id=client_id
    )
    return _answer(changed, tenant, client_id, secret)


async def delete_client(
    tenant: TenantConfig, client_id: str, call: ApiCall, deps: ManagementDeps
) -> None:
    """DELETE /clients/{id}: the client, its grants, its refresh tokens and its place in the
    connections' ``enabled_clients``."""

    def edit(document: Document) -> None:
        del document["clients"][_index(document, client_id)]
        document["client_grants"] = [
            g for g in document["client_grants"] if g.get("client_id") != client_id
        ]
        for connection in document["connections"]:
            connection["enabled_clients"] = [
                c for c in connection.get("enabled_clients", []) if c != client_id
            ]

    async def forget_tokens(uow: UnitOfWork) -> None:
        await uow.refresh_tokens.delete_for_client(tenant.tenant.id, client_id)

    await configuration.change(
        tenant, call, deps, edit, "Delete a client", also=forget_tokens, client_id=client_id
    )
