"""Rate limiting: each delivery's rank in line for a write, and the shared sliding windows.

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.add_column("inbox", sa.Column("rank", sa.Integer(), nullable=True))
    op.create_table(
        "rate_windows",
        sa.Column("platform", sa.String(32), primary_key=True),
        sa.Column("bucket", sa.String(300), primary_key=True),
        sa.Column("seconds", sa.Float(), primary_key=True),
        sa.Column("first_slot", sa.BigInteger(), nullable=False),
        sa.Column("counts", sa.JSON(), nullable=False),
        sa.Column("blocked_until", TS, nullable=True),
        sa.Column("updated_at", TS, nullable=False),
    )
    op.create_index("ix_rate_windows_updated", "rate_windows", ["updated_at"])


def downgrade() -> None:
    op.drop_index("ix_rate_windows_updated", table_name="rate_windows")
    op.drop_table("rate_windows")
    with op.batch_alter_table("inbox") as batch:
        batch.drop_column("rank")
