"""Tenant configuration files for tests (the `nopass apply` format)."""

from __future__ import annotations

from typing import Any

from nopass.core.models import PASSWORDLESS_OTP_GRANT

NATIVE_ID = "native-app-client-id"
WEB_ID = "web-app-client-id"
JWT_ID = "jwt-app-client-id"
WEB_SECRET = "web-app-secret-0123456789abcdef"
CALLBACK = "https://app.acme.example/callback"


def tenant_config(
    origin: str,
    *,
    name: str = "acme",
    smtp_port: int | None = None,
    sms: dict[str, Any] | None = None,
    public_key_pem: str | None = None,
    email_options: dict[str, Any] | None = None,
) -> dict[str, Any]:
    clients: list[dict[str, Any]] = [
        {
            "name": "Native App",
            "client_id": NATIVE_ID,
            "app_type": "native",
            "token_endpoint_auth_method": "none",
            "grant_types": [PASSWORDLESS_OTP_GRANT, "authorization_code", "refresh_token"],
            "callbacks": [CALLBACK],
        },
        {
            "name": "Web App",
            "client_id": WEB_ID,
            "app_type": "regular_web",
            "token_endpoint_auth_method": "client_secret_post",
            "client_secret": WEB_SECRET,
            "callbacks": ["https://web.acme.example/cb"],
        },
        {"name": "Other App", "client_id": "other-app-client-id", "app_type": "native"},
    ]
    if public_key_pem is not None:
        clients.append(
            {
                "name": "JWT App",
                "client_id": JWT_ID,
                "app_type": "regular_web",
                "token_endpoint_auth_method": "private_key_jwt",
                "client_authentication_methods": {
                    "private_key_jwt": {
                        "credentials": [{"credential_type": "public_key", "pem": public_key_pem}]
                    }
                },
            }
        )
    enabled = [c["name"] for c in clients if c["name"] != "Other App"]
    config: dict[str, Any] = {
        "tenant": {"name": name, "domains": [origin]},
        "clients": clients,
        "connections": [
            {
                "name": "email",
                "strategy": "email",
                "enabled_clients": enabled,
                "options": email_options or {},
            },
            {
                "name": "sms",
                "strategy": "sms",
                "enabled_clients": enabled,
                "options": sms or {"provider": "outbox"},
            },
            {"name": "legacy-db", "strategy": "auth0", "enabled_clients": enabled},
        ],
        "email_provider": (
            {
                "name": "smtp",
                "default_from_address": "Acme <login@acme.example>",
                "credentials": {"smtp_host": "127.0.0.1", "smtp_port": smtp_port},
                "settings": {"starttls": "never"},
            }
            if smtp_port is not None
            else {"name": "outbox"}
        ),
    }
    return config


MACHINE_ID = "machine-app-client-id"
MACHINE_SECRET = "machine-app-secret-0123456789abcdef"
API_ID = "https://api.acme.example/"
API_SCOPES = ("read:things", "write:things", "delete:things")


def machine_config(origin: str, **kwargs: Any) -> dict[str, Any]:
    """``tenant_config`` plus a confidential ``non_interactive`` client holding the
    ``client_credentials`` grant type (secret ``MACHINE_SECRET``), an API ``API_ID`` that
    defines ``API_SCOPES`` with a 2-hour token lifetime, and client grants: read:things and
    write:things on the API, read:users and read:logs on the Management API at ``origin``."""
    config = tenant_config(origin, **kwargs)
    config["clients"].append(
        {
            "name": "Machine App",
            "client_id": MACHINE_ID,
            "app_type": "non_interactive",
            "token_endpoint_auth_method": "client_secret_post",
            "client_secret": MACHINE_SECRET,
            "grant_types": ["client_credentials"],
        }
    )
    config["resource_servers"] = [
        {
            "identifier": API_ID,
            "name": "Acme API",
            "token_lifetime": 7200,
            "scopes": [{"value": s, "description": s.replace(":", " ")} for s in API_SCOPES],
        }
    ]
    management = config["tenant"]["domains"][0].rstrip("/") + "/api/v2/"
    if "://" not in management:
        management = "https://" + management
    config["client_grants"] = [
        {"client_id": "Machine App", "audience": API_ID, "scope": ["read:things", "write:things"]},
        {"client_id": MACHINE_ID, "audience": management, "scope": ["read:users", "read:logs"]},
    ]
    return config
