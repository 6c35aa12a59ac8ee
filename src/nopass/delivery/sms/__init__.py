"""SMS providers of passwordless ``sms`` connections (docs/specs/auth0-wire.md §6.2).

``SmsRouter`` picks the sender named by the connection's ``provider``: Auth0's
``"twilio"`` or ``"sms_gateway"`` (custom gateway). A connection without ``provider`` uses
the ``"outbox"`` provider (``core.options.SmsOptions``, as the configuration file
documents), which is queued elsewhere and never reaches this router.
"""

from __future__ import annotations

import httpx

from nopass.core.clock import Clock
from nopass.core.models import Connection, Message
from nopass.core.options import OUTBOX_PROVIDER, SmsOptions
from nopass.core.ports import RequestInfo, SmsSender
from nopass.delivery.sms.gateway import GatewaySmsSender
from nopass.delivery.sms.twilio import TwilioSmsSender

__all__ = ["GatewaySmsSender", "SmsRouter", "TwilioSmsSender"]


class SmsRouter:
    """The ``SmsSender`` port for every synchronous provider, chosen per connection."""

    def __init__(
        self, client: httpx.AsyncClient, timeout: float = 10.0, *, clock: Clock | None = None
    ) -> None:
        self._senders: dict[str, SmsSender] = {
            "sms_gateway": GatewaySmsSender(client, timeout, clock=clock),
            "twilio": TwilioSmsSender(client, timeout),
        }

    async def send(self, connection: Connection, message: Message, request: RequestInfo) -> None:
        options = connection.options
        provider = options.provider if isinstance(options, SmsOptions) else OUTBOX_PROVIDER
        sender = self._senders.get(provider)
        if sender is None:
            raise ValueError(f"no synchronous SMS sender for provider {provider!r}")
        await sender.send(connection, message, request)
