"""management api: client grants, user metadata and blocks, resource server scopes, logs by user

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03 14:30:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import nopass.store.tables

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

EMPTY_OBJECT = sa.text("'{}'")
EMPTY_LIST = sa.text("'[]'")


def upgrade() -> None:
    op.create_table(
        "client_grants",
        sa.Column("id", sa.String(length=24), nullable=False),
        sa.Column("tenant_id", sa.String(length=32), nullable=False),
        sa.Column("client_id", sa.String(length=128), nullable=False),
        sa.Column("audience", sa.String(length=512), nullable=False),
        sa.Column("scope", sa.JSON(), nullable=False),
        sa.Column("created_at", nopass.store.tables.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_client_grants_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_client_grants")),
        sa.UniqueConstraint(
            "tenant_id",
            "client_id",
            "audience",
            name=op.f("uq_client_grants_tenant_id_client_id_audience"),
        ),
    )
    op.create_index(
        op.f("ix_client_grants_tenant_id"), "client_grants", ["tenant_id"], unique=False
    )
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("app_metadata", sa.JSON(), server_default=EMPTY_OBJECT, nullable=False)
        )
        batch_op.add_column(
            sa.Column("user_metadata", sa.JSON(), server_default=EMPTY_OBJECT, nullable=False)
        )
        batch_op.add_column(
            sa.Column("blocked", sa.Boolean(), server_default=sa.false(), nullable=False)
        )
        batch_op.create_index("ix_users_tenant_created", ["tenant_id", "created_at", "user_id"])
        batch_op.create_index("ix_users_tenant_identifier", ["tenant_id", "identifier"])
    with op.batch_alter_table("audit_events", schema=None) as batch_op:
        batch_op.create_index("ix_audit_events_tenant_user", ["tenant_id", "user_id", "id"])
    # A user's sessions and refresh tokens, listed and deleted by the Management API.
    with op.batch_alter_table("sessions", schema=None) as batch_op:
        batch_op.create_index("ix_sessions_tenant_user", ["tenant_id", "user_id"])
    with op.batch_alter_table("refresh_tokens", schema=None) as batch_op:
        batch_op.create_index("ix_refresh_tokens_tenant_user", ["tenant_id", "user_id"])
    with op.batch_alter_table("resource_servers", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("scopes", sa.JSON(), server_default=EMPTY_LIST, nullable=False)
        )


def downgrade() -> None:
    with op.batch_alter_table("refresh_tokens", schema=None) as batch_op:
        batch_op.drop_index("ix_refresh_tokens_tenant_user")
    with op.batch_alter_table("sessions", schema=None) as batch_op:
        batch_op.drop_index("ix_sessions_tenant_user")
    with op.batch_alter_table("audit_events", schema=None) as batch_op:
        batch_op.drop_index("ix_audit_events_tenant_user")
    with op.batch_alter_table("resource_servers", schema=None) as batch_op:
        batch_op.drop_column("scopes")
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.drop_index("ix_users_tenant_identifier")
        batch_op.drop_index("ix_users_tenant_created")
        batch_op.drop_column("blocked")
        batch_op.drop_column("user_metadata")
        batch_op.drop_column("app_metadata")
    op.drop_index(op.f("ix_client_grants_tenant_id"), table_name="client_grants")
    op.drop_table("client_grants")
