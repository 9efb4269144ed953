"""Console at scale: the open tickets with SLA clocks found by an index, and failed logins in the
database so every worker and replica counts them together.

Revision ID: 0009
Revises: 0008
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)
ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    # True while the ticket has clocks and is not resolved (connector/store/tickets.py keeps it).
    op.add_column("tickets", sa.Column("sla_open", sa.Boolean(), nullable=True))
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        started, resolved = "(sla::jsonb ->> 'started_at')", "(sla::jsonb ->> 'resolved_at')"
    else:
        started, resolved = "json_extract(sla, '$.started_at')", "json_extract(sla, '$.resolved_at')"
    opened = f"sla IS NOT NULL AND {started} IS NOT NULL AND {resolved} IS NULL"
    op.execute(f"UPDATE tickets SET sla_open = CASE WHEN {opened} THEN TRUE ELSE NULL END")
    op.create_index("ix_tickets_sla_open", "tickets", ["sla_open"])
    op.create_table(
        "console_login_failures",
        sa.Column("id", ID, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("address", sa.String(64), nullable=False),
        sa.Column("at", TS, nullable=False),
    )
    op.create_index("ix_console_login_failures_key", "console_login_failures", ["name", "address", "at"])


def downgrade() -> None:
    op.drop_index("ix_console_login_failures_key", table_name="console_login_failures")
    op.drop_table("console_login_failures")
    op.drop_index("ix_tickets_sla_open", table_name="tickets")
    op.drop_column("tickets", "sla_open")
