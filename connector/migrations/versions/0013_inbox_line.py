"""The inbox's line and its open rows, as two partial indexes: a claim reads its batch, not the backlog.

A claim took the oldest unfinished row of each ticket by grouping every unfinished row, then sorted all
the due ones to keep its batch: 5 ms a claim of 20 with 2,000 deliveries waiting on SQLite, 26 ms with
8,000, so an outage's backlog was drained in time that grew with its square. `ix_inbox_line` holds the
pending rows in the claim's order (with when each is due), so a claim walks until its batch is full;
`ix_inbox_open` holds each ticket's unfinished rows, so whether a row is its ticket's oldest is one
probe. Both hold only unfinished rows: they stay as small as the backlog, whatever the history.

Revision ID: 0013
Revises: 0012
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

# The conditions are written as the statements write them (connector/store/tables.py): a database uses
# a partial index only for a statement that names the same values.
PENDING = sa.text("status = 'pending'")
UNFINISHED = sa.text("status IN ('pending', 'processing')")


def upgrade() -> None:
    op.create_index(
        "ix_inbox_line",
        "inbox",
        [sa.text("coalesce(rank, -1)"), "received_at", "id", "next_attempt_at"],
        sqlite_where=PENDING,
        postgresql_where=PENDING,
    )
    op.create_index(
        "ix_inbox_open",
        "inbox",
        ["platform", "ticket_id", "id"],
        sqlite_where=UNFINISHED,
        postgresql_where=UNFINISHED,
    )


def downgrade() -> None:
    op.drop_index("ix_inbox_open", table_name="inbox")
    op.drop_index("ix_inbox_line", table_name="inbox")
