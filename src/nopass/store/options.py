"""Stored option JSON read back into ``core.options`` records, once per configuration load.

``nopass apply`` writes what ``config_file`` validated (every key, defaults included), so a
row normally has every key. Older rows may lack some: a missing key, or a value of the wrong
type (a row edited by hand), reads as the record's default. Nothing here restates a default.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, TypeVar, get_args

from nopass.core.options import (
    DEFAULT_CODE,
    CodeOptions,
    ConnectionOptions,
    EmailOptions,
    EmailTemplate,
    GatewayAuthentication,
    IdTokenPolicy,
    OtherOptions,
    RateLimits,
    RefreshTokenPolicy,
    SmsOptions,
    SmsProvider,
    SmsSyntax,
)

T = TypeVar("T", bound=str)
log = logging.getLogger("nopass.config")

_DEFAULT_EMAIL = EmailOptions()
_DEFAULT_SMS = SmsOptions()
_DEFAULT_LIMITS = RateLimits()
_DEFAULT_REFRESH = RefreshTokenPolicy()


def _mapping(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _int(data: Mapping[str, Any], key: str, default: int) -> int:
    value = data.get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) else default


def _flag(data: Mapping[str, Any], key: str, default: bool) -> bool:
    """A JSON boolean; Auth0 also stores some flags as the string ``"true"``."""
    value = data.get(key)
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    return default


def _text(data: Mapping[str, Any], key: str) -> str | None:
    value = data.get(key)
    return value if isinstance(value, str) and value else None


def _choice(data: Mapping[str, Any], key: str, default: T, allowed: tuple[T, ...]) -> T:
    value = data.get(key)
    found = next((a for a in allowed if a == value), None)
    if found is None and value is not None:
        log.warning("stored option %s has a value nopass does not know: using the default", key)
    return default if found is None else found


def code_options(totp: object) -> CodeOptions:
    data = _mapping(totp)
    return CodeOptions(
        length=_int(data, "length", DEFAULT_CODE.length),
        lifetime=_int(data, "time_step", DEFAULT_CODE.lifetime),
    )


def email_options(data: Mapping[str, Any]) -> EmailOptions:
    auth_params = _mapping(data.get("authParams"))
    template = data.get("email")
    return EmailOptions(
        code=code_options(data.get("totp")),
        disable_signup=_flag(data, "disable_signup", _DEFAULT_EMAIL.disable_signup),
        brute_force_protection=_flag(
            data, "brute_force_protection", _DEFAULT_EMAIL.brute_force_protection
        ),
        magic_link_confirmation=_flag(
            data, "magic_link_confirmation", _DEFAULT_EMAIL.magic_link_confirmation
        ),
        auth_params={str(k): str(v) for k, v in auth_params.items()},
        template=_email_template(template) if isinstance(template, Mapping) else None,
    )


def _email_template(data: Mapping[str, Any]) -> EmailTemplate:
    return EmailTemplate(
        sender=_text(data, "from"), subject=_text(data, "subject"), body=_text(data, "body")
    )


def sms_options(data: Mapping[str, Any]) -> SmsOptions:
    countries = data.get("allowed_countries")
    return SmsOptions(
        code=code_options(data.get("totp")),
        disable_signup=_flag(data, "disable_signup", _DEFAULT_SMS.disable_signup),
        brute_force_protection=_flag(
            data, "brute_force_protection", _DEFAULT_SMS.brute_force_protection
        ),
        provider=_choice(data, "provider", _DEFAULT_SMS.provider, get_args(SmsProvider)),
        gateway_url=_text(data, "gateway_url"),
        gateway_authentication=_gateway_authentication(data.get("gateway_authentication")),
        forward_req_info=_flag(data, "forward_req_info", _DEFAULT_SMS.forward_req_info),
        twilio_sid=_text(data, "twilio_sid"),
        twilio_token=_text(data, "twilio_token"),
        messaging_service_sid=_text(data, "messaging_service_sid"),
        sender=_text(data, "from"),
        syntax=_choice(data, "syntax", _DEFAULT_SMS.syntax, get_args(SmsSyntax)),
        template=_text(data, "template"),
        allowed_countries=(
            frozenset(str(c) for c in countries) if isinstance(countries, list) else None
        ),
    )


def _gateway_authentication(value: object) -> GatewayAuthentication | None:
    data = _mapping(value)
    if not data:
        return None
    return GatewayAuthentication(
        method=str(data.get("method", "")),
        subject=str(data.get("subject", "")),
        audience=str(data.get("audience", "")),
        secret=str(data.get("secret", "")),
        secret_base64_encoded=_flag(data, "secret_base64_encoded", False),
    )


def connection_options(strategy: str, data: object) -> ConnectionOptions:
    """The typed options of a connection; a strategy nopass does not know keeps its own."""
    raw = _mapping(data)
    if strategy == "email":
        return email_options(raw)
    if strategy == "sms":
        return sms_options(raw)
    return OtherOptions(strategy=strategy, raw=dict(raw))


def rate_limits(data: object) -> RateLimits:
    raw = _mapping(data)
    allowlist = raw.get("allowlist")
    d = _DEFAULT_LIMITS
    return RateLimits(
        start_per_ip_per_hour=_int(raw, "start_per_ip_per_hour", d.start_per_ip_per_hour),
        start_per_identity_per_10min=_int(
            raw, "start_per_identity_per_10min", d.start_per_identity_per_10min
        ),
        start_per_identity_per_day=_int(
            raw, "start_per_identity_per_day", d.start_per_identity_per_day
        ),
        failures_per_identity_per_15min=_int(
            raw, "failures_per_identity_per_15min", d.failures_per_identity_per_15min
        ),
        failures_per_ip_per_hour=_int(raw, "failures_per_ip_per_hour", d.failures_per_ip_per_hour),
        sms_per_tenant_per_day=_int(raw, "sms_per_tenant_per_day", d.sms_per_tenant_per_day),
        management_per_client_per_second=_int(
            raw, "management_per_client_per_second", d.management_per_client_per_second
        ),
        allowlist=tuple(str(c) for c in allowlist) if isinstance(allowlist, list) else (),
    )


def refresh_token_policy(data: object) -> RefreshTokenPolicy:
    raw = _mapping(data)
    default = _DEFAULT_REFRESH
    return RefreshTokenPolicy(
        rotation_type=_choice(
            raw, "rotation_type", default.rotation_type, ("rotating", "non-rotating")
        ),
        expiration_type=_choice(
            raw, "expiration_type", default.expiration_type, ("expiring", "non-expiring")
        ),
        token_lifetime=_int(raw, "token_lifetime", default.token_lifetime),
        leeway=_int(raw, "leeway", default.leeway),
    )


def id_token_policy(data: object) -> IdTokenPolicy:
    raw = _mapping(data)
    return IdTokenPolicy(
        lifetime_in_seconds=_int(raw, "lifetime_in_seconds", IdTokenPolicy().lifetime_in_seconds)
    )
