"""Notifications: the outbox (one row per message to one channel) and each ticket's thread per channel.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer, "sqlite")
TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "outbox",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("dedupe_key", sa.String(64), nullable=False, unique=True),
        sa.Column("decision_id", sa.String(36), nullable=False),
        sa.Column("platform", sa.String(32), nullable=False),
        sa.Column("ticket_id", sa.String(255), nullable=False),
        sa.Column("channel", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("message", sa.JSON, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("next_attempt_at", TS, nullable=False),
        sa.Column("lease_owner", sa.String(64), nullable=True),
        sa.Column("lease_until", TS, nullable=True),
        sa.Column("answer", sa.Text, nullable=True),
        sa.Column("sent_at", TS, nullable=True),
    )
    op.create_index("ix_outbox_pending", "outbox", ["status", "id"])
    op.create_index("ix_outbox_ticket", "outbox", ["platform", "ticket_id"])
    op.create_table(
        "channel_threads",
        sa.Column("platform", sa.String(32), primary_key=True),
        sa.Column("ticket_id", sa.String(255), primary_key=True),
        sa.Column("channel", sa.String(64), primary_key=True),
        sa.Column("thread", sa.String(255), nullable=False),
        sa.Column("started_at", TS, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("channel_threads")
    op.drop_index("ix_outbox_ticket", table_name="outbox")
    op.drop_index("ix_outbox_pending", table_name="outbox")
    op.drop_table("outbox")
