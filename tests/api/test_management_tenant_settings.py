"""``/api/v2/tenants/settings`` (docs/specs/management-api.md §5.4): the ``tenant:`` section of
the tenant's ``nopass apply`` document, merged at the top level by PATCH; ``default_audience``
is then the audience of a token request that names none; a file applied afterwards keeps the
settings it does not name. On SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest

from nopass.config_file import parse_config
from nopass.store.apply import apply_config
from tests.support.config import (
    API_ID,
    CALLBACK,
    MACHINE_ID,
    MACHINE_SECRET,
    NATIVE_ID,
    machine_config,
)
from tests.support.harness import running_app
from tests.support.management import ORIGIN, Api, tenant_key

PATH = "/tenants/settings"
SETTINGS = {
    "friendly_name": "Acme Inc",
    "picture_url": "https://acme.example/logo.png",
    "support_email": "help@acme.example",
    "support_url": "https://acme.example/help",
    "session_lifetime": 168,
    "idle_session_lifetime": 72,
    "enabled_locales": ["en", "fr"],
    "flags": {"enable_client_connections": False},
    "session_cookie": {"mode": "non-persistent"},
    "default_redirection_uri": "https://acme.example/login",
    "allowed_logout_urls": ["https://acme.example/bye"],
    "sandbox_version": "18",
    "error_page": {"html": "", "show_log_link": False, "url": "https://acme.example/error"},
    "device_flow": {"charset": "base20", "mask": "****-****"},
}


@pytest.fixture
async def api(database_url: str) -> AsyncIterator[Api]:
    async with running_app(database_url, machine_config(ORIGIN)) as harness:
        yield Api(harness, await tenant_key(harness))


async def ok(api: Api, method: str, status: int = 200, **kwargs: Any) -> Any:
    response = await api.call(method, PATH, **kwargs)
    assert response.status_code == status, response.text
    return response.json()


async def test_patch_merges_and_get_reads_back(api: Api) -> None:
    assert await ok(api, "GET") == {}
    updated = await ok(api, "PATCH", json=SETTINGS)
    assert updated == SETTINGS
    assert await ok(api, "GET") == SETTINGS
    again = await ok(api, "PATCH", json={"support_email": None, "device_flow": None, "x": 1})
    expected = {k: v for k, v in SETTINGS.items() if k not in ("support_email", "device_flow")}
    assert again == {**expected, "x": 1}
    picked = await api.call("GET", PATH + "?fields=friendly_name,flags")
    assert picked.json() == {"friendly_name": "Acme Inc", "flags": SETTINGS["flags"]}
    rest = await api.call("GET", PATH + "?fields=friendly_name&include_fields=false")
    assert "friendly_name" not in rest.json() and "flags" in rest.json()
    audits = await api.harness.rows("SELECT description FROM audit_events")
    assert [a["description"] for a in audits].count("Update tenant settings") == 2


async def test_default_audience_is_the_token_audience_when_none_is_named(api: Api) -> None:
    form = {
        "grant_type": "client_credentials",
        "client_id": MACHINE_ID,
        "client_secret": MACHINE_SECRET,
    }
    before = await api.harness.client.post("/oauth/token", data=form)
    assert before.status_code == 403
    await ok(api, "PATCH", json={"default_audience": API_ID})
    after = await api.harness.client.post("/oauth/token", data=form)
    assert after.status_code == 200, after.text
    assert after.json()["scope"] == "read:things write:things"


async def test_a_file_applied_afterwards_keeps_what_it_does_not_name(api: Api) -> None:
    await ok(api, "PATCH", json=SETTINGS)
    file = machine_config(ORIGIN)
    file["tenant"]["support_url"] = "https://acme.example/support"
    await apply_config(api.harness.engine, parse_config(file), now=datetime.now(UTC))
    after = await ok(api, "GET")
    # friendly_name is the file's own key (since 0001): a file without it says there is none
    expected = {k: v for k, v in SETTINGS.items() if k != "friendly_name"}
    assert after == {**expected, "support_url": "https://acme.example/support"}


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"name": "other"}, "'name' is not a tenant setting"),
        ({"rate_limits": {}}, "'rate_limits' is not a tenant setting"),
        ({"picture_url": "ftp://x"}, "picture_url: not an http(s) URL"),
        ({"session_cookie": {"mode": "sometimes"}}, "session_cookie.mode"),
        ({"session_lifetime": -1}, "session_lifetime"),
    ],
)
async def test_invalid_patches_write_nothing(api: Api, body: dict[str, Any], message: str) -> None:
    before = await api.harness.rows("SELECT * FROM tenants")
    response = await api.call("PATCH", PATH, json=body)
    assert response.status_code == 400, response.text
    assert response.json()["errorCode"] == "invalid_body"
    assert message in response.json()["message"], response.json()
    assert await api.harness.rows("SELECT * FROM tenants") == before
    assert await api.harness.count("audit_events") == 0


async def test_scopes(api: Api) -> None:
    response = await api.call("GET", PATH, scopes=["update:tenant_settings"])
    assert response.json()["message"] == "Insufficient scope, expected any of: read:tenant_settings"
    response = await api.call("PATCH", PATH, json={}, scopes=["read:tenant_settings"])
    assert response.json()["message"] == (
        "Insufficient scope, expected any of: update:tenant_settings"
    )


async def test_the_hosted_login_page_shows_the_tenants_logo_and_help(api: Api) -> None:
    await ok(
        api,
        "PATCH",
        json={
            "friendly_name": "Acme & Co",
            "picture_url": "https://cdn.acme.example/logo.png",
            "support_email": "help@acme.example",
            "support_url": "https://acme.example/help",
        },
    )
    params = {
        "client_id": NATIVE_ID,
        "redirect_uri": CALLBACK,
        "response_type": "code",
        "scope": "openid",
        "state": "s",
        "code_challenge": "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
        "code_challenge_method": "S256",
    }
    got = await api.harness.client.get("/authorize", params=params)
    assert got.status_code == 200, got.text
    html = got.text
    assert '<img class="logo" src="https://cdn.acme.example/logo.png" alt="Acme &amp; Co"' in html
    assert '<a href="https://acme.example/help" rel="noopener">' in html
    assert '<a href="mailto:help@acme.example">help@acme.example</a>' in html
    assert "img-src data: https://cdn.acme.example;" in got.headers["content-security-policy"]
