"""Users in SQL: one per (tenant, connection, identifier), created at the first login."""

from __future__ import annotations

import functools
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, delete, exists, func, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from nopass.core.lucene import Node
from nopass.core.models import User
from nopass.core.ports import UserSort
from nopass.store.prebuilt import run
from nopass.store.tables import ConnectionRow, UserRow, UTCDateTime, table
from nopass.store.user_rows import user_of as _user
from nopass.store.user_search import page_statement, search_filter

_T = table(UserRow)
_IDENTITY = (
    _T.c.tenant_id == bindparam("b_tenant_id"),
    _T.c.connection_id == bindparam("b_connection_id"),
    _T.c.identifier == bindparam("b_identifier"),
)
# Built once (building a statement costs more CPU than running it); b_ names, because
# UPDATE ... SET reserves the columns' own.
GET = select(_T).where(
    _T.c.tenant_id == bindparam("b_tenant_id"), _T.c.user_id == bindparam("b_user_id")
)
# Read on every start and OTP guess of a connection that refuses signups: built per call,
# it cost those answers some 0.8 ms of CPU more than the same answers elsewhere.
EXISTS = select(exists().where(*_IDENTITY))
FIND = select(_T).where(*_IDENTITY)
SET_BLOCKED = (
    update(_T)
    .where(_T.c.tenant_id == bindparam("b_tenant_id"), _T.c.user_id == bindparam("b_user_id"))
    .values(blocked=bindparam("b_blocked"), updated_at=bindparam("b_now", type_=UTCDateTime()))
    .returning(*_T.c)
)


@functools.cache
def _record_login(dialect: str) -> Any:
    """Create the user or count its login, in one statement; a blocked user's row is left
    alone, and the statement returns no row."""
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    now = bindparam("b_now", type_=UTCDateTime())
    stmt = insert(_T).values(
        tenant_id=bindparam("b_tenant_id"),
        user_id=bindparam("b_user_id"),
        connection_id=bindparam("b_connection_id"),
        identifier=bindparam("b_identifier"),
        profile=bindparam("b_profile", type_=_T.c.profile.type),
        created_at=now,
        updated_at=now,
        last_login=now,
        last_ip=bindparam("b_ip"),
        logins_count=1,
    )
    return stmt.on_conflict_do_update(
        index_elements=["tenant_id", "connection_id", "identifier"],
        set_={
            "last_login": stmt.excluded.last_login,
            "last_ip": stmt.excluded.last_ip,
            "updated_at": stmt.excluded.updated_at,
            "logins_count": _T.c.logins_count + 1,
        },
        where=_T.c.blocked.is_(False),
    ).returning(*_T.c)


@functools.cache
def _count_login() -> Any:
    """Count an existing user's login (no user is created, a blocked one is left alone), in
    one statement."""
    now = bindparam("b_now", type_=UTCDateTime())
    return (
        update(_T)
        .where(*_IDENTITY, _T.c.blocked.is_(False))
        .values(
            last_login=now,
            last_ip=bindparam("b_ip"),
            updated_at=now,
            logins_count=_T.c.logins_count + 1,
        )
        .returning(*_T.c)
    )


def _values(user: User) -> dict[str, Any]:
    return {
        "tenant_id": user.tenant_id,
        "user_id": user.user_id,
        "connection_id": user.connection_id,
        "identifier": user.identifier,
        "profile": dict(user.profile),
        "created_at": user.created_at,
        "updated_at": user.updated_at,
        "last_login": user.last_login,
        "last_ip": user.last_ip,
        "logins_count": user.logins_count,
        "app_metadata": dict(user.app_metadata),
        "user_metadata": dict(user.user_metadata),
        "blocked": user.blocked,
    }


class SqlUserRepo:
    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn

    async def exists(self, tenant_id: str, connection_id: str, identifier: str) -> bool:
        params = {"b_tenant_id": tenant_id, "b_connection_id": connection_id}
        row = (await run(self._conn, EXISTS, {**params, "b_identifier": identifier})).one()
        return bool(row[0])

    async def get(self, tenant_id: str, user_id: str) -> User | None:
        params = {"b_tenant_id": tenant_id, "b_user_id": user_id}
        row = (await run(self._conn, GET, params)).first()
        return _user(row) if row is not None else None

    async def record_login(
        self,
        tenant_id: str,
        connection_id: str,
        identifier: str,
        *,
        new_user_id: str,
        profile: Mapping[str, Any],
        ip: str | None,
        now: datetime,
    ) -> tuple[User, bool] | None:
        """Create the user if needed (``new_user_id``, ``profile``) and count the login.
        Returns the user and whether it was created by this call; None, writing nothing,
        when the user is blocked."""
        params = {
            "b_tenant_id": tenant_id,
            "b_user_id": new_user_id,
            "b_connection_id": connection_id,
            "b_identifier": identifier,
            "b_profile": dict(profile),
            "b_now": now,
            "b_ip": ip,
        }
        row = (await run(self._conn, _record_login(self._conn.dialect.name), params)).first()
        if row is None:  # the conflict's update skipped a blocked user
            return None
        return _user(row), row.user_id == new_user_id  # a fresh id only on a new row

    async def count_login(
        self, tenant_id: str, connection_id: str, identifier: str, *, ip: str | None, now: datetime
    ) -> User | None:
        """Count the login of an existing user; None (and nothing written) when there is none
        or it is blocked."""
        params = {
            "b_tenant_id": tenant_id,
            "b_connection_id": connection_id,
            "b_identifier": identifier,
            "b_now": now,
            "b_ip": ip,
        }
        row = (await run(self._conn, _count_login(), params)).first()
        return _user(row) if row is not None else None

    async def find(self, tenant_id: str, connection_id: str, identifier: str) -> User | None:
        params = {"b_tenant_id": tenant_id, "b_connection_id": connection_id}
        row = (await run(self._conn, FIND, {**params, "b_identifier": identifier})).first()
        return _user(row) if row is not None else None

    async def set_blocked(
        self, tenant_id: str, user_id: str, blocked: bool, *, now: datetime
    ) -> User | None:
        params = {
            "b_tenant_id": tenant_id,
            "b_user_id": user_id,
            "b_blocked": blocked,
            "b_now": now,
        }
        row = (await run(self._conn, SET_BLOCKED, params)).first()
        return _user(row) if row is not None else None

    async def add(self, user: User) -> bool:
        try:
            async with self._conn.begin_nested():  # a clash leaves the transaction usable
                await self._conn.execute(insert(_T).values(**_values(user)))
        except IntegrityError:
            return False
        return True

    async def replace(self, user: User) -> bool:
        values = _values(user)
        for fixed in ("tenant_id", "user_id", "created_at", "last_login", "last_ip"):
            values.pop(fixed)
        values.pop("logins_count")
        try:
            async with self._conn.begin_nested():
                result = await self._conn.execute(
                    update(_T)
                    .where(_T.c.tenant_id == user.tenant_id, _T.c.user_id == user.user_id)
                    .values(**values)
                )
        except IntegrityError:
            return False
        return bool(result.rowcount)

    async def delete(self, tenant_id: str, user_id: str) -> User | None:
        row = (
            await self._conn.execute(
                delete(_T)
                .where(_T.c.tenant_id == tenant_id, _T.c.user_id == user_id)
                .returning(*_T.c)
            )
        ).first()
        return _user(row) if row is not None else None

    async def delete_for_connection(self, tenant_id: str, connection_id: str) -> list[str]:
        deleted = await self._conn.execute(
            delete(_T)
            .where(_T.c.tenant_id == tenant_id, _T.c.connection_id == connection_id)
            .returning(_T.c.user_id)
        )
        return sorted(deleted.scalars())

    async def page(
        self,
        tenant_id: str,
        *,
        offset: int,
        limit: int,
        sort: UserSort,
        query: Node | None = None,
    ) -> list[User]:
        """The search's page (store/user_search.py): its filter, its order."""
        dialect = self._conn.dialect.name
        stmt = page_statement(tenant_id, query, sort, dialect, offset, limit)
        return [_user(r) for r in (await self._conn.execute(stmt)).all()]

    async def count(self, tenant_id: str, query: Node | None = None) -> int:
        where = search_filter(tenant_id, query, self._conn.dialect.name)
        stmt = select(func.count()).select_from(_T).where(where)
        return int((await self._conn.execute(stmt)).scalar_one())

    async def by_identifier(self, tenant_id: str, identifier: str) -> list[User]:
        stmt = (
            select(_T)
            .where(_T.c.tenant_id == tenant_id, _T.c.identifier == identifier)
            .order_by(_T.c.created_at, _T.c.user_id)
        )
        return [_user(r) for r in (await self._conn.execute(stmt)).all()]

    async def connection_names(self, tenant_id: str) -> dict[str, str]:
        t = table(ConnectionRow)
        rows = await self._conn.execute(select(t.c.id, t.c.name).where(t.c.tenant_id == tenant_id))
        return {row.id: row.name for row in rows}

    async def list(self, tenant_id: str, *, limit: int | None = None) -> list[User]:
        query = select(_T).where(_T.c.tenant_id == tenant_id).order_by(_T.c.created_at, _T.c.id)
        if limit:
            query = query.limit(limit)
        return [_user(r) for r in (await self._conn.execute(query)).all()]


def user_record(user: User, connection: str) -> dict[str, Any]:
    """The Management-API-like JSON shape of a user (``nopass users``)."""

    def iso(moment: datetime | None) -> str | None:
        return moment.isoformat().replace("+00:00", "Z") if moment else None

    provider, _, local_id = user.user_id.partition("|")
    return {
        "user_id": user.user_id,
        **user.profile,
        "identities": [
            {"user_id": local_id, "provider": provider, "connection": connection, "isSocial": False}
        ],
        "created_at": iso(user.created_at),
        "updated_at": iso(user.updated_at),
        "last_login": iso(user.last_login),
        "last_ip": user.last_ip,
        "logins_count": user.logins_count,
    }
