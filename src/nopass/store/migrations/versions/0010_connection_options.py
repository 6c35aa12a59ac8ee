"""connections: Auth0's other connection properties (display_name, realms, metadata, ...)

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-04 20:20:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A plain ADD COLUMN (no batch copy on SQLite: users cascade from connections).
    op.add_column(
        "connections",
        sa.Column("settings", sa.JSON(), server_default=sa.text("'{}'"), nullable=False),
    )


def downgrade() -> None:
    op.drop_column("connections", "settings")  # SQLite >= 3.35 drops a column in place
