"""The one place SMS providers call out over HTTP: timeouts and network errors become
``DeliveryFailed`` the same way for every provider ("a timeout counts as an unexpected
response", reported with a gateway-style status)."""

from __future__ import annotations

import logging
from typing import Any

import httpx

from nopass.core.errors import DeliveryFailed, DeliveryFailure

__all__ = ["NETWORK_ERROR_STATUS", "TIMEOUT_STATUS", "post"]

TIMEOUT_STATUS = 504
NETWORK_ERROR_STATUS = 502

logger = logging.getLogger("nopass.sms")


async def post(
    client: httpx.AsyncClient,
    url: str,
    *,
    provider: str,
    connection_id: str,
    timeout: float,
    **kwargs: Any,
) -> httpx.Response:
    try:
        return await client.post(url, timeout=timeout, **kwargs)
    except httpx.TimeoutException as exc:
        logger.warning("%s timed out (connection %s)", provider, connection_id)
        raise DeliveryFailed(DeliveryFailure.UNEXPECTED, status=TIMEOUT_STATUS) from exc
    except httpx.TransportError as exc:
        logger.warning(
            "%s unreachable (connection %s): %s", provider, connection_id, type(exc).__name__
        )
        raise DeliveryFailed(DeliveryFailure.UNEXPECTED, status=NETWORK_ERROR_STATUS) from exc
