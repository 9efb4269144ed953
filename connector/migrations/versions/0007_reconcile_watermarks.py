"""Reconcile watermarks: per platform, the instant up to which changed tickets were compared.

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "reconcile_watermarks",
        sa.Column("platform", sa.String(32), primary_key=True),
        sa.Column("watermark", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("reconcile_watermarks")
