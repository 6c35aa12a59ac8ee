"""user search indexes: every order and indexed search of GET /api/v2/users

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-04 20:15:00.000000

The expression indexes are the ones of ``nopass.store.user_keys`` (the same SQL text the
search writes, per dialect). On PostgreSQL they are built ``CONCURRENTLY``-free, inside the
migration's transaction: at 10⁶ users this takes some seconds per index.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from nopass.store import user_keys

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

_COLUMNS = {
    "ix_users_tenant_updated": ["tenant_id", "updated_at", "user_id"],
    "ix_users_tenant_last_login": ["tenant_id", "last_login", "user_id"],
    "ix_users_tenant_logins_count": ["tenant_id", "logins_count", "user_id"],
}


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    for name, columns in _COLUMNS.items():
        op.create_index(name, "users", columns)
    for name, on, expression, ordered in user_keys.indexes():
        if on == dialect:
            keys: list[sa.TextClause | str] = ["tenant_id", sa.text(expression)]
            if ordered:
                keys.append("user_id")
            op.create_index(name, "users", keys)


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    for name, on, _, _ in user_keys.indexes():
        if on == dialect:
            op.drop_index(name, table_name="users")
    for name in reversed(list(_COLUMNS)):
        op.drop_index(name, table_name="users")
