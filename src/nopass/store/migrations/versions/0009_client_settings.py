"""auth0 settings: what tenants, resource servers and client grants keep beyond nopass' columns

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-04 20:15:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

EMPTY_OBJECT = sa.text("'{}'")
TABLES = ("tenants", "resource_servers", "client_grants")


def upgrade() -> None:
    for name in TABLES:
        with op.batch_alter_table(name, schema=None) as batch_op:
            batch_op.add_column(
                sa.Column("settings", sa.JSON(), server_default=EMPTY_OBJECT, nullable=False)
            )


def downgrade() -> None:
    for name in TABLES:
        with op.batch_alter_table(name, schema=None) as batch_op:
            batch_op.drop_column("settings")
