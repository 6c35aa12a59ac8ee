"""The shipped example file is valid, and the parser names the bad key on one line."""

from __future__ import annotations

from pathlib import Path

import pytest

from nopass.config_file import ConfigFileError, load_config_file, normalize_origin, parse_config

EXAMPLE = Path(__file__).parents[2] / "examples" / "tenant.yaml"


def test_example_file_is_valid() -> None:
    config = load_config_file(EXAMPLE)
    assert config.tenant.domains == ["http://127.0.0.1:8123", "https://login.acme.example"]
    assert [c.auth_method for c in config.clients] == [
        "none",
        "client_secret_post",
        "client_secret_post",
    ]
    assert [(g.client_id, g.scope) for g in config.client_grants] == [
        ("Backend Service", ["read:orders"]),
        ("Backend Service", ["read:users"]),
    ]
    sms = config.connections[1].normalized_options()
    assert sms["from"] == "+15550001234"
    assert sms["provider"] == "sms_gateway"


@pytest.mark.parametrize(
    ("origin", "expected"),
    [
        ("login.acme.example", "https://login.acme.example"),
        ("HTTP://127.0.0.1:8123/", "http://127.0.0.1:8123"),
        ("https://a.example:443", "https://a.example"),
        ("127.0.0.1:9000", "https://127.0.0.1:9000"),
    ],
)
def test_origins_are_normalised(origin: str, expected: str) -> None:
    assert normalize_origin(origin) == expected


@pytest.mark.parametrize(
    ("patch", "key"),
    [
        ({"colour": "red"}, "colour: unknown key"),
        ({"tenant": {"name": "a", "domains": ["https://x.example/path"]}}, "tenant.domains"),
        ({"clients": [{"name": "A", "app_type": "desktop"}]}, "clients[0].app_type"),
        (
            {"clients": [{"name": "A", "callbacks": ["https://*.acme.example/cb"]}]},
            "clients[0].callbacks",
        ),
        (
            {
                "connections": [
                    {"name": "e", "strategy": "email", "options": {"totp": {"length": 5}}}
                ]
            },
            "connections[0].options.totp.length",
        ),
        (
            {
                "connections": [
                    {"name": "s", "strategy": "sms", "options": {"provider": "sms_gateway"}}
                ]
            },
            "connections[0].options",
        ),
        (
            {"connections": [{"name": "e", "strategy": "email", "enabled_clients": ["Nope"]}]},
            "connections[0].enabled_clients: unknown client 'Nope'",
        ),
        (
            {
                "connections": [
                    {"name": "e", "strategy": "email", "options": {"email": {"body": "{% if %}"}}}
                ]
            },
            "connections[0].options.email.body",
        ),
    ],
)
def test_errors_name_the_key(patch: dict[str, object], key: str) -> None:
    data: dict[str, object] = {"tenant": {"name": "acme", "domains": ["acme.example"]}}
    data.update(patch)
    with pytest.raises(ConfigFileError) as caught:
        parse_config(data)
    message = str(caught.value)
    assert key in message
    assert "\n" not in message


SMTP = {"name": "smtp", "credentials": {"smtp_host": "mail.acme.example", "smtp_user": "u"}}


def test_plaintext_smtp_auth_is_off_unless_opted_in() -> None:
    base: dict[str, object] = {"tenant": {"name": "acme", "domains": ["acme.example"]}}
    config = parse_config({**base, "email_provider": SMTP})
    assert config.email_provider is not None
    assert config.email_provider.settings.model_dump() == {
        "starttls": "auto",
        "allow_plaintext_auth": False,
    }
    opted = parse_config(
        {**base, "email_provider": {**SMTP, "settings": {"allow_plaintext_auth": True}}}
    )
    assert opted.email_provider is not None
    assert opted.email_provider.settings.allow_plaintext_auth is True
    with pytest.raises(ConfigFileError) as caught:
        parse_config(
            {**base, "email_provider": {**SMTP, "settings": {"allow_plaintext_auth": "maybe"}}}
        )
    assert "email_provider.settings.allow_plaintext_auth" in str(caught.value)
