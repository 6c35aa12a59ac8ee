"""Stored option JSON read back into typed options (store/options.py) by the configuration
cache: what ``nopass apply`` wrote reads back as written, a row without a key (written by an
older nopass) reads as the key's default, and an unknown strategy keeps its options as is."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncEngine

from nopass.core.models import TenantConfig
from nopass.core.options import (
    CodeOptions,
    EmailOptions,
    EmailTemplate,
    GatewayAuthentication,
    IdTokenPolicy,
    OtherOptions,
    RateLimits,
    RefreshTokenPolicy,
    SmsOptions,
)
from nopass.store.config import ConfigCache
from nopass.store.engine import create_engine
from nopass.store.tables import ClientRow, ConnectionRow, TenantRow, table
from tests.support.config import NATIVE_ID, tenant_config
from tests.support.harness import prepare_database

ORIGIN = "https://login.acme.example"
CONNECTIONS, TENANTS, CLIENTS = table(ConnectionRow), table(TenantRow), table(ClientRow)
SMS = {
    "provider": "sms_gateway",
    "gateway_url": "https://sms.acme.example/send",
    "gateway_authentication": {
        "method": "bearer",
        "subject": "nopass",
        "audience": "https://sms.acme.example",
        "secret": "c2VjcmV0",
        "secret_base64_encoded": True,
    },
    "forward_req_info": True,
    "from": "+15550001111",
    "syntax": "liquid",
    "template": "{{ code }}",
    "allowed_countries": ["US", "GB"],
    "totp": {"length": 8, "time_step": 300},
}
EMAIL = {
    "disable_signup": True,
    "magic_link_confirmation": False,
    "authParams": {"scope": "openid email"},
    "email": {"from": "Acme <login@acme.example>", "subject": "Your code", "body": "<p>x</p>"},
}


def applied(**tenant: Any) -> dict[str, Any]:
    config = tenant_config(ORIGIN, sms=SMS, email_options=EMAIL)
    config["tenant"].update(tenant)
    config["connections"][2]["options"] = {"kept": {"as": ["written"]}}
    config["clients"][0]["refresh_token"] = {
        "rotation_type": "rotating",
        "expiration_type": "expiring",
        "token_lifetime": 3600,
        "leeway": 5,
    }
    config["clients"][0]["jwt_configuration"] = {"lifetime_in_seconds": 600}
    return config


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(database_url)
    try:
        yield engine
    finally:
        await engine.dispose()


async def loaded(engine: AsyncEngine) -> TenantConfig:
    config = await ConfigCache(engine).by_name("acme")
    assert config is not None
    return config


async def test_applied_options_read_back_typed(database_url: str, engine: AsyncEngine) -> None:
    await prepare_database(
        database_url, applied(rate_limits={"start_per_ip_per_hour": 7, "allowlist": ["10.0.0.0/8"]})
    )
    config = await loaded(engine)
    assert config.connections["sms"].options == SmsOptions(
        code=CodeOptions(length=8, lifetime=300),
        provider="sms_gateway",
        gateway_url="https://sms.acme.example/send",
        gateway_authentication=GatewayAuthentication(
            method="bearer",
            subject="nopass",
            audience="https://sms.acme.example",
            secret="c2VjcmV0",
            secret_base64_encoded=True,
        ),
        forward_req_info=True,
        sender="+15550001111",
        syntax="liquid",
        template="{{ code }}",
        allowed_countries=frozenset({"US", "GB"}),
    )
    assert config.connections["email"].options == EmailOptions(
        disable_signup=True,
        magic_link_confirmation=False,
        auth_params={"scope": "openid email"},
        template=EmailTemplate(
            sender="Acme <login@acme.example>", subject="Your code", body="<p>x</p>"
        ),
    )
    expected = RateLimits(start_per_ip_per_hour=7, allowlist=("10.0.0.0/8",))
    assert config.tenant.rate_limits == expected
    client = config.clients[NATIVE_ID]
    assert client.refresh_token == RefreshTokenPolicy(
        rotation_type="rotating", expiration_type="expiring", token_lifetime=3600, leeway=5
    )
    assert client.jwt_configuration == IdTokenPolicy(lifetime_in_seconds=600)


async def test_an_unknown_strategys_options_survive(database_url: str, engine: AsyncEngine) -> None:
    await prepare_database(database_url, applied())
    legacy = (await loaded(engine)).connections["legacy-db"]
    assert legacy.options == OtherOptions(strategy="auth0", raw={"kept": {"as": ["written"]}})
    assert not legacy.is_passwordless


async def test_rows_without_keys_read_as_the_defaults(
    database_url: str, engine: AsyncEngine
) -> None:
    """Rows as an older nopass wrote them: no key, or an empty document."""
    await prepare_database(database_url, applied())
    async with engine.begin() as conn:
        await conn.execute(update(CONNECTIONS).values(options={}))
        await conn.execute(update(TENANTS).values(rate_limits={}))
        settings = {"app_type": "native", "token_endpoint_auth_method": "none"}
        await conn.execute(
            update(CLIENTS).where(CLIENTS.c.client_id == NATIVE_ID).values(settings=settings)
        )
    config = await loaded(engine)
    assert config.connections["sms"].options == SmsOptions()
    assert config.connections["sms"].options.provider == "outbox"  # not Twilio
    assert config.connections["email"].options == EmailOptions()
    assert config.connections["legacy-db"].options == OtherOptions(strategy="auth0")
    assert config.tenant.rate_limits == RateLimits()
    client = config.clients[NATIVE_ID]
    assert client.refresh_token == RefreshTokenPolicy()
    assert client.jwt_configuration == IdTokenPolicy()


async def test_partial_and_hand_edited_rows_keep_what_they_have(
    database_url: str, engine: AsyncEngine
) -> None:
    """A missing key, a null and a value of the wrong type each read as the default; the
    keys that are there are kept."""
    await prepare_database(database_url, applied())
    sms = {"totp": {"length": 8}, "provider": None, "forward_req_info": "true", "from": 5}
    limits = {"sms_per_tenant_per_day": 0, "start_per_ip_per_hour": "many"}
    async with engine.begin() as conn:
        await conn.execute(
            update(CONNECTIONS).where(CONNECTIONS.c.name == "sms").values(options=sms)
        )
        await conn.execute(update(TENANTS).values(rate_limits=limits))
    config = await loaded(engine)
    assert config.connections["sms"].options == SmsOptions(
        code=CodeOptions(length=8), forward_req_info=True
    )
    assert config.tenant.rate_limits == RateLimits(sms_per_tenant_per_day=0)
