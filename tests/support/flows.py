"""The flows' dependencies from real parts except storage: the in-memory store and key store,
the real ``Keyring``, ``TemplateRenderer``, ``Limits`` over the in-memory rate limiter and the
app's outbox wake-up, on a movable clock; and a tenant configuration built as domain records
(no database, no HTTP). See ``nopass.app.create_app`` for the production composition.

``World`` runs the API flows (start, token) from request bodies, gives the browser flows
their dependencies (``browser_deps``, ``page_deps``), builds ``CodeAttempt`` values for
``CodeCheck`` and shows what the store holds."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from nopass.api.commands import (
    authorize_params,
    cross_origin_fields,
    link_params,
    revoke_command,
    start_command,
    text_field,
    token_command,
    verify_command,
)
from nopass.app import OutboxWakeup
from nopass.core.errors import DeliveryFailed
from nopass.core.keyring import Keyring, hash_client_secret
from nopass.core.latency import LatencyEstimate
from nopass.core.models import (
    PASSWORDLESS_OTP_GRANT,
    AuditEvent,
    AuthMethod,
    Challenge,
    Client,
    ClientGrant,
    Connection,
    EmailProvider,
    Message,
    Resolved,
    ResourceServer,
    SigningKey,
    Tenant,
    TenantConfig,
    TestIdentity,
    User,
)
from nopass.core.ports import RequestInfo
from nopass.delivery.templates import TemplateRenderer
from nopass.flows.audit import login_event
from nopass.flows.authorization_request import AuthorizeParams, BrowserDeps
from nopass.flows.code_check import OTP_GRANT_FAILURES, CodeAttempt, CodeCheck, FailureEvents
from nopass.flows.cross_origin import CrossOriginCommand, IssuedTicket, authenticate
from nopass.flows.issue import TokenSet
from nopass.flows.limits import Limits
from nopass.flows.login_page import PageDeps
from nopass.flows.magic_link import LinkParams
from nopass.flows.management.caller import ManagementDeps
from nopass.flows.passwordless_verify import verify_passwordless
from nopass.flows.revoke import revoke
from nopass.flows.session import open_session
from nopass.flows.start import StartDeps, StartResult, start_passwordless
from nopass.flows.token import TokenCommand, TokenDeps, exchange
from nopass.flows.userinfo import UserinfoDeps
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
WEB, WEB_SECRET = "web-app", "web-app-secret-0123456789abcdef"  # a confidential client
WEB_ORIGIN = "https://web.acme.example"
WEB_CALLBACK, WEB_LOGOUT = WEB_ORIGIN + "/callback", WEB_ORIGIN + "/signed-out"
EMAIL, SMS, MEMBERS = "email", "sms", "members-only"  # connection names
SMS_DIRECT, SMS_MEMBERS = "sms-direct", "sms-members-only"  # sent through a provider
TEST_EMAIL, TEST_CODE = "review@acme.example", "424242"
REQUEST = RequestInfo(ip="203.0.113.7", user_agent="unit-test")
ROTATING = {"rotation_type": "rotating", "expiration_type": "non-expiring", "leeway": 0}
RENDERER = TemplateRenderer()  # parsing its templates once is enough
MACHINE, MACHINE_SECRET = "machine-app", "machine-app-secret-0123456789ab"  # client credentials
API = "https://api.acme.example/"
API_SCOPES = ("read:things", "write:things", "delete:things")
MANAGEMENT = ORIGIN + "/api/v2/"


def pairs(params: Mapping[str, str | list[str]]) -> list[tuple[str, str]]:
    """A query's pairs from a dict whose lists are repeated parameters."""
    return [
        (key, one)
        for key, value in params.items()
        for one in ([value] if isinstance(value, str) else value)
    ]


def authorize(params: Mapping[str, str | list[str]]) -> AuthorizeParams:
    """An ``/authorize`` query, read as the route reads it."""
    return authorize_params(pairs(params))


def link_query(params: Mapping[str, str | list[str]]) -> LinkParams:
    """A magic link's query, read as the route reads it."""
    return link_params(pairs(params))


def tenant_config(rate_limits: Mapping[str, Any] | None = None) -> TenantConfig:
    """A tenant with a public native client (OTP, PKCE code and rotating refresh grants), a
    confidential web client (authorization code, implicit and refresh grants, cross-origin
    login from ``WEB_ORIGIN``, one logout URL), an email and an SMS connection (outbox
    provider), an email connection that disables signup, two SMS connections sent through a
    provider (one disables signup), all enabled for both clients, and an unexpired test
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
        grant_types=(PASSWORDLESS_OTP_GRANT, "authorization_code", "refresh_token"),
        callbacks=("https://app.acme.example/callback",),
        refresh_token=refresh_token_policy(ROTATING),
    )
    web = Client(
        tenant_id=TENANT_ID,
        client_id=WEB,
        name="Web App",
        app_type="regular_web",
        auth_method=AuthMethod.SECRET_POST,
        secret_hash=hash_client_secret(WEB_SECRET),
        grant_types=("authorization_code", "implicit", "refresh_token"),
        callbacks=(WEB_CALLBACK,),
        allowed_logout_urls=(WEB_LOGOUT,),
        web_origins=(WEB_ORIGIN,),
        cross_origin_auth=True,
        refresh_token=refresh_token_policy(ROTATING),
    )

    def connection(name: str, strategy: str, **options: Any) -> Connection:
        enabled = frozenset({NATIVE, WEB})
        typed = connection_options(strategy, options)
        return Connection(TENANT_ID, f"con-{name}", name, strategy, typed, enabled)

    connections = [
        connection(EMAIL, "email"),
        connection(SMS, "sms", provider="outbox"),
        connection(MEMBERS, "email", disable_signup=True),
        connection(SMS_DIRECT, "sms", provider="sms_gateway"),
        connection(SMS_MEMBERS, "sms", provider="sms_gateway", disable_signup=True),
    ]
    return TenantConfig(
        tenant=tenant,
        clients={NATIVE: client, WEB: web},
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
        # what the SQL store joins for a search by identities.connection
        self.store.connection_names.update({c.id: c.name for c in self.config.connections.values()})

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

    @property
    def browser_deps(self) -> BrowserDeps:
        return BrowserDeps(
            uow=self.store,
            keyring=self.keyring,
            keys=self.keys,
            clock=self.clock,
            limits=self.limits,
        )

    @property
    def page_deps(self) -> PageDeps:
        return PageDeps(browser=self.browser_deps, start=self.start_deps)

    @property
    def management_deps(self) -> ManagementDeps:
        return ManagementDeps(uow=self.store, keys=self.keys, clock=self.clock, limits=self.limits)

    @property
    def userinfo_deps(self) -> UserinfoDeps:
        return UserinfoDeps(uow=self.store, keys=self.keys, clock=self.clock)

    @property
    def resolved(self) -> Resolved:
        return Resolved(config=self.config, origin=ORIGIN)

    @property
    def codes(self) -> CodeCheck:
        return CodeCheck(self.keyring, self.limits, self.clock)

    def audit(
        self, connection: str = EMAIL, username: str | None = "ann@example.com"
    ) -> AuditEvent:
        """The context of a login's audit events from ``REQUEST`` through the native client."""
        client = self.config.clients[NATIVE]
        return login_event(
            TENANT_ID, REQUEST, client, self.config.connections[connection], username
        )

    def attempt(
        self,
        code: str,
        username: str | None = "ann@example.com",
        connection: str = EMAIL,
        failures: FailureEvents = OTP_GRANT_FAILURES,
    ) -> CodeAttempt:
        """A code brought back from ``REQUEST``'s IP, for ``CodeCheck``."""
        return CodeAttempt(
            connection=self.config.connections[connection],
            username=username,
            code=code,
            limit_ip=REQUEST.ip,
            user_ip=REQUEST.ip,
            audit=self.audit(connection, username),
            failures=failures,
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

    async def revoke(
        self, token: object, basic: tuple[str, str] | None = None, **body: object
    ) -> None:
        """``/oauth/revoke`` of ``token`` by the native client (``body`` overrides; a
        ``None`` value drops the field)."""
        values = {"client_id": NATIVE, "token": token, **body}
        present = {k: v for k, v in values.items() if v is not None}
        await revoke(revoke_command(present, basic, issuer=ISSUER), self.config, self.token_deps)

    async def verify(self, *, basic: tuple[str, str] | None = None, **body: object) -> None:
        """``/passwordless/verify`` with auth0.js' body for ann's email code (``body``
        overrides; a ``None`` value drops the field)."""
        values = {
            "client_id": NATIVE,
            "connection": EMAIL,
            "email": "ann@example.com",
            "verification_code": "000000",
            **body,
        }
        present = {k: v for k, v in values.items() if v is not None}
        cmd = verify_command(present, basic, issuer=ISSUER, request=REQUEST)
        await verify_passwordless(cmd, self.config, self.browser_deps)

    async def co_authenticate(
        self, otp: str, origin: str | None = WEB_ORIGIN, **body: object
    ) -> IssuedTicket:
        """``/co/authenticate`` from ``origin`` for ann's email code through the web client
        (``body`` overrides; a ``None`` value drops the field)."""
        values = {
            "client_id": WEB,
            "credential_type": PASSWORDLESS_OTP_GRANT,
            "username": "ann@example.com",
            "otp": otp,
            "realm": EMAIL,
            **body,
        }
        present = {k: v for k, v in values.items() if v is not None}
        cmd = CrossOriginCommand(
            fields=cross_origin_fields(present),
            client_id=text_field(present, "client_id"),
            username=text_field(present, "username"),
            origin=origin,
            request=REQUEST,
        )
        return await authenticate(cmd, self.config, self.browser_deps)

    def add_machine_client(
        self,
        grants: Mapping[str, tuple[str, ...]] | None = None,
        *,
        auth_method: AuthMethod = AuthMethod.SECRET_POST,
        public_keys: tuple[str, ...] = (),
        grant_types: tuple[str, ...] = ("client_credentials",),
        client_id: str = MACHINE,
    ) -> None:
        """A confidential ``non_interactive`` client (secret ``MACHINE_SECRET``) with client
        grants ``{audience: scopes}`` (by default read:things on ``API`` and read:users on the
        Management API), and the API ``API`` defining ``API_SCOPES``."""
        machine = Client(
            tenant_id=TENANT_ID,
            client_id=client_id,
            name="Machine App",
            app_type="non_interactive",
            auth_method=auth_method,
            secret_hash=(
                None if auth_method is AuthMethod.NONE else hash_client_secret(MACHINE_SECRET)
            ),
            grant_types=grant_types,
            callbacks=(),
            public_keys=public_keys,
        )
        if grants is None:
            grants = {API: ("read:things",), MANAGEMENT: ("read:users",)}
        self.add_api(API, API_SCOPES)
        self.config = replace(
            self.config,
            clients={**self.config.clients, client_id: machine},
            client_grants=(
                *(g for g in self.config.client_grants if g.client_id != client_id),
                *(
                    ClientGrant(f"cgr_{client_id[:4]}{n:012d}", client_id, audience, scope)
                    for n, (audience, scope) in enumerate(grants.items())
                ),
            ),
        )

    def add_api(
        self, identifier: str, scopes: tuple[str, ...] = (), *, token_lifetime: int = 7200
    ) -> None:
        api = ResourceServer(
            identifier=identifier,
            name=identifier,
            token_lifetime=token_lifetime,
            allow_offline_access=False,
            scopes=scopes,
        )
        apis = {**self.config.resource_servers, identifier: api}
        self.config = replace(self.config, resource_servers=apis)

    async def client_credentials(
        self, basic: tuple[str, str] | None = None, **body: object
    ) -> TokenSet:
        """``grant_type=client_credentials`` by the machine client with its secret, for
        ``API`` (``body`` overrides; a ``None`` value drops the field)."""
        values = {
            "grant_type": "client_credentials",
            "client_id": MACHINE,
            "client_secret": MACHINE_SECRET,
            "audience": API,
            **body,
        }
        present = {k: v for k, v in values.items() if v is not None}
        cmd = token_command(present, basic, issuer=ISSUER, request=REQUEST)
        return await exchange(cmd, self.config, self.token_deps)

    def _token(self, body: dict[str, object]) -> TokenCommand:
        return token_command(body, None, issuer=ISSUER, request=REQUEST)

    async def sign_up(self, connection: str = EMAIL, identifier: str = "ann@example.com") -> User:
        """An existing user, as a first login leaves it."""
        async with self.store() as work:
            counted = await work.users.record_login(
                TENANT_ID,
                self.config.connections[connection].id,
                identifier,
                new_user_id=f"{self.config.connections[connection].strategy}|{identifier}",
                profile={},
                ip=None,
                now=self.clock.now(),
            )
            assert counted is not None
            user = counted[0]
            await work.commit()
        return user

    async def block(self, user: User, blocked: bool = True) -> User:
        """Block (or unblock) ``user``, as an administrator would (``UserRepo.set_blocked``)."""
        async with self.store() as work:
            changed = await work.users.set_blocked(
                TENANT_ID, user.user_id, blocked, now=self.clock.now()
            )
            await work.commit()
        assert changed is not None and changed.blocked is blocked
        return changed

    def set_options(self, connection: str, **options: object) -> None:
        """Change a connection's options, as an operator would between two requests."""
        old = self.config.connections[connection]
        changed = replace(old.options, **options)  # type: ignore[arg-type]
        self._replace_connection(replace(old, options=changed))

    def set_enabled(self, connection: str, clients: frozenset[str]) -> None:
        """Enable a connection for ``clients`` only."""
        self._replace_connection(
            replace(self.config.connections[connection], enabled_clients=clients)
        )

    def _replace_connection(self, new: Connection) -> None:
        self.config = replace(self.config, connections={**self.config.connections, new.name: new})

    def plant_code(self, challenge_id: str, code: str) -> None:
        """Make ``code`` the stored challenge's code (e.g. to give a phantom a known one)."""
        row = self.challenge(challenge_id)
        mac = self.keyring.code_mac_with(row.key_id, row.id, code)
        assert mac is not None
        self.store.tables.challenges[challenge_id] = replace(row, code_hmac=mac)

    async def open_session(self, user: User) -> str:
        """A browser session for ``user``: its cookie value."""
        async with self.store() as work:
            token = await open_session(work, TENANT_ID, user, self.clock.now())
            await work.commit()
        return token

    # ------------------------------------------------------------ what the store holds

    def challenge(self, challenge_id: str) -> Challenge:
        return self.store.tables.challenges[challenge_id]

    def outbox(self) -> list[OutboxRecord]:
        return self.store.tables.outbox_of(TENANT_ID)

    def code_of(self, challenge_id: str) -> str:
        [record] = [r for r in self.outbox() if r.challenge_id == challenge_id]
        assert record.code is not None
        return record.code

    def link_params(self, challenge_id: str) -> dict[str, str]:
        """The query of the magic link queued for a challenge."""
        [record] = [r for r in self.outbox() if r.challenge_id == challenge_id]
        assert record.link is not None
        return dict(parse_qsl(urlsplit(record.link).query))

    def events(self) -> list[AuditEvent]:
        return list(self.store.tables.audit_of(TENANT_ID))

    def event_types(self) -> list[str]:
        return [e.type for e in self.events()]

    def users(self) -> list[User]:
        return list(self.store.tables.users.values())

    def failure_count(self, connection: str = EMAIL, identifier: str = "ann@example.com") -> int:
        """The identity's failures in its current window (0 when it has none)."""
        key = (TENANT_ID, self.config.connections[connection].id, identifier)
        record = self.store.tables.failures.get(key)
        return record.failures if record is not None else 0

    def counter(self, name: str) -> int:
        """The summed counts of the limiter's windows called ``name`` (e.g. ``sms_verified``)."""
        return sum(c.count for k, c in self.limiter._counters.items() if f":{name}:" in k)


def world(signing_key: SigningKey) -> World:
    return World(
        store=MemoryStore(),
        clock=MovableClock(T0),
        keyring=Keyring([b"unit-test-secret-key-0123456789ab"]),
        keys=MemoryKeyStore({TENANT_ID: signing_key}),
        wakeup=OutboxWakeup(),
    )
