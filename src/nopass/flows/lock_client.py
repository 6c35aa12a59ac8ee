"""What ``GET /client/{client_id}.js`` tells Lock about a client (docs/specs/auth0-wire.md §5.8)."""

from __future__ import annotations

from nopass.core.models import TenantConfig


def lock_client(config: TenantConfig, client_id: str) -> dict[str, object] | None:
    """What Lock's ``Auth0.setClient`` needs: the passwordless connections enabled for the
    client, grouped by strategy. None for a client the tenant does not have."""
    if client_id not in config.clients:
        return None
    by_strategy: dict[str, list[dict[str, str]]] = {}
    for connection in sorted(config.connections.values(), key=lambda c: (c.strategy, c.name)):
        if connection.is_passwordless and client_id in connection.enabled_clients:
            by_strategy.setdefault(connection.strategy, []).append({"name": connection.name})
    return {
        "id": client_id,
        "tenant": config.tenant.name,
        "subscription": "free",
        "strategies": [{"name": s, "connections": c} for s, c in by_strategy.items()],
    }
