"""The OpenID Provider metadata (OIDC Discovery 1.0 §3), advertising only what nopass serves."""

from __future__ import annotations

from typing import Any

from nopass.core.models import PASSWORDLESS_OTP_GRANT


def openid_configuration(issuer: str) -> dict[str, Any]:
    return {
        "issuer": issuer,
        "authorization_endpoint": f"{issuer}authorize",
        "token_endpoint": f"{issuer}oauth/token",
        "userinfo_endpoint": f"{issuer}userinfo",
        "jwks_uri": f"{issuer}.well-known/jwks.json",
        "revocation_endpoint": f"{issuer}oauth/revoke",
        "scopes_supported": ["openid", "profile", "email", "phone", "offline_access"],
        "end_session_endpoint": f"{issuer}oidc/logout",  # RP-Initiated Logout 1.0
        "response_types_supported": ["code", "token", "id_token", "id_token token"],
        "response_modes_supported": ["query", "fragment", "form_post", "web_message"],
        "code_challenge_methods_supported": ["S256"],
        "grant_types_supported": [
            PASSWORDLESS_OTP_GRANT,
            "authorization_code",
            "implicit",
            "refresh_token",
            "client_credentials",
        ],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "token_endpoint_auth_methods_supported": [
            "none",
            "client_secret_post",
            "client_secret_basic",
            "private_key_jwt",
        ],
        "token_endpoint_auth_signing_alg_values_supported": ["RS256", "PS256", "ES256"],
        "revocation_endpoint_auth_methods_supported": [
            "none",
            "client_secret_post",
            "client_secret_basic",
            "private_key_jwt",
        ],
        "claims_supported": [
            "aud",
            "email",
            "email_verified",
            "exp",
            "iat",
            "iss",
            "name",
            "nickname",
            "nonce",
            "phone_number",
            "phone_verified",
            "picture",
            "sub",
            "updated_at",
        ],
        "request_parameter_supported": False,
        "request_uri_parameter_supported": False,
    }
