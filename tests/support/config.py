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
