"""Inbox recovery: how often a delivery's worker died holding it, and the request it had in flight.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("inbox") as batch:
        # Leases that ran out with the row still taken: bounded, so a delivery that kills its
        # worker every time ends as failed instead of being taken again for ever.
        batch.add_column(sa.Column("lease_expiries", sa.Integer, nullable=False, server_default="0"))
        # The fingerprint of the request being sent, written before it goes out: after a crash
        # the worker looks on the platform for it before sending it again.
        batch.add_column(sa.Column("in_flight", sa.String(64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("inbox") as batch:
        batch.drop_column("in_flight")
        batch.drop_column("lease_expiries")
