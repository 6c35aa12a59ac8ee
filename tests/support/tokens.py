"""Helpers for the token end-to-end tests: a tenant with an API and rotating refresh tokens,
reading codes from the local SMTP sink / SMS gateway, logging in over HTTP, and crafting
hostile JWTs (``alg: none``, HS256 keyed with our public key, foreign keys, key-location
headers) to throw at ``/userinfo``."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import re
import time
from dataclasses import dataclass
from typing import Any

import httpx
import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from nopass.core.models import PASSWORDLESS_OTP_GRANT
from tests.support.config import NATIVE_ID, tenant_config
from tests.support.sms_gateway import Gateway
from tests.support.smtp import SmtpSink

API = "https://api.acme.example"
API_LIFETIME = 3600
ROTATING = {
    "rotation_type": "rotating",
    "expiration_type": "expiring",
    "token_lifetime": 2592000,
    "leeway": 0,
}
CODE = re.compile(r"\b(\d{6})\b")
PRIVATE_JWK_MEMBERS = ("d", "p", "q", "dp", "dq", "qi", "k")


def login_config(
    origin: str,
    *,
    name: str = "acme",
    smtp_port: int | None = None,
    gateway_url: str | None = None,
    public_key_pem: str | None = None,
    rate_limits: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """``tenant_config`` plus an API that allows offline access, rotating refresh tokens for
    the Native App, and (optionally) the SMS gateway and tenant rate limits."""
    sms = None
    if gateway_url is not None:
        sms = {"provider": "sms_gateway", "gateway_url": gateway_url, "from": "+15550001111"}
    config = tenant_config(
        origin, name=name, smtp_port=smtp_port, sms=sms, public_key_pem=public_key_pem
    )
    config["resource_servers"] = [
        {
            "identifier": API,
            "name": "Acme API",
            "token_lifetime": API_LIFETIME,
            "allow_offline_access": True,
        }
    ]
    for client in config["clients"]:
        if client["client_id"] == NATIVE_ID:
            client["refresh_token"] = dict(ROTATING)
    if rate_limits is not None:
        config["tenant"]["rate_limits"] = rate_limits
    return config


@dataclass(frozen=True)
class KeyPair:
    private: rsa.RSAPrivateKey
    private_pem: str
    public_pem: str


def generate_keypair() -> KeyPair:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    public_pem = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    return KeyPair(key, private_pem, public_pem)


# ---------------------------------------------------------------- codes from the channels


def mails_to(sink: SmtpSink, recipient: str) -> int:
    return sum(1 for m in sink.received if recipient in m.recipients)


async def email_code(sink: SmtpSink, recipient: str, seen: int, timeout: float = 10.0) -> str:
    """The code of the newest email to ``recipient`` once more than ``seen`` have arrived."""
    deadline = time.monotonic() + timeout
    while True:
        mails = [m for m in sink.received if recipient in m.recipients]
        if len(mails) > seen:
            found = CODE.search(mails[-1].text())
            assert found is not None, mails[-1].text()
            return found.group(1)
        if time.monotonic() > deadline:
            raise AssertionError(f"no new email to {recipient} (seen {seen})")
        await asyncio.sleep(0.05)


def sms_code(gateway: Gateway, phone: str) -> str:
    """The code of the newest SMS the gateway received for ``phone`` (SMS is synchronous)."""
    bodies = [r.json()["body"] for r in gateway.requests if r.json()["recipient"] == phone]
    assert bodies, f"no SMS to {phone}"
    found = CODE.search(bodies[-1])
    assert found is not None, bodies[-1]
    return found.group(1)


# ---------------------------------------------------------------- logging in over HTTP


async def start_email(
    http: httpx.AsyncClient, sink: SmtpSink, email: str, *, client_id: str = NATIVE_ID
) -> str:
    """``/passwordless/start`` with ``send: code``; returns the code that arrives by email."""
    seen = mails_to(sink, email)
    response = await http.post(
        "/passwordless/start",
        json={"client_id": client_id, "connection": "email", "email": email, "send": "code"},
    )
    assert response.status_code == 200, response.text
    return await email_code(sink, email, seen)


def otp_body(
    username: str,
    otp: str,
    *,
    realm: str = "email",
    client_id: str = NATIVE_ID,
    scope: str | None = "openid profile email offline_access",
    audience: str | None = API,
) -> dict[str, Any]:
    return {
        "grant_type": PASSWORDLESS_OTP_GRANT,
        "client_id": client_id,
        "username": username,
        "otp": otp,
        "realm": realm,
        "scope": scope,
        "audience": audience,
    }


async def email_login(
    http: httpx.AsyncClient,
    sink: SmtpSink,
    email: str,
    *,
    scope: str | None = "openid profile email offline_access",
    audience: str | None = API,
    client_id: str = NATIVE_ID,
) -> dict[str, Any]:
    code = await start_email(http, sink, email, client_id=client_id)
    body = otp_body(email, code, scope=scope, audience=audience, client_id=client_id)
    response = await http.post("/oauth/token", json=body)
    assert response.status_code == 200, response.text
    tokens: dict[str, Any] = response.json()
    return tokens


async def jwks_of(http: httpx.AsyncClient) -> list[dict[str, Any]]:
    response = await http.get("/.well-known/jwks.json")
    assert response.status_code == 200, response.text
    keys: list[dict[str, Any]] = response.json()["keys"]
    return keys


# ---------------------------------------------------------------- JWT inspection and forgery


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _segment(value: dict[str, Any]) -> str:
    return b64url(json.dumps(value, separators=(",", ":")).encode())


def header_of(token: str) -> dict[str, Any]:
    header: dict[str, Any] = jwt.get_unverified_header(token)
    return header


def claims_of(token: str) -> dict[str, Any]:
    claims: dict[str, Any] = jwt.decode(token, options={"verify_signature": False})
    return claims


def kid_of(token: str) -> str:
    kid = header_of(token)["kid"]
    assert isinstance(kid, str)
    return kid


def public_key(jwk: dict[str, Any]) -> rsa.RSAPublicKey:
    """The RSA public key of a JWKS entry, built from ``n`` and ``e``."""

    def number(value: str) -> int:
        return int.from_bytes(base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)), "big")

    return rsa.RSAPublicNumbers(number(jwk["e"]), number(jwk["n"])).public_key()


def public_pem(jwk: dict[str, Any], *, pkcs1: bool = False) -> bytes:
    fmt = (
        serialization.PublicFormat.PKCS1
        if pkcs1
        else serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return public_key(jwk).public_bytes(serialization.Encoding.PEM, fmt)


def verify_with(token: str, jwks: list[dict[str, Any]], **options: Any) -> dict[str, Any]:
    """Verify one of our RS256 tokens against a JWKS the way a resource server would."""
    by_kid = {k["kid"]: k for k in jwks}
    key = public_key(by_kid[kid_of(token)])
    claims: dict[str, Any] = jwt.decode(token, key, algorithms=["RS256"], **options)
    return claims


def unsigned_token(header: dict[str, Any], claims: dict[str, Any]) -> str:
    """``alg: none``: no signature at all."""
    return f"{_segment({**header, 'alg': 'none'})}.{_segment(claims)}."


def hs256_token(header: dict[str, Any], claims: dict[str, Any], secret: bytes) -> str:
    """HS256 keyed by arbitrary bytes (PyJWT refuses PEM keys as HMAC secrets; we must not)."""
    signing_input = f"{_segment({**header, 'alg': 'HS256'})}.{_segment(claims)}"
    mac = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64url(mac)}"


def rs256_token(header: dict[str, Any], claims: dict[str, Any], key: KeyPair) -> str:
    extra = {k: v for k, v in header.items() if k != "alg"}
    return jwt.encode(claims, key.private_pem, algorithm="RS256", headers=extra)


def jwk_of(key: KeyPair, kid: str) -> dict[str, Any]:
    numbers = key.private.public_key().public_numbers()

    def b64uint(value: int) -> str:
        return b64url(value.to_bytes((value.bit_length() + 7) // 8, "big"))

    return {
        "kty": "RSA",
        "kid": kid,
        "use": "sig",
        "alg": "RS256",
        "n": b64uint(numbers.n),
        "e": b64uint(numbers.e),
    }


def tamper(token: str, **changes: Any) -> str:
    """The same header and signature over changed claims."""
    header, _, signature = token.split(".")
    return f"{header}.{_segment({**claims_of(token), **changes})}.{signature}"
