"""The ``nopass apply`` file: one tenant and everything in it (docs/specs/interface.md).

Field names are Auth0 Management API names. Parsing is strict: an unknown key or a bad value
is reported as one line naming the key (``clients[0].app_type: ...``), and nothing is written.
"""

from __future__ import annotations

import ipaddress
import json
from dataclasses import fields
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal
from urllib.parse import urlsplit

import yaml
from cryptography.hazmat.primitives.serialization import load_pem_public_key
from liquid import Environment
from liquid.exceptions import LiquidError
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from nopass.core import options as domain
from nopass.core.management import MANAGEMENT_API_NAME, MANAGEMENT_SCOPES, management_audience
from nopass.core.models import PASSWORDLESS_OTP_GRANT
from nopass.core.otp import MAX_LENGTH, MAX_LIFETIME, MIN_LENGTH, MIN_LIFETIME

# The defaults of every option are core.options' (the one place); these models only validate.
_LIMITS = domain.RateLimits()
_ID_TOKEN = domain.IdTokenPolicy()
_REFRESH = domain.RefreshTokenPolicy()
_EMAIL = domain.EmailOptions()
_SMS = domain.SmsOptions()
_TEMPLATE = domain.EmailTemplate()
_GATEWAY_AUTH_BASE64 = bool(  # GatewayAuthentication has required fields: read its default
    next(
        f.default for f in fields(domain.GatewayAuthentication) if f.name == "secret_base64_encoded"
    )
)


# Stored ids a document may carry (``ConfigFile.document``): new ones are generated.
GRANT_ID_PATTERN = r"^cgr_[A-Za-z0-9]{16}$"
CONNECTION_ID_PATTERN = r"^(con_[A-Za-z0-9]{16}|[0-9a-f]{24})$"  # Auth0's, or older nopass'


class ConfigFileError(ValueError):
    """One line, naming the offending key."""


class ApplyConflict(ValueError):
    """The file contradicts what is stored (e.g. a domain owned by another tenant)."""


class _Nested(ValueError):
    """An error inside a nested document validated by hand (connection options)."""

    def __init__(self, loc: str, message: str) -> None:
        super().__init__(message)
        self.loc = loc


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=False, frozen=True)


_liquid = Environment()


def _check_template(value: str | None) -> str | None:
    if value is not None:
        try:
            _liquid.from_string(value)
        except LiquidError as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ValueError(f"invalid Liquid template: {first}") from exc
    return value


def normalize_origin(value: str) -> str:
    """``login.acme.example`` -> ``https://login.acme.example``; no path, query or fragment."""
    raw = value.strip()
    if "://" not in raw:
        raw = "https://" + raw
    parts = urlsplit(raw)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"not an origin: {value!r}")
    if parts.path not in ("", "/") or parts.query or parts.fragment or parts.username:
        raise ValueError(f"an origin has no path, query, fragment or user: {value!r}")
    port = parts.port
    host = parts.hostname.lower()
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    default = 443 if parts.scheme == "https" else 80
    netloc = host if port in (None, default) else f"{host}:{port}"
    return f"{parts.scheme}://{netloc}"


class RateLimits(_Strict):
    start_per_ip_per_hour: int = Field(_LIMITS.start_per_ip_per_hour, ge=0)
    start_per_identity_per_10min: int = Field(_LIMITS.start_per_identity_per_10min, ge=0)
    start_per_identity_per_day: int = Field(_LIMITS.start_per_identity_per_day, ge=0)
    failures_per_identity_per_15min: int = Field(
        _LIMITS.failures_per_identity_per_15min, ge=0, le=100
    )
    failures_per_ip_per_hour: int = Field(_LIMITS.failures_per_ip_per_hour, ge=0)
    sms_per_tenant_per_day: int = Field(_LIMITS.sms_per_tenant_per_day, ge=0)
    management_per_client_per_second: int = Field(_LIMITS.management_per_client_per_second, ge=0)
    allowlist: list[str] = Field(default_factory=lambda: list(_LIMITS.allowlist))

    @field_validator("allowlist")
    @classmethod
    def _cidrs(cls, value: list[str]) -> list[str]:
        for cidr in value:
            try:
                ipaddress.ip_network(cidr, strict=False)
            except ValueError as exc:
                raise ValueError(f"not a CIDR: {cidr!r}") from exc
        return value


class TestIdentity(_Strict):
    connection: str
    identifier: str
    code: Annotated[str, Field(pattern=r"^[0-9]{6,10}$")]
    expires_at: str

    @field_validator("expires_at", mode="before")
    @classmethod
    def _yaml_timestamp(cls, value: object) -> object:
        # YAML reads an unquoted 2027-06-30T00:00:00Z as a datetime, not as a string.
        if isinstance(value, datetime):
            return value.isoformat().replace("+00:00", "Z")
        return value

    @field_validator("expires_at")
    @classmethod
    def _iso(cls, value: str) -> str:
        from datetime import datetime

        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError as exc:
            raise ValueError("expires_at must be an ISO 8601 timestamp") from exc
        if parsed.tzinfo is None:
            raise ValueError("expires_at needs a time zone (e.g. Z)")
        return value


class SessionCookie(_Strict):
    mode: Literal["persistent", "non-persistent"]


TENANT_SETTINGS = (  # Auth0's tenant settings the file names (docs/specs/management-api.md §5.4)
    "picture_url",
    "support_email",
    "support_url",
    "default_directory",
    "allowed_logout_urls",
    "session_lifetime",
    "idle_session_lifetime",
    "sandbox_version",
    "enabled_locales",
    "flags",
    "session_cookie",
    "default_redirection_uri",
)


class TenantSpec(_Strict):
    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")]
    domains: Annotated[list[str], Field(min_length=1)]
    friendly_name: str | None = None
    default_audience: str | None = None
    rate_limits: RateLimits = Field(default_factory=RateLimits)
    test_identities: list[TestIdentity] = Field(default_factory=list)
    # Auth0's tenant settings (GET/PATCH /api/v2/tenants/settings): the hosted login page
    # shows friendly_name, picture_url, support_email and support_url; the rest is kept and
    # shown as set, and ``other_settings`` keeps any other Auth0 setting as given.
    picture_url: str | None = None
    support_email: str | None = None
    support_url: str | None = None
    default_directory: str | None = None
    allowed_logout_urls: list[str] | None = None
    session_lifetime: float | None = Field(None, gt=0)
    idle_session_lifetime: float | None = Field(None, gt=0)
    sandbox_version: str | None = None
    enabled_locales: list[str] | None = None
    flags: dict[str, Any] | None = None
    session_cookie: SessionCookie | None = None
    default_redirection_uri: str | None = None
    other_settings: dict[str, Any] = Field(default_factory=dict)

    @field_validator("picture_url", "support_url", "default_redirection_uri")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value and urlsplit(value).scheme not in ("http", "https"):
            raise ValueError(f"not an http(s) URL: {value!r}")
        return value

    @field_validator("other_settings")
    @classmethod
    def _others(cls, value: dict[str, Any]) -> dict[str, Any]:
        for key in value:
            if key in TenantSpec.model_fields:
                raise ValueError(f"{key!r} is a tenant key of its own, not an other setting")
        return value

    def stored_settings(self) -> dict[str, Any]:
        """The ``tenants.settings`` value: the Auth0 settings set, and the others."""
        named = self.model_dump(include=set(TENANT_SETTINGS), exclude_none=True)
        return {**self.other_settings, **named}

    @field_validator("domains")
    @classmethod
    def _origins(cls, value: list[str]) -> list[str]:
        origins = [normalize_origin(v) for v in value]
        if len(set(origins)) != len(origins):
            raise ValueError("duplicate domain")
        return origins


class ResourceServerScope(_Strict):
    """A permission an API defines, which client grants may hand out (Auth0's shape)."""

    value: Annotated[str, Field(pattern=r"^\S{1,280}$")]
    description: Annotated[str, Field(max_length=500)] | None = None


RESOURCE_SERVER_EXTRAS = (  # Auth0's, kept and shown as set
    "signing_alg",
    "token_lifetime_for_web",
    "skip_consent_for_verifiable_first_party_clients",
    "token_dialect",
    "enforce_policies",
)


class ResourceServerSpec(_Strict):
    identifier: Annotated[str, Field(min_length=1, max_length=512)]
    name: str
    token_lifetime: int = Field(domain.DEFAULT_ACCESS_TOKEN_LIFETIME, ge=60, le=2592000)
    allow_offline_access: bool = False
    scopes: list[ResourceServerScope] = Field(default_factory=list)
    signing_alg: Literal["RS256"] | None = None  # nopass signs access tokens with RS256
    token_lifetime_for_web: int | None = Field(None, ge=60, le=2592000)
    skip_consent_for_verifiable_first_party_clients: bool | None = None
    token_dialect: (
        Literal["access_token", "access_token_authz", "rfc9068_profile", "rfc9068_profile_authz"]
        | None
    ) = None
    enforce_policies: bool | None = None

    @field_validator("scopes")
    @classmethod
    def _unique_scopes(cls, value: list[ResourceServerScope]) -> list[ResourceServerScope]:
        seen: set[str] = set()
        for scope in value:
            if scope.value in seen:
                raise ValueError(f"duplicate scope {scope.value!r}")
            seen.add(scope.value)
        return value

    def stored(self) -> dict[str, Any]:
        """The ``resource_servers`` row's values (scopes as ``[{value, description}]``)."""
        values = self.model_dump(include={"identifier", "name", "token_lifetime"})
        values["allow_offline_access"] = self.allow_offline_access
        values["scopes"] = [s.model_dump(exclude_none=True) for s in self.scopes]
        values["settings"] = self.model_dump(include=set(RESOURCE_SERVER_EXTRAS), exclude_none=True)
        return values

    def document(self) -> dict[str, Any]:
        """As ``ConfigRepo.document`` reads it back: the Auth0 settings beside the others."""
        values = self.stored()
        settings = values.pop("settings")
        return {**values, **settings}


class ClientGrantSpec(_Strict):
    """Auth0's client grant: a confidential client (its name or client_id) may get
    client-credentials tokens for ``audience`` with at most ``scope``."""

    id: Annotated[str, Field(pattern=GRANT_ID_PATTERN)] | None = None  # kept once stored
    client_id: Annotated[str, Field(min_length=1, max_length=255)]
    audience: Annotated[str, Field(min_length=1, max_length=512)]
    scope: list[Annotated[str, Field(pattern=r"^\S{1,280}$")]]
    # Auth0's, kept and shown as set (nopass has no organizations; grants are for clients)
    organization_usage: Literal["deny", "allow", "require"] | None = None
    allow_any_organization: bool | None = None
    authorization_details_types: list[str] | None = None

    def stored_settings(self) -> dict[str, Any]:
        return self.model_dump(
            include={"organization_usage", "allow_any_organization", "authorization_details_types"},
            exclude_none=True,
        )


class JwtConfiguration(_Strict):
    lifetime_in_seconds: int = Field(_ID_TOKEN.lifetime_in_seconds, ge=60, le=2592000)
    alg: Literal["RS256"] = _ID_TOKEN.alg
    secret_encoded: bool | None = None  # Auth0's; kept and shown (nopass signs RS256 only)

    KEPT: ClassVar[frozenset[str]] = frozenset({"secret_encoded"})  # stored, not interpreted


class RefreshTokenSettings(_Strict):
    rotation_type: Literal["rotating", "non-rotating"] = _REFRESH.rotation_type
    expiration_type: Literal["expiring", "non-expiring"] = _REFRESH.expiration_type
    token_lifetime: int = Field(_REFRESH.token_lifetime, ge=60)
    leeway: int = Field(_REFRESH.leeway, ge=0, le=60)
    # Auth0's, kept and shown as set (nopass's lifetimes are the two above)
    infinite_token_lifetime: bool | None = None
    idle_token_lifetime: int | None = Field(None, ge=1)
    infinite_idle_token_lifetime: bool | None = None

    KEPT: ClassVar[frozenset[str]] = frozenset(
        {"infinite_token_lifetime", "idle_token_lifetime", "infinite_idle_token_lifetime"}
    )


class Credential(_Strict):
    credential_type: Literal["public_key"]
    pem: str
    name: str | None = None

    @field_validator("pem")
    @classmethod
    def _pem(cls, value: str) -> str:
        try:
            load_pem_public_key(value.encode())
        except (ValueError, TypeError) as exc:
            raise ValueError("pem is not a PEM public key") from exc
        return value


class PrivateKeyJwt(_Strict):
    credentials: Annotated[list[Credential], Field(min_length=1)]


class ClientAuthenticationMethods(_Strict):
    private_key_jwt: PrivateKeyJwt | None = None


AppType = Literal["native", "spa", "regular_web", "non_interactive"]
AuthMethodName = Literal["none", "client_secret_post", "client_secret_basic", "private_key_jwt"]
AUTH0_CLIENT_EXTRAS = (  # ClientSpec's settings that nopass keeps for Auth0's tools
    "description",
    "logo_uri",
    "initiate_login_uri",
    "is_first_party",
    "oidc_conformant",
    "sso_disabled",
    "custom_login_page_on",
    "client_metadata",
    "organization_usage",
    "organization_require_behavior",
)
GRANTS = (
    PASSWORDLESS_OTP_GRANT,
    "authorization_code",
    "implicit",
    "refresh_token",
    "client_credentials",
)


def _redirect_uri(value: str) -> str:
    parts = urlsplit(value)
    if not parts.scheme or (parts.scheme in ("http", "https") and not parts.netloc):
        raise ValueError(f"not an absolute URL: {value!r}")
    if "#" in value:
        raise ValueError(f"a callback URL has no fragment: {value!r}")
    if "*" in value:
        raise ValueError(f"wildcards are not supported (exact match only): {value!r}")
    return value


class ClientSpec(_Strict):
    name: Annotated[str, Field(min_length=1, max_length=255)]
    client_id: Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]{8,128}$")] | None = None
    app_type: AppType = "native"
    token_endpoint_auth_method: AuthMethodName | None = None
    client_secret: Annotated[str, Field(min_length=16, max_length=512)] | None = None
    grant_types: list[Literal[GRANTS]] | None = None  # type: ignore[valid-type]
    callbacks: list[str] = Field(default_factory=list)
    allowed_logout_urls: list[str] = Field(default_factory=list)  # exact-match `returnTo`s
    allowed_origins: list[str] = Field(default_factory=list)
    web_origins: list[str] = Field(default_factory=list)
    cross_origin_auth: bool = False
    is_token_endpoint_ip_header_trusted: bool = False
    jwt_configuration: JwtConfiguration = Field(default_factory=JwtConfiguration)
    refresh_token: RefreshTokenSettings = Field(default_factory=RefreshTokenSettings)
    client_authentication_methods: ClientAuthenticationMethods | None = None
    # Auth0's descriptive settings (docs/specs/management-api.md §5.1): kept and shown as
    # set, left out while unset.
    description: Annotated[str, Field(max_length=140)] | None = None
    logo_uri: str | None = None
    initiate_login_uri: str | None = None
    is_first_party: bool | None = None
    oidc_conformant: bool | None = None
    sso_disabled: bool | None = None
    custom_login_page_on: bool | None = None
    client_metadata: dict[str, Annotated[str, Field(max_length=255)]] | None = None
    organization_usage: Literal["deny", "allow", "require"] | None = None
    organization_require_behavior: (
        Literal["no_prompt", "pre_login_prompt", "post_login_prompt"] | None
    ) = None

    @field_validator("logo_uri", "initiate_login_uri")
    @classmethod
    def _absolute(cls, value: str | None) -> str | None:
        if value is not None and value != "" and not urlsplit(value).netloc:
            raise ValueError(f"not an absolute URL: {value!r}")
        return value

    @field_validator("client_metadata")
    @classmethod
    def _metadata(cls, value: dict[str, str] | None) -> dict[str, str] | None:
        if value is not None and len(value) > 10:
            raise ValueError("client_metadata has at most 10 keys")
        return value

    @field_validator("callbacks", "allowed_logout_urls")
    @classmethod
    def _callbacks(cls, value: list[str]) -> list[str]:
        return [_redirect_uri(v) for v in value]

    @field_validator("allowed_origins", "web_origins")
    @classmethod
    def _origins(cls, value: list[str]) -> list[str]:
        return [normalize_origin(v) for v in value]

    @model_validator(mode="after")
    def _auth(self) -> ClientSpec:
        method = self.auth_method
        if method == "private_key_jwt" and (
            self.client_authentication_methods is None
            or self.client_authentication_methods.private_key_jwt is None
        ):
            raise ValueError(
                "client_authentication_methods.private_key_jwt.credentials is required "
                "for token_endpoint_auth_method private_key_jwt"
            )
        if method == "none" and self.client_secret is not None:
            raise ValueError("client_secret is only for confidential clients")
        if method == "none" and "client_credentials" in self.effective_grant_types:
            raise _Nested(
                "grant_types",
                "client_credentials is only for confidential clients "
                "(token_endpoint_auth_method is none)",
            )
        return self

    def stored_settings(self) -> dict[str, Any]:
        """The ``clients.settings`` a client is stored with."""
        return {
            "app_type": self.app_type,
            "token_endpoint_auth_method": self.auth_method,
            "grant_types": self.effective_grant_types,
            "callbacks": self.callbacks,
            "allowed_logout_urls": self.allowed_logout_urls,
            "allowed_origins": self.allowed_origins,
            "web_origins": self.web_origins,
            "cross_origin_auth": self.cross_origin_auth,
            "is_token_endpoint_ip_header_trusted": self.is_token_endpoint_ip_header_trusted,
            "jwt_configuration": self.jwt_configuration.model_dump(exclude_none=True),
            "refresh_token": self.refresh_token.model_dump(exclude_none=True),
            "public_keys": self.public_keys,
            **{
                key: getattr(self, key)
                for key in AUTH0_CLIENT_EXTRAS
                if getattr(self, key) is not None
            },
        }

    @property
    def auth_method(self) -> str:
        if self.token_endpoint_auth_method is not None:
            return self.token_endpoint_auth_method
        return "none" if self.app_type in ("native", "spa") else "client_secret_post"

    @property
    def effective_grant_types(self) -> list[str]:
        if self.grant_types is not None:
            return list(self.grant_types)
        if self.app_type == "spa":
            return ["authorization_code", "implicit", "refresh_token"]
        return [PASSWORDLESS_OTP_GRANT, "authorization_code", "implicit", "refresh_token"]

    @property
    def public_keys(self) -> list[str]:
        cam = self.client_authentication_methods
        if cam is None or cam.private_key_jwt is None:
            return []
        return [c.pem for c in cam.private_key_jwt.credentials]


class Totp(_Strict):
    length: int = Field(domain.DEFAULT_CODE.length, ge=MIN_LENGTH, le=MAX_LENGTH)
    time_step: int = Field(domain.DEFAULT_CODE.lifetime, ge=MIN_LIFETIME, le=MAX_LIFETIME)


class EmailTemplate(_Strict):
    from_: str | None = Field(default=_TEMPLATE.sender, alias="from")
    subject: str | None = _TEMPLATE.subject
    syntax: Literal["liquid"] = _TEMPLATE.syntax
    body: str | None = _TEMPLATE.body

    _from = field_validator("from_", "subject", "body")(_check_template)

    @field_validator("from_", "subject", "body", mode="before")
    @classmethod
    def _empty(cls, value: object) -> object:
        # an empty part is the built-in default, as when absent (deploy-cli exports an
        # email connection's missing body as an empty file, and imports it as "")
        return None if value == "" else value


class _Opaque(BaseModel):
    """Connection options: the keys nopass interprets are validated, any other top-level key
    (Auth0's ``name``, ``upstream_params``, ``non_persistent_attrs``, ...) is kept as given
    and echoed back, so an Auth0 export applies and round-trips. Nested objects nopass
    interprets (``totp``, ``email``, ``gateway_authentication``) stay strict."""

    model_config = ConfigDict(extra="allow", strict=False, frozen=True)


def _auth_params(value: object) -> object:
    """Auth0 documents ``authParams`` as a JSON string; nopass keeps the object it encodes."""
    if isinstance(value, str):
        try:
            value = json.loads(value) if value.strip() else {}
        except json.JSONDecodeError as exc:
            raise ValueError("authParams must be an object or a JSON string of one") from exc
    return value


class EmailOptions(_Opaque):
    totp: Totp = Field(default_factory=Totp)
    disable_signup: bool = _EMAIL.disable_signup
    brute_force_protection: bool = _EMAIL.brute_force_protection
    magic_link_confirmation: bool = _EMAIL.magic_link_confirmation
    authParams: dict[str, str] = Field(default_factory=lambda: dict(_EMAIL.auth_params))
    email: EmailTemplate | None = None

    _params = field_validator("authParams", mode="before")(_auth_params)


class GatewayAuthentication(_Strict):
    method: Literal["bearer"]
    subject: str
    audience: str
    secret: Annotated[str, Field(min_length=1)]
    secret_base64_encoded: bool = _GATEWAY_AUTH_BASE64


class SmsOptions(_Opaque):
    totp: Totp = Field(default_factory=Totp)
    disable_signup: bool = _SMS.disable_signup
    brute_force_protection: bool = _SMS.brute_force_protection
    provider: domain.SmsProvider = _SMS.provider
    gateway_url: str | None = _SMS.gateway_url
    gateway_authentication: GatewayAuthentication | None = None
    forward_req_info: bool = _SMS.forward_req_info
    twilio_sid: str | None = _SMS.twilio_sid
    twilio_token: str | None = _SMS.twilio_token
    messaging_service_sid: str | None = _SMS.messaging_service_sid
    from_: str | None = Field(default=_SMS.sender, alias="from")
    syntax: domain.SmsSyntax = _SMS.syntax
    template: str | None = _SMS.template
    allowed_countries: list[Annotated[str, Field(pattern=r"^[A-Z]{2}$")]] | None = None

    _tpl = field_validator("template")(_check_template)

    @field_validator("gateway_url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value is not None and urlsplit(value).scheme not in ("http", "https"):
            raise ValueError("gateway_url must be an http(s) URL")
        return value

    @model_validator(mode="after")
    def _provider(self) -> SmsOptions:
        if self.provider == "sms_gateway" and not self.gateway_url:
            raise _Nested("gateway_url", "gateway_url is required for provider sms_gateway")
        if self.provider == "twilio":
            if not (self.twilio_sid and self.twilio_token):
                key = "twilio_token" if self.twilio_sid else "twilio_sid"
                raise _Nested(key, "twilio_sid and twilio_token are required for provider twilio")
            if not (self.from_ or self.messaging_service_sid):
                raise _Nested(
                    "from", "from or messaging_service_sid is required for provider twilio"
                )
        return self


OPTION_MODELS: dict[str, type[BaseModel]] = {"email": EmailOptions, "sms": SmsOptions}


class ConnectionSpec(_Strict):
    id: Annotated[str, Field(pattern=CONNECTION_ID_PATTERN)] | None = None  # kept once stored
    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$")]
    strategy: Annotated[str, Field(min_length=1, max_length=64)]
    enabled_clients: list[str] = Field(default_factory=list)
    options: dict[str, Any] = Field(default_factory=dict)
    # Auth0's other connection properties, kept when given (None: Auth0's default)
    display_name: Annotated[str, Field(max_length=128)] | None = None
    is_domain_connection: bool | None = None
    realms: list[Annotated[str, Field(min_length=1, max_length=255)]] | None = None
    metadata: dict[str, Annotated[str, Field(max_length=255)]] | None = None
    show_as_button: bool | None = None

    def stored_settings(self) -> dict[str, Any]:
        """The ``connections.settings`` row value: the properties given, by name, but for
        Auth0's defaults (``is_domain_connection`` false, ``realms`` ``[name]``), so that a
        tool that writes back what it read stores nothing new."""
        defaults = {"is_domain_connection": False, "realms": [self.name]}
        return {
            key: getattr(self, key)
            for key in CONNECTION_SETTINGS
            if getattr(self, key) is not None and getattr(self, key) != defaults.get(key)
        }

    @model_validator(mode="after")
    def _options(self) -> ConnectionSpec:
        model = OPTION_MODELS.get(self.strategy)
        if model is not None:
            try:
                model.model_validate(self.options)
            except ValidationError as exc:
                err = exc.errors()[0]
                loc: tuple[int | str, ...] = tuple(err["loc"])
                nested = err.get("ctx", {}).get("error")
                if isinstance(nested, _Nested):  # a model-level check naming its own key
                    loc = (*loc, nested.loc)
                path = "options." + _loc(loc) if loc else "options"
                raise _Nested(path, _message(err)) from None
        return self

    def normalized_options(self) -> dict[str, Any]:
        model = OPTION_MODELS.get(self.strategy)
        if model is None:
            return dict(self.options)
        options = model.model_validate(self.options)
        normalized = options.model_dump(by_alias=True, exclude_none=True)
        normalized.update(options.model_extra or {})  # opaque keys as given, nulls too
        if normalized.get("email") == {"syntax": _TEMPLATE.syntax}:
            del normalized["email"]  # a template without a part is the built-in one
        return normalized


CONNECTION_SETTINGS = (
    "display_name",
    "is_domain_connection",
    "realms",
    "metadata",
    "show_as_button",
)


class SmtpCredentials(_Strict):
    smtp_host: str
    smtp_port: int = Field(587, ge=1, le=65535)
    smtp_user: str | None = None
    smtp_pass: str | None = None


class SmtpSettings(_Strict):
    starttls: Literal["auto", "always", "never"] = "auto"
    allow_plaintext_auth: bool = False  # AUTH on a session without TLS (credentials in clear)


class EmailProviderSpec(_Strict):
    name: Literal["smtp", "outbox"]
    enabled: bool = True
    default_from_address: str | None = None
    credentials: SmtpCredentials | None = None
    settings: SmtpSettings = Field(default_factory=SmtpSettings)

    @model_validator(mode="after")
    def _creds(self) -> EmailProviderSpec:
        if self.name == "smtp" and self.credentials is None:
            raise ValueError("credentials.smtp_host is required for the smtp provider")
        return self


class ConfigFile(_Strict):
    tenant: TenantSpec
    resource_servers: list[ResourceServerSpec] = Field(default_factory=list)
    clients: list[ClientSpec] = Field(default_factory=list)
    connections: list[ConnectionSpec] = Field(default_factory=list)
    email_provider: EmailProviderSpec | None = None
    client_grants: list[ClientGrantSpec] = Field(default_factory=list)

    @model_validator(mode="after")
    def _references(self) -> ConfigFile:
        _unique("clients", [c.name for c in self.clients], "name")
        _unique("clients", [c.client_id for c in self.clients if c.client_id], "client_id")
        _unique("connections", [c.name for c in self.connections], "name")
        _unique("resource_servers", [r.identifier for r in self.resource_servers], "identifier")
        known = {c.name for c in self.clients} | {c.client_id for c in self.clients}
        for i, conn in enumerate(self.connections):
            for ref in conn.enabled_clients:
                if ref not in known:
                    raise ConfigFileError(
                        f"connections[{i}].enabled_clients: unknown client {ref!r}"
                    )
        self._client_grants()
        names = {c.name for c in self.connections}
        for i, ident in enumerate(self.tenant.test_identities):
            if ident.connection not in names:
                raise ConfigFileError(
                    f"tenant.test_identities[{i}].connection: unknown connection "
                    f"{ident.connection!r}"
                )
        return self

    def document(self) -> dict[str, Any]:
        """This configuration as stored, in the order ``ConfigRepo.document`` reads it back
        once applied: clients referenced by client_id, no client secrets. (Clients without a
        ``client_id`` are referenced by name: apply gives them one.)"""
        ids = {c.name: c.client_id or c.name for c in self.clients}
        ids.update({c.client_id: c.client_id for c in self.clients if c.client_id})
        clients = []
        for c in self.clients:
            settings = c.stored_settings()
            del settings["public_keys"]
            client: dict[str, Any] = {"name": c.name, "client_id": c.client_id, **settings}
            if c.public_keys:
                client["client_authentication_methods"] = {
                    "private_key_jwt": {
                        "credentials": [
                            {"credential_type": "public_key", "pem": pem} for pem in c.public_keys
                        ]
                    }
                }
            clients.append(client)
        provider = self.email_provider
        return {
            "tenant": self.tenant.model_dump(),
            "resource_servers": [r.document() for r in self.resource_servers],
            "clients": clients,
            "connections": sorted(
                (
                    _without_none_id(
                        {
                            "id": c.id,
                            "name": c.name,
                            "strategy": c.strategy,
                            "enabled_clients": sorted(ids[ref] for ref in c.enabled_clients),
                            "options": c.normalized_options(),
                            **c.stored_settings(),
                        }
                    )
                    for c in self.connections
                ),
                key=lambda c: str(c["name"]),
            ),
            "email_provider": None
            if provider is None
            else {
                "name": provider.name,
                "enabled": provider.enabled,
                "default_from_address": provider.default_from_address,
                "credentials": provider.credentials.model_dump() if provider.credentials else None,
                "settings": provider.settings.model_dump(),
            },
            "client_grants": sorted(
                (
                    _without_none_id(
                        {
                            "id": g.id,
                            "client_id": ids[g.client_id],
                            "audience": g.audience,
                            "scope": list(g.scope),
                            **g.stored_settings(),
                        }
                    )
                    for g in self.client_grants
                ),
                key=lambda g: (str(g["client_id"]), str(g["audience"])),
            ),
        }

    def _client_grants(self) -> None:
        """Each grant names a client of the file that is confidential, an API of the file or
        the built-in Management API at one of the tenant's domains, and only scopes that
        API defines; one grant per (client, audience)."""
        apis = {r.identifier: tuple(s.value for s in r.scopes) for r in self.resource_servers}
        builtin = {management_audience(origin): MANAGEMENT_SCOPES for origin in self.tenant.domains}
        for i, api in enumerate(self.resource_servers):
            if api.identifier in builtin:
                raise ConfigFileError(
                    f"resource_servers[{i}].identifier: {api.identifier!r} is the built-in "
                    f"{MANAGEMENT_API_NAME}"
                )
        clients = {c.name: c for c in self.clients}
        clients.update({c.client_id: c for c in self.clients if c.client_id})
        seen: set[tuple[str, str]] = set()
        for i, grant in enumerate(self.client_grants):
            where = f"client_grants[{i}]"
            client = clients.get(grant.client_id)
            if client is None:
                raise ConfigFileError(f"{where}.client_id: unknown client {grant.client_id!r}")
            if client.auth_method == "none":
                raise ConfigFileError(
                    f"{where}.client_id: client {client.name!r} is public "
                    "(token_endpoint_auth_method none); client grants are for confidential "
                    "clients"
                )
            scopes = {**apis, **builtin}.get(grant.audience)
            if scopes is None:
                raise ConfigFileError(f"{where}.audience: unknown API {grant.audience!r}")
            for scope in grant.scope:
                if scope not in scopes:
                    raise ConfigFileError(
                        f"{where}.scope: {scope!r} is not a scope of {grant.audience!r}"
                    )
            key = (client.name, grant.audience)
            if key in seen:
                raise ConfigFileError(
                    f"{where}: duplicate grant for client {client.name!r} and audience "
                    f"{grant.audience!r}"
                )
            seen.add(key)


def _without_none_id(entry: dict[str, Any]) -> dict[str, Any]:
    if entry.get("id") is None:
        entry.pop("id", None)
    return entry


def _unique(section: str, values: list[Any], key: str) -> None:
    seen: set[Any] = set()
    for i, value in enumerate(values):
        if value in seen:
            raise ConfigFileError(f"{section}[{i}].{key}: duplicate {value!r}")
        seen.add(value)


def _loc(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out or "(file)"


def parse_config(data: object) -> ConfigFile:
    """Validate a decoded file; every error is one line naming the key."""
    try:
        return _parse(data)
    except ConfigFileError as exc:
        raise ConfigFileError(" ".join(str(exc).split())) from None


def _parse(data: object) -> ConfigFile:
    if not isinstance(data, dict):
        raise ConfigFileError("(file): the top level must be a mapping with a 'tenant' key")
    try:
        return ConfigFile.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = _loc(tuple(err["loc"]))
        ctx_error = err.get("ctx", {}).get("error")
        if isinstance(ctx_error, ConfigFileError):
            raise ConfigFileError(str(ctx_error)) from None
        if isinstance(ctx_error, _Nested):
            raise ConfigFileError(f"{loc}.{ctx_error.loc}: {ctx_error}") from None
        raise ConfigFileError(f"{loc}: {_message(err)}") from None


def _message(err: Any) -> str:
    if err["type"] == "extra_forbidden":
        return "unknown key"
    ctx_error = err.get("ctx", {}).get("error")
    text = str(ctx_error) if ctx_error is not None else str(err["msg"])
    return text.removeprefix("Value error, ")


def load_config_file(path: Path) -> ConfigFile:
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigFileError(f"{path}: {exc.strerror}") from None
    try:
        data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        raise ConfigFileError(
            f"{path}: not valid {path.suffix.lstrip('.') or 'YAML'}: {exc}".replace("\n", " ")
        ) from None
    return parse_config(data)
