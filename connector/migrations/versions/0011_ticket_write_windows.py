"""Each ticket's own write windows (a platform's per-ticket limit) kept on its `tickets` row: the
worker reads them with the ticket's lease and saves them with the decision's record, instead of a
locked transaction of their own per write (connector/ratelimit.py, `LeasedWindows`).

Revision ID: 0011
Revises: 0010
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("tickets", sa.Column("write_windows", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("tickets") as batch:
        batch.drop_column("write_windows")
