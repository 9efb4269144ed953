"""SLA clocks and durable timers: the ticket's last snapshot and clock state, and one row per armed timer.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer, "sqlite")
TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    # The canonical ticket as last seen (time events have no payload of their own) and its SLA clocks.
    with op.batch_alter_table("tickets") as batch:
        batch.add_column(sa.Column("snapshot", sa.JSON, nullable=True))
        batch.add_column(sa.Column("sla", sa.JSON, nullable=True))
    op.create_table(
        "timers",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("platform", sa.String(32), nullable=False),
        sa.Column("ticket_id", sa.String(255), nullable=False),
        sa.Column("key", sa.String(128), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("metric", sa.String(32), nullable=False),
        sa.Column("percent", sa.Integer, nullable=False),
        sa.Column("target_seconds", sa.Float, nullable=False),
        sa.Column("calendar", sa.String(64), nullable=False),
        sa.Column("due_at", TS, nullable=False),
        sa.Column("armed_at", TS, nullable=False),
        sa.Column("fired_at", TS, nullable=True),
        sa.UniqueConstraint("platform", "ticket_id", "key", name="uq_timers_ticket_key"),
    )
    # Only armed (unfired) timers are indexed by due time: a tick reads the due ones and nothing else.
    op.create_index(
        "ix_timers_due",
        "timers",
        ["due_at"],
        postgresql_where=sa.text("fired_at IS NULL"),
        sqlite_where=sa.text("fired_at IS NULL"),
    )


def downgrade() -> None:
    op.drop_index("ix_timers_due", table_name="timers")
    op.drop_table("timers")
    with op.batch_alter_table("tickets") as batch:
        batch.drop_column("sla")
        batch.drop_column("snapshot")
