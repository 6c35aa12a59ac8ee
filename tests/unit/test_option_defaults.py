"""Every option default lives in core.options: the configuration file's models take theirs
from it (field by field, so the two cannot drift), and what ``nopass apply`` writes for a file
that sets nothing reads back as exactly those defaults."""

from __future__ import annotations

from dataclasses import fields
from typing import Any

import pytest
from pydantic import BaseModel

from nopass import config_file as file
from nopass.core import options as domain
from nopass.store import options as stored

# (file model, domain record, file field -> domain field where the names differ)
PAIRS: list[tuple[type[BaseModel], type[Any], dict[str, str]]] = [
    (file.RateLimits, domain.RateLimits, {}),
    (file.JwtConfiguration, domain.IdTokenPolicy, {}),
    (file.RefreshTokenSettings, domain.RefreshTokenPolicy, {}),
    (file.Totp, domain.CodeOptions, {"time_step": "lifetime"}),
    (file.EmailTemplate, domain.EmailTemplate, {"from_": "sender"}),
    (
        file.EmailOptions,
        domain.EmailOptions,
        {"totp": "code", "authParams": "auth_params", "email": "template"},
    ),
    (file.SmsOptions, domain.SmsOptions, {"totp": "code", "from_": "sender"}),
]


def comparable(value: object) -> object:
    if isinstance(value, BaseModel):
        return {k: comparable(v) for k, v in value.model_dump().items()}
    if isinstance(value, (list, tuple, frozenset)):
        return sorted(value)
    if isinstance(value, dict):
        return dict(value)
    return value


def domain_default(record: type[Any], name: str) -> object:
    value = getattr(record(), name)
    if hasattr(value, "__dataclass_fields__"):
        return {f.name: getattr(value, f.name) for f in fields(value)}
    return comparable(value)


@pytest.mark.parametrize(
    ("model", "record", "renamed"), PAIRS, ids=lambda p: getattr(p, "__name__", "")
)
def test_every_file_default_is_the_domain_default(
    model: type[BaseModel], record: type[Any], renamed: dict[str, str]
) -> None:
    domain_fields = {f.name for f in fields(record)} - {"strategy"}
    seen = set()
    for name, info in model.model_fields.items():
        if name in getattr(model, "KEPT", ()):  # Auth0's, stored and shown, not interpreted
            continue
        target = renamed.get(name, name)
        assert target in domain_fields, f"{model.__name__}.{name} has no domain field"
        seen.add(target)
        default = comparable(info.get_default(call_default_factory=True))
        if name == "totp":
            default = {"length": default["length"], "lifetime": default["time_step"]}  # type: ignore[index]
        assert default == domain_default(record, target), f"{model.__name__}.{name}"
    assert seen == domain_fields, f"{record.__name__} fields the file does not set"


def test_gateway_authentication_and_access_token_defaults() -> None:
    auth = file.GatewayAuthentication.model_fields["secret_base64_encoded"]
    [base64] = [
        f for f in fields(domain.GatewayAuthentication) if f.name == "secret_base64_encoded"
    ]
    assert auth.default == base64.default
    token_lifetime = file.ResourceServerSpec.model_fields["token_lifetime"].default
    assert token_lifetime == domain.DEFAULT_ACCESS_TOKEN_LIFETIME


def test_what_apply_writes_for_an_empty_file_reads_back_as_the_defaults() -> None:
    for strategy, record in (("email", domain.EmailOptions()), ("sms", domain.SmsOptions())):
        spec = file.ConnectionSpec(name=strategy, strategy=strategy)
        assert stored.connection_options(strategy, spec.normalized_options()) == record
    assert stored.rate_limits(file.RateLimits().model_dump()) == domain.RateLimits()
    refresh = file.RefreshTokenSettings().model_dump()
    assert stored.refresh_token_policy(refresh) == domain.RefreshTokenPolicy()
    jwt = file.JwtConfiguration().model_dump()
    assert stored.id_token_policy(jwt) == domain.IdTokenPolicy()


def test_the_numbers() -> None:
    """The documented defaults (docs/specs/interface.md, docs/specs/security.md §6), pinned once."""
    assert domain.CodeOptions() == domain.CodeOptions(length=6, lifetime=180)
    assert domain.SmsOptions().provider == "outbox"
    assert domain.IdTokenPolicy().lifetime_in_seconds == 36000
    assert domain.RefreshTokenPolicy().token_lifetime == 2592000
    assert domain.DEFAULT_ACCESS_TOKEN_LIFETIME == 86400
    assert domain.EmailOptions().magic_link_confirmation is True
