"""SMS providers: the custom gateway against a real local HTTP server, Twilio via MockTransport."""

from __future__ import annotations

import base64
import warnings
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

import httpx
import jwt
import pytest

from nopass.core.errors import DeliveryFailed, DeliveryFailure
from nopass.core.models import Channel, Connection, Message
from nopass.core.ports import RequestInfo, SmsSender
from nopass.delivery.sms import GatewaySmsSender, SmsRouter, TwilioSmsSender
from nopass.store.options import sms_options
from tests.support.sms_gateway import Gateway

PHONE = "+15557654321"
REQUEST = RequestInfo(ip="203.0.113.7", user_agent="Mozilla/5.0 (test)")
MESSAGE = Message(
    channel=Channel.SMS,
    recipient=PHONE,
    subject="",
    text="482913 is your Acme verification code.",
    sender="+15550001111",
)


def sms_connection(**options: Any) -> Connection:
    return Connection(
        tenant_id="t1",
        id="con_sms",
        name="sms",
        strategy="sms",
        options=sms_options(options),
        enabled_clients=frozenset({"client"}),
    )


class FixedClock:
    def __init__(self, now: datetime) -> None:
        self._now = now

    def now(self) -> datetime:
        return self._now


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(trust_env=False) as http:
        yield http


async def test_gateway_payload(gateway: Gateway, client: httpx.AsyncClient) -> None:
    sender = GatewaySmsSender(client)
    await sender.send(sms_connection(gateway_url=gateway.url), MESSAGE, REQUEST)
    [request] = gateway.requests
    assert request.method == "POST"
    assert request.path == "/sms"
    assert request.headers["content-type"] == "application/json"
    assert "authorization" not in request.headers
    assert request.json() == {
        "recipient": PHONE,
        "body": "482913 is your Acme verification code.",
        "sender": "+15550001111",
    }


@pytest.mark.parametrize("flag", [True, "true"])
async def test_gateway_forwards_request_info(
    gateway: Gateway, client: httpx.AsyncClient, flag: object
) -> None:
    connection = sms_connection(gateway_url=gateway.url, forward_req_info=flag)
    await GatewaySmsSender(client).send(connection, MESSAGE, REQUEST)
    assert gateway.requests[0].json()["req"] == {
        "ip": "203.0.113.7",
        "user-agent": "Mozilla/5.0 (test)",
    }


@pytest.mark.parametrize("flag", [False, "false", None])
async def test_gateway_keeps_request_info_by_default(
    gateway: Gateway, client: httpx.AsyncClient, flag: object
) -> None:
    connection = sms_connection(gateway_url=gateway.url, forward_req_info=flag)
    await GatewaySmsSender(client).send(connection, MESSAGE, REQUEST)
    assert "req" not in gateway.requests[0].json()


RAW_SECRET = b"\xfb\xff\xfe gateway secret \x00\x01 with bytes that need +/ or -_"


@pytest.mark.parametrize(
    ("secret", "encoded", "key"),
    [
        ("MySecretToSignTheToken", False, b"MySecretToSignTheToken"),
        (base64.urlsafe_b64encode(RAW_SECRET).decode().rstrip("="), True, RAW_SECRET),
        (base64.urlsafe_b64encode(RAW_SECRET).decode(), True, RAW_SECRET),
        (base64.b64encode(RAW_SECRET).decode(), True, RAW_SECRET),
    ],
    ids=["plain", "base64url-unpadded", "base64url", "base64-standard"],
)
async def test_gateway_bearer_jwt(
    gateway: Gateway, client: httpx.AsyncClient, secret: str, encoded: bool, key: bytes
) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    connection = sms_connection(
        gateway_url=gateway.url,
        gateway_authentication={
            "method": "bearer",
            "subject": "urn:Auth0",
            "audience": "urn:MySmsGateway",
            "secret": secret,
            "secret_base64_encoded": encoded,
        },
    )
    await GatewaySmsSender(client, clock=FixedClock(now)).send(connection, MESSAGE, REQUEST)
    scheme, _, token = gateway.requests[0].headers["authorization"].partition(" ")
    assert scheme == "Bearer"
    assert jwt.get_unverified_header(token)["alg"] == "HS256"
    with warnings.catch_warnings():  # Auth0's example secret is shorter than RFC 7518 asks
        warnings.simplefilter("ignore", jwt.InsecureKeyLengthWarning)
        claims = jwt.decode(token, key, algorithms=["HS256"], audience="urn:MySmsGateway")
    assert claims == {
        "sub": "urn:Auth0",
        "aud": "urn:MySmsGateway",
        "iat": int(now.timestamp()),
        "exp": int(now.timestamp()) + 60,
    }


async def test_gateway_401_is_unauthorized(gateway: Gateway, client: httpx.AsyncClient) -> None:
    gateway.status = 401
    with pytest.raises(DeliveryFailed) as caught:
        await GatewaySmsSender(client).send(
            sms_connection(gateway_url=gateway.url), MESSAGE, REQUEST
        )
    assert caught.value.kind is DeliveryFailure.UNAUTHORIZED
    assert caught.value.status == 401


@pytest.mark.parametrize("status", [500, 400, 403, 302])
async def test_gateway_other_status_is_unexpected(
    gateway: Gateway, client: httpx.AsyncClient, status: int
) -> None:
    gateway.status = status
    with pytest.raises(DeliveryFailed) as caught:
        await GatewaySmsSender(client).send(
            sms_connection(gateway_url=gateway.url), MESSAGE, REQUEST
        )
    assert caught.value.kind is DeliveryFailure.UNEXPECTED
    assert caught.value.status == status


@pytest.mark.parametrize("status", [201, 202, 204])
async def test_gateway_any_2xx_is_success(
    gateway: Gateway, client: httpx.AsyncClient, status: int
) -> None:
    gateway.status = status
    await GatewaySmsSender(client).send(sms_connection(gateway_url=gateway.url), MESSAGE, REQUEST)
    assert len(gateway.requests) == 1


async def test_gateway_too_slow_is_504(gateway: Gateway, client: httpx.AsyncClient) -> None:
    gateway.delay = 1.0
    with pytest.raises(DeliveryFailed) as caught:
        await GatewaySmsSender(client, timeout=0.3).send(
            sms_connection(gateway_url=gateway.url), MESSAGE, REQUEST
        )
    assert caught.value.kind is DeliveryFailure.UNEXPECTED
    assert caught.value.status == 504


async def test_gateway_unreachable_is_502(client: httpx.AsyncClient) -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler)
    host, port = server.server_address[:2]
    server.server_close()  # nothing listens there any more
    with pytest.raises(DeliveryFailed) as caught:
        await GatewaySmsSender(client).send(
            sms_connection(gateway_url=f"http://{host!s}:{port}/sms"), MESSAGE, REQUEST
        )
    assert caught.value.kind is DeliveryFailure.UNEXPECTED
    assert caught.value.status == 502


# --- Twilio through httpx.MockTransport --------------------------------------------------

TWILIO_SID = "AC0123456789abcdef0123456789abcdef"
TWILIO_TOKEN = "twilio-auth-token"
TWILIO_URL = f"https://api.twilio.com/2010-04-01/Accounts/{TWILIO_SID}/Messages.json"


def twilio_connection(**options: Any) -> Connection:
    return sms_connection(
        provider="twilio", twilio_sid=TWILIO_SID, twilio_token=TWILIO_TOKEN, **options
    )


def mock_client(
    handler: Callable[[httpx.Request], httpx.Response], seen: list[httpx.Request]
) -> httpx.AsyncClient:
    def record(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return handler(request)

    return httpx.AsyncClient(transport=httpx.MockTransport(record))


def created(request: httpx.Request) -> httpx.Response:
    return httpx.Response(201, json={"sid": "SM123", "status": "queued"})


def form_of(request: httpx.Request) -> dict[str, list[str]]:
    return parse_qs(request.content.decode())


async def test_twilio_sends_from_a_number() -> None:
    seen: list[httpx.Request] = []
    async with mock_client(created, seen) as http:
        await TwilioSmsSender(http).send(
            twilio_connection(**{"from": "+15550001111"}), MESSAGE, REQUEST
        )
    [request] = seen
    assert request.method == "POST"
    assert str(request.url) == TWILIO_URL
    expected = base64.b64encode(f"{TWILIO_SID}:{TWILIO_TOKEN}".encode()).decode()
    assert request.headers["authorization"] == f"Basic {expected}"
    assert request.headers["content-type"] == "application/x-www-form-urlencoded"
    assert form_of(request) == {
        "To": [PHONE],
        "Body": ["482913 is your Acme verification code."],
        "From": ["+15550001111"],
    }


async def test_twilio_prefers_the_messaging_service() -> None:
    seen: list[httpx.Request] = []
    async with mock_client(created, seen) as http:
        await TwilioSmsSender(http).send(
            twilio_connection(**{"from": "+15550001111", "messaging_service_sid": "MG42"}),
            MESSAGE,
            REQUEST,
        )
    form = form_of(seen[0])
    assert form["MessagingServiceSid"] == ["MG42"]
    assert "From" not in form


async def test_twilio_base_url_is_configurable() -> None:
    seen: list[httpx.Request] = []
    async with mock_client(created, seen) as http:
        sender = TwilioSmsSender(http, base_url="http://twilio.internal:8080/")
        await sender.send(twilio_connection(messaging_service_sid="MG42"), MESSAGE, REQUEST)
    assert str(seen[0].url) == (
        f"http://twilio.internal:8080/2010-04-01/Accounts/{TWILIO_SID}/Messages.json"
    )


async def test_twilio_error_document_is_rejected() -> None:
    error = {
        "code": 21211,
        "message": "The 'To' number +15557654321 is not a valid phone number.",
        "more_info": "https://www.twilio.com/docs/errors/21211",
        "status": 400,
    }
    seen: list[httpx.Request] = []
    async with mock_client(lambda request: httpx.Response(400, json=error), seen) as http:
        with pytest.raises(DeliveryFailed) as caught:
            await TwilioSmsSender(http).send(
                twilio_connection(**{"from": "+15550001111"}), MESSAGE, REQUEST
            )
    assert caught.value.kind is DeliveryFailure.REJECTED
    assert caught.value.status == 400
    assert caught.value.provider_message == error["message"]
    assert caught.value.provider_code == "21211"


async def test_twilio_non_json_error_is_unexpected() -> None:
    seen: list[httpx.Request] = []
    answer = httpx.Response(503, text="<html>Service Unavailable</html>")
    async with mock_client(lambda request: answer, seen) as http:
        with pytest.raises(DeliveryFailed) as caught:
            await TwilioSmsSender(http).send(
                twilio_connection(**{"from": "+15550001111"}), MESSAGE, REQUEST
            )
    assert caught.value.kind is DeliveryFailure.UNEXPECTED
    assert caught.value.status == 503
    assert caught.value.provider_message is None


@pytest.mark.parametrize(
    ("exception", "status"),
    [(httpx.ReadTimeout, 504), (httpx.ConnectTimeout, 504), (httpx.ConnectError, 502)],
)
async def test_twilio_transport_failures(
    exception: type[httpx.TransportError], status: int
) -> None:
    def fail(request: httpx.Request) -> httpx.Response:
        raise exception("boom", request=request)

    async with mock_client(fail, []) as http:
        with pytest.raises(DeliveryFailed) as caught:
            await TwilioSmsSender(http).send(
                twilio_connection(**{"from": "+15550001111"}), MESSAGE, REQUEST
            )
    assert caught.value.kind is DeliveryFailure.UNEXPECTED
    assert caught.value.status == status


async def test_twilio_without_a_sender_is_a_configuration_error() -> None:
    message = Message(channel=Channel.SMS, recipient=PHONE, subject="", text="hi")
    async with mock_client(created, []) as http:
        with pytest.raises(ValueError, match="messaging_service_sid"):
            await TwilioSmsSender(http).send(twilio_connection(), message, REQUEST)


# --- SmsRouter --------------------------------------------------------------------------


async def test_router_dispatches_on_provider() -> None:
    seen: list[httpx.Request] = []
    async with mock_client(lambda request: httpx.Response(200), seen) as http:
        router: SmsSender = SmsRouter(http, 5.0)
        await router.send(
            sms_connection(provider="sms_gateway", gateway_url="https://gw.test/send"),
            MESSAGE,
            REQUEST,
        )
        await router.send(twilio_connection(messaging_service_sid="MG42"), MESSAGE, REQUEST)
    assert [str(request.url) for request in seen] == ["https://gw.test/send", TWILIO_URL]


async def test_router_refuses_the_outbox_provider() -> None:
    async with mock_client(created, []) as http:
        with pytest.raises(ValueError, match="outbox"):
            await SmsRouter(http).send(sms_connection(provider="outbox"), MESSAGE, REQUEST)


async def test_a_connection_without_provider_is_the_outbox_one_not_twilio() -> None:
    """The configuration file's default (``provider: outbox``) is the router's too: a
    connection stored without ``provider`` is never sent to Twilio with its credentials."""
    seen: list[httpx.Request] = []
    no_provider = sms_connection(
        twilio_sid=TWILIO_SID, twilio_token=TWILIO_TOKEN, messaging_service_sid="MG1"
    )
    async with mock_client(created, seen) as http:
        with pytest.raises(ValueError, match="outbox"):
            await SmsRouter(http).send(no_provider, MESSAGE, REQUEST)
    assert seen == []
