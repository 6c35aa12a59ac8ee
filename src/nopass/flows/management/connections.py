"""Connections through the Management API (docs/specs/management-api.md §5.2).

A connection is the ``connections`` entry of the tenant's ``nopass apply`` document: reads
take it from ``configuration.read``, writes edit the document and store it through
``configuration.change``, validated as ``nopass apply --prune`` validates a file (so an
option nopass interprets is checked and named, ``options.totp.length: ...``, and any other
option key is kept as given). The API creates ``email`` and ``sms`` connections only; a
connection's ``name`` and ``strategy`` never change; ``options`` is replaced wholesale.
Deleting a connection deletes its users, their sessions and refresh tokens, as Auth0 does.

Secrets in options (``twilio_token``, ``gateway_authentication.secret``) are stored as the
file stores them and answered to ``read:connections`` callers, as Auth0 answers them (a
caller must send the entire ``options`` on each change); audit events name the connection
only, never an option's value.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from nopass.core import ids
from nopass.core.errors import InvalidManagementRequest, ObjectConflict, ObjectNotFound
from nopass.core.models import TenantConfig
from nopass.core.ports import UnitOfWork
from nopass.flows.management import configuration
from nopass.flows.management.caller import ApiCall, ManagementDeps

Document = dict[str, Any]

CREATABLE_STRATEGIES = ("email", "sms")
SETTABLE = (
    "display_name",
    "options",
    "enabled_clients",
    "is_domain_connection",
    "realms",
    "metadata",
    "show_as_button",
)
FIXED = ("name", "strategy")  # on create only; a change may repeat them unchanged
MAX_CLIENT_CHANGES = 50  # deploy-cli sends its enabled-client changes in chunks of 50
KIND = "connection"


@dataclass(frozen=True, slots=True)
class ConnectionFilter:
    strategies: frozenset[str] = frozenset()  # empty: any strategy
    name: str | None = None  # exact


@dataclass(frozen=True, slots=True)
class ClientChange:
    client_id: str
    enabled: bool


def _invalid(message: str) -> InvalidManagementRequest:
    return InvalidManagementRequest(f"Payload validation error: {message}")


def _find(document: Document, connection_id: str) -> tuple[int, Document]:
    for i, entry in enumerate(document["connections"]):
        if entry.get("id") == connection_id:
            return i, entry
    raise ObjectNotFound(KIND, connection_id)


async def list_connections(
    tenant: TenantConfig, wanted: ConnectionFilter, deps: ManagementDeps
) -> list[Document]:
    """The tenant's connections that pass ``wanted``, by name."""
    document = await configuration.read(tenant, deps)
    return [
        c
        for c in document["connections"]
        if (not wanted.strategies or c["strategy"] in wanted.strategies)
        and (wanted.name is None or c["name"] == wanted.name)
    ]


async def get_connection(
    tenant: TenantConfig, connection_id: str, deps: ManagementDeps
) -> Document:
    return _find(await configuration.read(tenant, deps), connection_id)[1]


def _client_ids(document: Document, refs: object, key: str = "enabled_clients") -> list[str]:
    """Client ids of the tenant (the API names clients by client_id, never by name)."""
    if not isinstance(refs, list) or not all(isinstance(r, str) for r in refs):
        raise _invalid(f"{key}: must be an array of client ids")
    known = {c["client_id"] for c in document["clients"]}
    for ref in refs:
        if ref not in known:
            raise _invalid(f"{key}: unknown client {ref!r}")
    return sorted(set(refs))


def _settable(document: Document, body: Document, entry: Document) -> None:
    """Put the settable properties of ``body`` on ``entry`` (options as given: whole)."""
    for key, value in body.items():
        if key == "options":
            if not isinstance(value, dict):
                raise _invalid("options: must be an object")
            entry["options"] = value
        elif key == "enabled_clients":
            entry["enabled_clients"] = _client_ids(document, value)
        elif value is None:
            entry.pop(key, None)  # back to Auth0's default
        else:
            entry[key] = value


def _unknown(body: Document, allowed: Sequence[str]) -> None:
    extra = sorted(k for k in body if k not in allowed)
    if extra:
        raise _invalid(f"Additional properties not allowed: {', '.join(extra)}")


async def create_connection(
    tenant: TenantConfig, body: Document, call: ApiCall, deps: ManagementDeps
) -> Document:
    _unknown(body, (*FIXED, *SETTABLE))
    name, strategy = body.get("name"), body.get("strategy")
    if not isinstance(name, str) or not name:
        raise _invalid("Missing required property: name")
    if not isinstance(strategy, str) or not strategy:
        raise _invalid("Missing required property: strategy")
    if strategy not in CREATABLE_STRATEGIES:
        raise _invalid(
            f"strategy: {strategy!r} is not supported; nopass creates passwordless "
            f"connections only ({', '.join(CREATABLE_STRATEGIES)})"
        )
    connection_id = ids.connection_id()

    def edit(document: Document) -> str:
        if any(c["name"] == name for c in document["connections"]):
            raise ObjectConflict("A connection with the same name already exists")
        entry: Document = {"id": connection_id, "name": name, "strategy": strategy}
        entry.update({"enabled_clients": [], "options": {}})
        _settable(document, {k: v for k, v in body.items() if k not in FIXED}, entry)
        document["connections"].append(entry)
        return f"connections[{len(document['connections']) - 1}]"

    changed = await configuration.change(
        tenant,
        call,
        deps,
        edit,
        "Create a connection",
        connection=name,
        connection_id=connection_id,
        strategy=strategy,
    )
    return _find(changed.document, connection_id)[1]


async def update_connection(
    tenant: TenantConfig, connection_id: str, body: Document, call: ApiCall, deps: ManagementDeps
) -> Document:
    _unknown(body, ("id", *FIXED, *SETTABLE))
    name = ""

    def edit(document: Document) -> str:
        nonlocal name
        i, entry = _find(document, connection_id)
        name = entry["name"]
        for key in ("id", *FIXED):
            if key in body and body[key] != entry[key]:
                raise _invalid(f"{key}: a connection's {key} cannot change")
        _settable(document, {k: v for k, v in body.items() if k in SETTABLE}, entry)
        return f"connections[{i}]"

    changed = await configuration.change(
        tenant,
        call,
        deps,
        edit,
        "Update a connection",
        connection_id=connection_id,
        changed=sorted(k for k in body if k in SETTABLE),  # names only: options hold secrets
    )
    return _find(changed.document, connection_id)[1]


async def delete_connection(
    tenant: TenantConfig, connection_id: str, call: ApiCall, deps: ManagementDeps
) -> None:
    """The connection, its users with their sessions and refresh tokens, and its test
    identities go."""
    tenant_id = tenant.tenant.id
    deleted: list[str] = []

    def edit(document: Document) -> None:
        i, entry = _find(document, connection_id)
        del document["connections"][i]
        identities = document["tenant"].get("test_identities", [])
        document["tenant"]["test_identities"] = [
            t for t in identities if t.get("connection") != entry["name"]
        ]

    async def users_too(uow: UnitOfWork) -> None:
        deleted.extend(await uow.users.delete_for_connection(tenant_id, connection_id))
        for user_id in deleted:
            await uow.sessions.delete_for_user(tenant_id, user_id)
            await uow.refresh_tokens.delete_for_user(tenant_id, user_id)

    await configuration.change(
        tenant,
        call,
        deps,
        edit,
        "Delete a connection",
        also=users_too,
        connection_id=connection_id,
    )


async def enabled_clients(
    tenant: TenantConfig, connection_id: str, deps: ManagementDeps
) -> list[str]:
    """The client ids of the clients that may use the connection, sorted."""
    entry = await get_connection(tenant, connection_id, deps)
    return sorted(entry.get("enabled_clients", []))


def client_changes(body: object) -> list[ClientChange]:
    """``[{"client_id": str, "status": bool}, ...]``, at most 50."""
    if not isinstance(body, list):
        raise _invalid("the body must be an array of {client_id, status}")
    if len(body) > MAX_CLIENT_CHANGES:
        raise _invalid(f"at most {MAX_CLIENT_CHANGES} changes per call")
    changes = []
    for i, item in enumerate(body):
        if not isinstance(item, dict) or set(item) != {"client_id", "status"}:
            raise _invalid(f"[{i}]: must be an object with client_id and status")
        client_id, status = item["client_id"], item["status"]
        if not isinstance(client_id, str) or not isinstance(status, bool):
            raise _invalid(f"[{i}]: client_id must be a string and status a boolean")
        changes.append(ClientChange(client_id, status))
    return changes


async def change_enabled_clients(
    tenant: TenantConfig,
    connection_id: str,
    changes: Sequence[ClientChange],
    call: ApiCall,
    deps: ManagementDeps,
) -> None:
    def edit(document: Document) -> str:
        i, entry = _find(document, connection_id)
        _client_ids(document, [c.client_id for c in changes], "client_id")
        enabled = set(entry.get("enabled_clients", []))
        for change in changes:
            if change.enabled:
                enabled.add(change.client_id)
            else:
                enabled.discard(change.client_id)
        entry["enabled_clients"] = sorted(enabled)
        return f"connections[{i}]"

    await configuration.change(
        tenant,
        call,
        deps,
        edit,
        "Update the enabled clients of a connection",
        connection_id=connection_id,
        enabled=sorted(c.client_id for c in changes if c.enabled),
        disabled=sorted(c.client_id for c in changes if not c.enabled),
    )
