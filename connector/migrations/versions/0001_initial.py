"""Initial schema: inbox, tickets, append-only audit log.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer, "sqlite")
TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "inbox",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("platform", sa.String(32), nullable=False),
        sa.Column("delivery_id", sa.String(255), nullable=False),
        sa.Column("event_type", sa.String(128), nullable=False),
        sa.Column("ticket_id", sa.String(255), nullable=True),
        sa.Column("received_at", TS, nullable=False),
        sa.Column("body", sa.LargeBinary, nullable=False),
        sa.Column("ignored", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("next_attempt_at", TS, nullable=False),
        sa.Column("lease_owner", sa.String(64), nullable=True),
        sa.Column("lease_until", TS, nullable=True),
        sa.Column("confirmed", sa.JSON, nullable=True),
        sa.Column("last_error", sa.Text, nullable=True),
        sa.Column("finished_at", TS, nullable=True),
        sa.UniqueConstraint("platform", "delivery_id", name="uq_inbox_delivery"),
    )
    op.create_index("ix_inbox_due", "inbox", ["status", "next_attempt_at"])
    op.create_index("ix_inbox_ticket", "inbox", ["platform", "ticket_id", "id"])

    op.create_table(
        "tickets",
        sa.Column("platform", sa.String(32), primary_key=True),
        sa.Column("ticket_id", sa.String(255), primary_key=True),
        sa.Column("ticket_key", sa.String(255), nullable=True),
        sa.Column("requester_id", sa.String(255), nullable=True),
        sa.Column("tier", sa.String(64), nullable=True),
        sa.Column("priority", sa.String(8), nullable=True),
        sa.Column("priority_pinned", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("lease_owner", sa.String(64), nullable=True),
        sa.Column("lease_until", TS, nullable=True),
        sa.Column("updated_at", TS, nullable=True),
    )

    op.create_table(
        "audit_log",
        sa.Column("seq", Id, primary_key=True, autoincrement=False),
        sa.Column("record_id", sa.String(36), nullable=False, unique=True),
        sa.Column("at", TS, nullable=False),
        sa.Column("platform", sa.String(32), nullable=False),
        sa.Column("ticket_id", sa.String(255), nullable=True),
        sa.Column("rules", sa.Text, nullable=True),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("record", sa.Text, nullable=False),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
    )
    op.create_index("ix_audit_platform_at", "audit_log", ["platform", "at"])
    op.create_index("ix_audit_ticket", "audit_log", ["platform", "ticket_id"])

    op.create_table(
        "audit_head",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("seq", Id, nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
    )
    op.execute(
        sa.text("INSERT INTO audit_head (id, seq, hash) VALUES (1, 0, :genesis)").bindparams(genesis="0" * 64)
    )

    # The audit log is append-only in the database itself, not just by convention.
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            """
            CREATE FUNCTION escalator_audit_append_only() RETURNS trigger AS $$
            BEGIN
                RAISE EXCEPTION 'audit_log is append-only (% refused)', TG_OP;
            END;
            $$ LANGUAGE plpgsql
            """
        )
        op.execute(
            "CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log "
            "FOR EACH ROW EXECUTE FUNCTION escalator_audit_append_only()"
        )
    else:
        for verb in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER audit_log_no_{verb.lower()} BEFORE {verb} ON audit_log "
                f"BEGIN SELECT RAISE(ABORT, 'audit_log is append-only ({verb} refused)'); END"
            )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS audit_log_append_only ON audit_log")
        op.execute("DROP FUNCTION IF EXISTS escalator_audit_append_only()")
    for name in ("audit_head", "audit_log", "tickets", "inbox"):
        op.drop_table(name)
