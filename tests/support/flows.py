"""The flows' dependencies from real parts except storage: the in-memory store and key store,
the real ``Keyring``, ``TemplateRenderer``, ``Limits`` over the in-memory rate limiter and the
app's outbox wake-up, on a movable clock; and a tenant configuration built as domain records
(no database, no HTTP). See ``nopass.app.create_app`` for the production composition."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from nopass.api.commands import start_command, token_command
from nopass.app import OutboxWakeup
from nopass.core.errors import DeliveryFailed
from nopass.core.keyring import Keyring
from nopass.core.latency import LatencyEstimate
from nopass.core.models import (
    PASSWORDLESS_OTP_GRANT,
    AuditEvent,
    AuthMethod,
    Challenge,
    Client,
    Connection,
    EmailProvider,
    Message,
    SigningKey,
    Tenant,
    TenantConfig,
    TestIdentity,
)
from nopass.core.ports import RequestInfo
from nopass.delivery.templates import TemplateRenderer
from nopass.flows.issue import TokenSet
from nopass.flows.limits import Limits
from nopass.flows.start import StartDeps, StartResult, start_passwordless
from nopass.flows.token import TokenCommand, TokenDeps, exchange
from nopass.ratelimit.memory import MemoryRateLimiter
from nopass.store.memory import MemoryKeyStore, MemoryStore, OutboxRecord
from nopass.store.options import (
    connection_options,
    rate_limits as stored_rate_limits,
    refresh_token_policy,
)
from tests.support.clock import MovableClock

T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
ORIGIN = "https://login.acme.example"
ISSUER = ORIGIN + "/"
TENANT_ID = "tenant-acme"
NATIVE = "native-app"
EMAIL, SMS, MEMBERS = "email", "sms", "members-only"  # connection names
SMS_DIRECT, SMS_MEMBERS = "sms-direct", "sms-members-only"  # sent through a provider
TEST_EMAIL, TEST_CODE = "review@acme.example", "424242"
REQUEST = RequestInfo(ip="203.0.113.7", user_agent="unit-test")
ROTATING = {"rotation_type": "rotating", "expiration_type": "non-expiring", "leeway": 0}
RENDERER = TemplateRenderer()  # parsing its templates once is enough


def tenant_config(rate_limits: Mapping[str, Any] | None = None) -> TenantConfig:
    """A tenant with a public native client (OTP and rotating refresh grants), an email and
    an SMS connection (outbox provider), an email connection that disables signup, two SMS
    connections sent through a provider (one disables signup), and an unexpired test
    identity on the email connection."""
    tenant = Tenant(
        id=TENANT_ID,
        name="acme",
        friendly_name="Acme",
        default_audience=None,
        rate_limits=stored_rate_limits(rate_limits or {}),
        test_identities=(
            TestIdentity(EMAIL, TEST_EMAIL, TEST_CODE, expires_at=T0 + timedelta(days=1)),
        ),
    )
    client = Client(
        tenant_id=TENANT_ID,
        client_id=NATIVE,
        name="Native App",
        app_type="native",
        auth_method=AuthMethod.NONE,
        secret_hash=None,
        grant_types=(PASSWORDLESS_OTP_GRANT, "refresh_token"),
        callbacks=("https://app.acme.example/callback",),
        refresh_token=refresh_token_policy(ROTATING),
    )

    def connection(name: str, strategy: str, **options: Any) -> Connection:
        typed = connection_options(strategy, options)
        return Connection(TENANT_ID, f"con-{name}", name, strategy, typed, frozenset({NATIVE}))

    connections = [
        connection(EMAIL, "email"),
        connection(SMS, "sms", provider="outbox"),
        connection(MEMBERS, "email", disable_signup=True),
        connection(SMS_DIRECT, "sms", provider="sms_gateway"),
        connection(SMS_MEMBERS, "sms", provider="sms_gateway", disable_signup=True),
    ]
    return TenantConfig(
        tenant=tenant,
        clients={NATIVE: client},
        connections={c.name: c for c in connections},
        email_provider=EmailProvider(
            name="outbox",
            enabled=True,
            default_from_address="Acme <login@acme.example>",
            credentials={},
            settings={},
        ),
    )


class RecordingSms:
    """The ``SmsSender`` port for connections with a provider: records what it was given to
    send (and how many codes were committed by then), or fails with ``failure``."""

    def __init__(self, store: MemoryStore) -> None:
        self._store = store
        self.sent: list[Message] = []
        self.committed_codes: list[int] = []
        self.failure: DeliveryFailed | None = None

    async def send(self, connection: Connection, message: Message, request: RequestInfo) -> None:
        self.committed_codes.append(len(self._store.tables.challenges))
        if self.failure is not None:
            raise self.failure
        self.sent.append(message)


@dataclass
class World:
    store: MemoryStore
    clock: MovableClock
    keyring: Keyring
    keys: MemoryKeyStore
    wakeup: OutboxWakeup
    config: TenantConfig = field(default_factory=tenant_config)
    limiter: MemoryRateLimiter = field(default_factory=MemoryRateLimiter)
    # A phantom's start waits as long as a provider usually takes: here, no time at all.
    sms_latency: LatencyEstimate = field(default_factory=lambda: LatencyEstimate(initial=0.0))

    def __post_init__(self) -> None:
        self.sms = RecordingSms(self.store)

    @property
    def limits(self) -> Limits:
        return Limits(limiter=self.limiter, uow=self.store, clock=self.clock)

    @property
    def start_deps(self) -> StartDeps:
        return StartDeps(
            uow=self.store,
            keyring=self.keyring,
            renderer=RENDERER,
            sms=self.sms,
            outbox_signal=self.wakeup,
            clock=self.clock,
            limits=self.limits,
            sms_latency=self.sms_latency,
        )

    @property
    def token_deps(self) -> TokenDeps:
        return TokenDeps(
            uow=self.store,
            keyring=self.keyring,
            keys=self.keys,
            clock=self.clock,
            limits=self.limits,
        )

    # ------------------------------------------------------------------------ the flows

    async def start(self, connection: str = EMAIL, **body: object) -> StartResult:
        sms = self.config.connections[connection].strategy == "sms"
        values: dict[str, object] = {
            "client_id": NATIVE,
            "connection": connection,
            **({"phone_number": "+15551234567"} if sms else {"email": "ann@example.com"}),
            "send": "code",
            **body,
        }
        cmd = start_command(values, None, origin=ORIGIN, request=REQUEST, request_language=None)
        return await start_passwordless(cmd, self.config, self.start_deps)

    async def otp(
        self, otp: str, username: str = "ann@example.com", realm: str = EMAIL, **body: object
    ) -> TokenSet:
        values: dict[str, object] = {
            "grant_type": PASSWORDLESS_OTP_GRANT,
            "client_id": NATIVE,
            "username": username,
            "otp": otp,
            "realm": realm,
            **body,
        }
        return await exchange(self._token(values), self.config, self.token_deps)

    async def refresh(self, token: str, **body: object) -> TokenSet:
        values: dict[str, object] = {
            "grant_type": "refresh_token",
            "client_id": NATIVE,
            "refresh_token": token,
            **body,
        }
        return await exchange(self._token(values), self.config, self.token_deps)

    def _token(self, body: dict[str, object]) -> TokenCommand:
        return token_command(body, None, issuer=ISSUER, request=REQUEST)

    # ------------------------------------------------------------ what the store holds

    def challenge(self, challenge_id: str) -> Challenge:
        return self.store.tables.challenges[challenge_id]

    def outbox(self) -> list[OutboxRecord]:
        return self.store.tables.outbox_of(TENANT_ID)

    def code_of(self, challenge_id: str) -> str:
        [record] = [r for r in self.outbox() if r.challenge_id == challenge_id]
        assert record.code is not None
        return record.code

    def events(self) -> list[AuditEvent]:
        return list(self.store.tables.audit_of(TENANT_ID))

    def event_types(self) -> list[str]:
        return [e.type for e in self.events()]


def world(signing_key: SigningKey) -> World:
    return World(
        store=MemoryStore(),
        clock=MovableClock(T0),
        keyring=Keyring([b"unit-test-secret-key-0123456789ab"]),
        keys=MemoryKeyStore({TENANT_ID: signing_key}),
        wakeup=OutboxWakeup(),
    )
