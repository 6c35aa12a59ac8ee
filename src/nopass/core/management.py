"""The Management API as a resource server (docs/specs/management-api.md §2.1, §5.3, §9).

Every tenant has it built in, named exactly "Auth0 Management API" (auth0-deploy-cli skips
it by that name), at the audience ``https://{domain}/api/v2/`` of the domain a request came
to, with the trailing slash the SDKs send. It cannot be deleted; its scopes are the ones the
endpoints check.
"""

from __future__ import annotations

MANAGEMENT_API_NAME = "Auth0 Management API"
MANAGEMENT_API_PATH = "/api/v2/"
MANAGEMENT_TOKEN_LIFETIME = 86400  # seconds, Auth0's default for Management API tokens

MANAGEMENT_SCOPES = (
    "read:users",
    "create:users",
    "update:users",
    "delete:users",
    "update:users_app_metadata",
    "read:logs",
    "read:logs_users",
    "read:sessions",
    "delete:sessions",
    "read:refresh_tokens",
    "delete:refresh_tokens",
    "read:clients",
    "create:clients",
    "update:clients",
    "delete:clients",
    "read:client_keys",
    "update:client_keys",
    "read:client_summary",
    "read:client_credentials",
    "update:client_credentials",
    "read:connections",
    "create:connections",
    "update:connections",
    "delete:connections",
    "read:resource_servers",
    "create:resource_servers",
    "update:resource_servers",
    "delete:resource_servers",
    "read:client_grants",
    "create:client_grants",
    "update:client_grants",
    "delete:client_grants",
    "read:tenant_settings",
    "update:tenant_settings",
)


def management_audience(origin: str) -> str:
    """The Management API's audience at one of the tenant's origins (``https://host``)."""
    return origin.rstrip("/") + MANAGEMENT_API_PATH
