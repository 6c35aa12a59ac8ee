"""The users endpoints of the Management API (docs/specs/management-api.md §3.3-§3.7, §3.9).

A user lives on one passwordless connection (``email`` or ``sms``); its identifier (the
lower-cased address or the E.164 number) is its identity there, and ``User.profile`` holds
every attribute ID tokens, ``/userinfo`` and this API show (email or phone_number, the
``*_verified`` flags, name, nickname, picture, given_name, family_name). Every write is one
transaction with its ``sapi`` audit event; a refused one writes nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, Protocol, TypeVar

from nopass.core.channel import Channel
from nopass.core.errors import (
    InsufficientScope,
    InvalidManagementRequest,
    UnknownConnectionName,
    UserExists,
    UserNotFound,
)
from nopass.core.lucene import Node
from nopass.core.models import Connection, RefreshGrant, Session, TenantConfig, User
from nopass.core.ports import UnitOfWork, UserSort
from nopass.core.profile import initial_profile, new_user_id
from nopass.flows.management.caller import ApiCall, ManagementDeps

SEARCH_CAP = 1000  # Auth0 pages through the first 1000 results only
ATTRIBUTES = ("name", "nickname", "picture", "given_name", "family_name")
METADATA_SCOPE = "update:users_app_metadata"
UPDATE_SCOPE = "update:users"
MAX_USER_ID = 64  # the users.user_id column


@dataclass(frozen=True, slots=True)
class UserView:
    """A user and the name of its connection (its identity's ``connection``)."""

    user: User
    connection: str


@dataclass(frozen=True, slots=True)
class NewUser:
    """``POST /api/v2/users``, its types checked."""

    connection: str
    email: str | None = None
    phone_number: str | None = None
    user_id: str | None = None
    email_verified: bool | None = None
    phone_verified: bool | None = None
    blocked: bool = False
    attributes: Mapping[str, str] = field(default_factory=dict)
    app_metadata: Mapping[str, Any] = field(default_factory=dict)
    user_metadata: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class UserPatch:
    """``PATCH /api/v2/users/{id}``, its types checked. ``attributes`` maps a name to its new
    value, or None to unset it. A metadata mapping is merged on its first level (a None
    value deletes that key); an empty one clears the metadata; None leaves it alone."""

    connection: str | None = None
    email: str | None = None
    phone_number: str | None = None
    email_verified: bool | None = None
    phone_verified: bool | None = None
    blocked: bool | None = None
    attributes: Mapping[str, str | None] = field(default_factory=dict)
    app_metadata: Mapping[str, Any] | None = None
    user_metadata: Mapping[str, Any] | None = None

    @property
    def metadata_only(self) -> bool:
        return self == UserPatch(app_metadata=self.app_metadata, user_metadata=self.user_metadata)


@dataclass(frozen=True, slots=True)
class UserQuery:
    """``GET /api/v2/users``: a page (0-based) of ``per_page`` users in ``sort`` order.
    ``search`` is a parsed ``q`` (``core/user_query.py``), None for every user."""

    page: int = 0
    per_page: int = 50
    sort: UserSort = field(default_factory=UserSort)
    with_total: bool = False
    search: Node | None = None


def _view(tenant: TenantConfig, user: User) -> UserView:
    connection = tenant.connection_by_id(user.connection_id)
    return UserView(user, connection.name if connection else "")


async def existing_user(uow: UnitOfWork, tenant: TenantConfig, user_id: str) -> User:
    """The tenant's user ``user_id``, or ``UserNotFound``."""
    user = await uow.users.get(tenant.tenant.id, user_id)
    if user is None:
        raise UserNotFound(user_id)
    return user


async def get_user(tenant: TenantConfig, user_id: str, deps: ManagementDeps) -> UserView:
    async with deps.uow() as uow:
        return _view(tenant, await existing_user(uow, tenant, user_id))


async def list_users(
    tenant: TenantConfig, query: UserQuery, deps: ManagementDeps
) -> tuple[list[UserView], int | None]:
    """A page of users and, when asked, the count of all matches (beyond the cap too)."""
    if (query.page + 1) * query.per_page > SEARCH_CAP:
        raise InvalidManagementRequest(
            f"You can only page through the first {SEARCH_CAP} records.", in_query=True
        )
    tenant_id = tenant.tenant.id
    async with deps.uow() as uow:
        users = await uow.users.page(
            tenant_id,
            offset=query.page * query.per_page,
            limit=query.per_page,
            sort=query.sort,
            query=query.search,
        )
        total = await uow.users.count(tenant_id, query.search) if query.with_total else None
    return [_view(tenant, u) for u in users], total


async def users_by_email(tenant: TenantConfig, email: str, deps: ManagementDeps) -> list[UserView]:
    """Users whose email is ``email`` (lower-cased, as email connections store it)."""
    async with deps.uow() as uow:
        users = await uow.users.by_identifier(tenant.tenant.id, email.lower())
    return [_view(tenant, u) for u in users if u.profile.get("email") == email.lower()]


def _identifier(channel: Channel, typed: str) -> str:
    identifier = channel.normalize(typed)
    if identifier is None:
        if channel is Channel.EMAIL:
            raise InvalidManagementRequest(
                f"Object didn't pass validation for format email: {typed}"
            )
        raise InvalidManagementRequest(
            f"Object didn't pass validation for format phone_number: {typed}"
        )
    return identifier


def _channel_fields(
    channel: Channel,
    *,
    email: str | None,
    phone_number: str | None,
    email_verified: bool | None,
    phone_verified: bool | None,
) -> None:
    """An email user has no phone number and an SMS user no email (nor their flags)."""
    if channel is Channel.EMAIL and (phone_number is not None or phone_verified is not None):
        raise InvalidManagementRequest("phone_number is only valid for users of sms connections")
    if channel is Channel.SMS and (email is not None or email_verified is not None):
        raise InvalidManagementRequest("email is not supported for users of sms connections")


def _merge(stored: Mapping[str, Any], patch: Mapping[str, Any] | None) -> dict[str, Any]:
    if patch is None:
        return dict(stored)
    if not patch:
        return {}
    merged = {**stored, **patch}
    return {k: v for k, v in merged.items() if v is not None}


def new_user_record(tenant: TenantConfig, new: NewUser, now: datetime) -> tuple[User, str]:
    """The user ``new`` describes, checked against its connection's rules (not yet stored),
    and its connection's name: what ``POST /users`` and a users import create."""
    connection = tenant.connections.get(new.connection)
    if connection is None:
        raise UnknownConnectionName(new.connection)
    if not connection.is_passwordless:
        raise InvalidManagementRequest(
            "nopass creates users on passwordless connections (email, sms) only"
        )
    channel = connection.channel
    _channel_fields(
        channel,
        email=new.email,
        phone_number=new.phone_number,
        email_verified=new.email_verified,
        phone_verified=new.phone_verified,
    )
    typed = new.email if channel is Channel.EMAIL else new.phone_number
    if typed is None:
        raise InvalidManagementRequest(
            f"Payload validation error: 'Missing required property: {channel.field}'."
        )
    identifier = _identifier(channel, typed)
    if new.user_id is not None:
        user_id = f"{channel.user_id_prefix}|{new.user_id}"
        if not new.user_id or len(user_id) > MAX_USER_ID:
            raise InvalidManagementRequest(f"user_id must be 1 to {MAX_USER_ID} characters")
    else:
        user_id = new_user_id(channel)
    profile = initial_profile(channel, identifier)
    verified = "email_verified" if channel is Channel.EMAIL else "phone_verified"
    given = new.email_verified if channel is Channel.EMAIL else new.phone_verified
    profile[verified] = bool(given)  # a login proves it; an administrator may say so
    profile.update(new.attributes)
    user = User(
        tenant_id=tenant.tenant.id,
        user_id=user_id,
        connection_id=connection.id,
        identifier=identifier,
        profile=profile,
        created_at=now,
        updated_at=now,
        app_metadata=_merge({}, new.app_metadata),
        user_metadata=_merge({}, new.user_metadata),
        blocked=new.blocked,
    )
    return user, connection.name


async def create_user(
    tenant: TenantConfig, new: NewUser, call: ApiCall, deps: ManagementDeps
) -> UserView:
    now = deps.clock.now()
    user, connection = new_user_record(tenant, new, now)
    async with deps.uow() as uow:
        if not await uow.users.add(user):
            raise UserExists()
        event = call.audit(
            tenant.tenant.id, "Create a user", user_id=user.user_id, connection=connection
        )
        await uow.audit.add(event, now)
        await uow.commit()
    return UserView(user, connection)


def patched_user(user: User, connection: Connection, patch: UserPatch, now: datetime) -> User:
    """``user`` changed by ``patch`` (checked against its connection's rules; not yet
    stored): what ``PATCH /users/{id}`` and an upserting import write."""
    if patch.connection is not None and patch.connection != connection.name:
        raise InvalidManagementRequest(
            f"The user is on connection {connection.name}, not {patch.connection}"
        )
    channel = connection.channel
    _channel_fields(
        channel,
        email=patch.email,
        phone_number=patch.phone_number,
        email_verified=patch.email_verified,
        phone_verified=patch.phone_verified,
    )
    profile = dict(user.profile)
    identifier = user.identifier
    typed = patch.email if channel is Channel.EMAIL else patch.phone_number
    verified_key = "email_verified" if channel is Channel.EMAIL else "phone_verified"
    verified = patch.email_verified if channel is Channel.EMAIL else patch.phone_verified
    if typed is not None:
        identifier = _identifier(channel, typed)
        if identifier != user.identifier:
            profile[channel.field] = identifier
            profile[verified_key] = bool(verified)  # a new address is not proven yet
    if verified is not None:
        profile[verified_key] = verified
    for name, value in patch.attributes.items():
        if value is None:
            profile.pop(name, None)
        else:
            profile[name] = value
    return replace(
        user,
        identifier=identifier,
        profile=profile,
        updated_at=now,
        app_metadata=_merge(user.app_metadata, patch.app_metadata),
        user_metadata=_merge(user.user_metadata, patch.user_metadata),
        blocked=user.blocked if patch.blocked is None else patch.blocked,
    )


async def update_user(
    tenant: TenantConfig, user_id: str, patch: UserPatch, call: ApiCall, deps: ManagementDeps
) -> UserView:
    scopes = call.caller.scopes
    if UPDATE_SCOPE not in scopes and not patch.metadata_only:
        raise InsufficientScope((UPDATE_SCOPE,))
    async with deps.uow() as uow:
        user = await existing_user(uow, tenant, user_id)
        connection = tenant.connection_by_id(user.connection_id)
        if connection is None or not connection.is_passwordless:
            raise InvalidManagementRequest("the user's connection cannot be changed here")
        now = deps.clock.now()
        changed = patched_user(user, connection, patch, now)
        if not await uow.users.replace(changed):
            raise UserExists(connection.channel.field)
        if changed.blocked and not user.blocked:  # a blocked user keeps no way back in
            await uow.sessions.delete_for_user(tenant.tenant.id, user_id)
            await uow.refresh_tokens.delete_for_user(tenant.tenant.id, user_id)
        event = call.audit(
            tenant.tenant.id, "Update a user", user_id=user_id, connection=connection.name
        )
        await uow.audit.add(event, now)
        await uow.commit()
    return UserView(changed, connection.name)


async def delete_user(
    tenant: TenantConfig, user_id: str, call: ApiCall, deps: ManagementDeps
) -> None:
    """Delete the user with its sessions, refresh tokens and failure window, at once
    (nothing to delete is no error: 204 either way)."""
    tenant_id = tenant.tenant.id
    now = deps.clock.now()
    async with deps.uow() as uow:
        user = await uow.users.delete(tenant_id, user_id)
        event = call.audit(tenant_id, "Delete a user", user_id=user_id)
        if user is not None:
            await uow.sessions.delete_for_user(tenant_id, user_id)
            await uow.refresh_tokens.delete_for_user(tenant_id, user_id)
            await uow.failures.reset(tenant_id, user.connection_id, user.identifier)
            connection = _view(tenant, user).connection
            await uow.audit.add(
                replace(
                    event,
                    type="sdu",
                    description="User deleted",
                    user_id=user_id,
                    connection=connection,
                    details={"deleted_by": call.caller.subject},
                ),
                now,
            )
        await uow.audit.add(event, now)
        await uow.commit()


async def delete_sessions(
    tenant: TenantConfig, user_id: str, call: ApiCall, deps: ManagementDeps
) -> int:
    return await _delete_for_user(
        tenant, user_id, call, deps, "Delete a user's sessions", lambda uow: uow.sessions
    )


async def delete_refresh_tokens(
    tenant: TenantConfig, user_id: str, call: ApiCall, deps: ManagementDeps
) -> int:
    return await _delete_for_user(
        tenant,
        user_id,
        call,
        deps,
        "Delete a user's refresh tokens",
        lambda uow: uow.refresh_tokens,
    )


class _UserRows(Protocol):
    async def delete_for_user(self, tenant_id: str, user_id: str) -> int: ...


async def _delete_for_user(
    tenant: TenantConfig,
    user_id: str,
    call: ApiCall,
    deps: ManagementDeps,
    description: str,
    rows: Callable[[UnitOfWork], _UserRows],
) -> int:
    """Delete all of an existing user's rows of one kind, audited ``sapi``; how many."""
    async with deps.uow() as uow:
        await existing_user(uow, tenant, user_id)
        removed = await rows(uow).delete_for_user(tenant.tenant.id, user_id)
        event = call.audit(tenant.tenant.id, description, user_id=user_id, removed=removed)
        await uow.audit.add(event, deps.clock.now())
        await uow.commit()
    return removed


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """§1.4's checkpoint paging: ``take`` items after ``after`` (the ``next`` of the previous
    page; None: from the start)."""

    after: str | None = None
    take: int = 50


async def list_sessions(
    tenant: TenantConfig, user_id: str, page: Checkpoint, deps: ManagementDeps
) -> tuple[list[Session], str | None]:
    """A page of the user's open sessions and the checkpoint of the next (None: the last)."""
    async with deps.uow() as uow:
        await existing_user(uow, tenant, user_id)
        found = await uow.sessions.list_for_user(
            tenant.tenant.id, user_id, after=page.after, limit=page.take + 1, now=deps.clock.now()
        )
    return _checkpointed(found, page.take)


async def list_refresh_tokens(
    tenant: TenantConfig, user_id: str, page: Checkpoint, deps: ManagementDeps
) -> tuple[list[RefreshGrant], str | None]:
    """A page of the user's usable refresh tokens and the checkpoint of the next."""
    async with deps.uow() as uow:
        await existing_user(uow, tenant, user_id)
        found = await uow.refresh_tokens.list_for_user(
            tenant.tenant.id, user_id, after=page.after, limit=page.take + 1, now=deps.clock.now()
        )
    return _checkpointed(found, page.take)


class _Identified(Protocol):
    @property
    def id(self) -> str: ...


_Row = TypeVar("_Row", bound=_Identified)


def _checkpointed(found: Sequence[_Row], take: int) -> tuple[list[_Row], str | None]:
    """A page read with one row more than ``take``: the page, and the checkpoint of the next
    (its last id; None when nothing follows)."""
    return list(found[:take]), found[take - 1].id if len(found) > take else None
