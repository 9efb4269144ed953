"""The console's read model: audit facts for filters and reports, rule hits, escalation labels,
the indexer's position, and the policy texts seen in force.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer, "sqlite")
TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "console_decisions",
        sa.Column("seq", Id, primary_key=True, autoincrement=False),
        sa.Column("at", TS, nullable=False),
        sa.Column("platform", sa.String(32), nullable=False),
        sa.Column("ticket_id", sa.String(255), nullable=True),
        sa.Column("ticket_key", sa.String(255), nullable=True),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("trigger_kind", sa.String(32), nullable=True),
        sa.Column("policy_name", sa.String(255), nullable=True),
        sa.Column("policy_version", sa.String(64), nullable=True),
        sa.Column("policy_sha256", sa.String(64), nullable=True),
        sa.Column("tier_from", sa.String(64), nullable=True),
        sa.Column("tier_to", sa.String(64), nullable=True),
        sa.Column("priority_from", sa.String(8), nullable=True),
        sa.Column("priority_to", sa.String(8), nullable=True),
        sa.Column("escalated", sa.Boolean, nullable=False),
        sa.Column("sla_metric", sa.String(32), nullable=True),
        sa.Column("sla_calendar", sa.String(64), nullable=True),
        sa.Column("region", sa.String(64), nullable=True),
    )
    op.create_index("ix_console_decisions_platform", "console_decisions", ["platform", "seq"])
    op.create_index("ix_console_decisions_outcome", "console_decisions", ["outcome", "seq"])
    op.create_index("ix_console_decisions_version", "console_decisions", ["policy_version", "seq"])
    op.create_index("ix_console_decisions_key", "console_decisions", ["ticket_key", "seq"])
    op.create_index("ix_console_decisions_ticket", "console_decisions", ["platform", "ticket_id"])
    op.create_index("ix_console_decisions_at", "console_decisions", ["at"])
    op.create_index("ix_console_decisions_kind", "console_decisions", ["trigger_kind", "at"])
    op.create_index("ix_console_decisions_escalated", "console_decisions", ["escalated", "at"])
    op.create_table(
        "console_rule_hits",
        sa.Column("rule", sa.String(255), primary_key=True),
        sa.Column("seq", Id, primary_key=True, autoincrement=False),
    )
    op.create_index("ix_console_rule_hits_seq", "console_rule_hits", ["seq"])
    op.create_table(
        "console_escalation_labels",
        sa.Column("label", sa.String(255), primary_key=True),
        sa.Column("seq", Id, primary_key=True, autoincrement=False),
    )
    op.create_table(
        "console_index_state",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("last_seq", Id, nullable=False),
        sa.Column("last_verify", sa.JSON, nullable=True),
    )
    op.execute("INSERT INTO console_index_state (id, last_seq) VALUES (1, 0)")
    op.create_table(
        "console_policies",
        sa.Column("sha256", sa.String(64), primary_key=True),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("version", sa.String(64), nullable=False),
        sa.Column("path", sa.Text, nullable=False),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("seen_at", TS, nullable=False),
    )


def downgrade() -> None:
    for table in (
        "console_policies",
        "console_index_state",
        "console_escalation_labels",
        "console_rule_hits",
        "console_decisions",
    ):
        op.drop_table(table)
