"""Send text messages with Twilio, Auth0's default passwordless SMS provider.

Connection options as in Auth0 docs "Configure Passwordless SMS" / ``_setup-sms-twilio.md``
(docs/specs/auth0-wire.md §6.2): ``twilio_sid``, ``twilio_token``, and ``from`` (an E.164 sender) or
``messaging_service_sid`` (preferred when both are set). The call is Twilio's
"Create a Message" (``POST /2010-04-01/Accounts/{AccountSid}/Messages.json``, form-encoded,
HTTP basic auth). A Twilio error document ``{"code", "message", "status"}`` becomes
``DeliveryFailure.REJECTED`` so the API can answer Auth0's
``sms_provider_error`` "<message> (Code: <code>)" (docs/specs/auth0-wire.md §2.5 row 11).
"""

from __future__ import annotations

import logging
from urllib.parse import quote

import httpx

from nopass.core.errors import DeliveryFailed, DeliveryFailure
from nopass.core.models import Connection, Message
from nopass.core.options import SmsOptions
from nopass.core.ports import RequestInfo
from nopass.delivery.sms.http import post

__all__ = ["TWILIO_API", "TwilioSmsSender"]

TWILIO_API = "https://api.twilio.com"

logger = logging.getLogger(__name__)


def _rejection(response: httpx.Response) -> DeliveryFailed:
    """Map a non-2xx Twilio answer: its JSON error document if it has one, else the status."""
    status = response.status_code
    try:
        document = response.json()
    except ValueError:
        document = None
    if isinstance(document, dict) and document.get("message"):
        code = document.get("code")
        return DeliveryFailed(
            DeliveryFailure.REJECTED,
            status=status,
            provider_message=str(document["message"]),
            provider_code=None if code is None else str(code),
        )
    return DeliveryFailed(DeliveryFailure.UNEXPECTED, status=status)


class TwilioSmsSender:
    """The ``SmsSender`` port for ``provider: "twilio"`` connections."""

    def __init__(
        self, client: httpx.AsyncClient, timeout: float = 10.0, *, base_url: str = TWILIO_API
    ) -> None:
        self._client = client
        self._timeout = timeout
        self._base_url = base_url.rstrip("/")

    async def send(self, connection: Connection, message: Message, request: RequestInfo) -> None:
        options = connection.options
        sid = options.twilio_sid if isinstance(options, SmsOptions) else None
        token = options.twilio_token if isinstance(options, SmsOptions) else None
        if not isinstance(options, SmsOptions) or not sid or not token:
            raise ValueError("a twilio connection needs twilio_sid and twilio_token")
        form = {"To": message.recipient, "Body": message.text}
        if options.messaging_service_sid:
            form["MessagingServiceSid"] = options.messaging_service_sid
        elif options.sender or message.sender:
            form["From"] = str(options.sender or message.sender)
        else:
            raise ValueError("a twilio connection needs from or messaging_service_sid")
        url = f"{self._base_url}/2010-04-01/Accounts/{quote(sid, safe='')}/Messages.json"
        response = await post(
            self._client,
            url,
            provider="twilio",
            connection_id=connection.id,
            timeout=self._timeout,
            data=form,
            auth=(sid, token),
        )
        if response.is_success:
            return
        failure = _rejection(response)
        logger.warning(
            "twilio answered %s code %s (connection %s)",
            response.status_code,
            failure.provider_code,
            connection.id,
        )
        raise failure
