"""Send text messages through a custom SMS gateway, as Auth0's ``sms_gateway`` provider does.

Follows Auth0 docs "Set Up Custom SMS Gateway for Passwordless Connections"
(``auth0/docs`` ``articles/connections/passwordless/guides/use-sms-gateway-passwordless.md``;
docs/specs/auth0-wire.md §6.2 and §2.5 rows 12-13):

* ``POST options.gateway_url`` with JSON ``{"recipient", "body", "sender"}``, plus
  ``"req": {"ip", "user-agent"}`` when ``options.forward_req_info`` is true (the docs show
  both ``true`` and ``"true"``).
* ``options.gateway_authentication`` ``{method: "bearer", subject, audience, secret,
  secret_base64_encoded}`` adds ``Authorization: Bearer <JWT>``: the docs only say the token
  "contains" the subject and audience and "is signed with" the secret (base64url-encoded when
  ``secret_base64_encoded``). We sign HS256 with ``sub``, ``aud``, ``iat`` and ``exp = iat + 60``.
* Only the HTTP status counts: 2xx is success, 401 is an authentication failure, anything
  else (and a timeout or a network error) is an unexpected response.
"""

from __future__ import annotations

import base64
import binascii
import logging
import warnings
from typing import Any

import httpx
import jwt

from nopass.core.clock import Clock, SystemClock
from nopass.core.errors import DeliveryFailed, DeliveryFailure
from nopass.core.models import Connection, Message
from nopass.core.options import GatewayAuthentication, SmsOptions
from nopass.core.ports import RequestInfo
from nopass.delivery.sms.http import post

__all__ = ["TOKEN_LIFETIME_SECONDS", "GatewaySmsSender", "gateway_token"]

TOKEN_LIFETIME_SECONDS = 60

logger = logging.getLogger(__name__)


def _decode_secret(secret: str) -> bytes:
    """Base64 secret to bytes, accepting the url-safe and standard alphabets, unpadded too."""
    standard = secret.strip().replace("-", "+").replace("_", "/")
    try:
        return base64.b64decode(standard + "=" * (-len(standard) % 4), validate=True)
    except binascii.Error as exc:
        raise ValueError("gateway_authentication.secret is not valid base64") from exc


def gateway_token(authentication: GatewayAuthentication, issued_at: int) -> str:
    """The bearer JWT for ``options.gateway_authentication`` (HS256, 60 s lifetime)."""
    method = authentication.method.lower()
    if method != "bearer":
        raise ValueError(f"unsupported gateway_authentication.method {method!r}")
    secret = authentication.secret
    if not secret:
        raise ValueError("gateway_authentication.secret is required")
    key: bytes = (
        _decode_secret(secret) if authentication.secret_base64_encoded else secret.encode("utf-8")
    )
    claims: dict[str, Any] = {
        "aud": authentication.audience,
        "iat": issued_at,
        "exp": issued_at + TOKEN_LIFETIME_SECONDS,
    }
    if authentication.subject:
        claims["sub"] = authentication.subject
    with warnings.catch_warnings():
        # Auth0 accepts short secrets (its own example has 22 bytes); so must we.
        warnings.simplefilter("ignore", jwt.InsecureKeyLengthWarning)
        return jwt.encode(claims, key, algorithm="HS256")


class GatewaySmsSender:
    """The ``SmsSender`` port for ``provider: "sms_gateway"`` connections."""

    def __init__(
        self, client: httpx.AsyncClient, timeout: float = 10.0, *, clock: Clock | None = None
    ) -> None:
        self._client = client
        self._timeout = timeout
        self._clock = clock or SystemClock()

    async def send(self, connection: Connection, message: Message, request: RequestInfo) -> None:
        options = connection.options
        if not isinstance(options, SmsOptions) or not options.gateway_url:
            raise ValueError("an sms_gateway connection needs gateway_url")
        payload: dict[str, Any] = {
            "recipient": message.recipient,
            "body": message.text,
            "sender": message.sender,
        }
        if options.forward_req_info:
            payload["req"] = {"ip": request.ip, "user-agent": request.user_agent}
        headers: dict[str, str] = {}
        authentication = options.gateway_authentication
        if authentication is not None:
            issued_at = int(self._clock.now().timestamp())
            headers["Authorization"] = "Bearer " + gateway_token(authentication, issued_at)
        response = await post(
            self._client,
            options.gateway_url,
            provider="sms gateway",
            connection_id=connection.id,
            timeout=self._timeout,
            json=payload,
            headers=headers,
        )
        if response.is_success:
            return
        logger.warning(
            "sms gateway answered %s (connection %s)", response.status_code, connection.id
        )
        if response.status_code == 401:
            raise DeliveryFailed(DeliveryFailure.UNAUTHORIZED, status=401)
        raise DeliveryFailed(DeliveryFailure.UNEXPECTED, status=response.status_code)
