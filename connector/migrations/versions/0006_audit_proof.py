"""Audit log that holds up: ticket keys and signatures on records, pruning, pseudonyms, checkpoints.

Existing records keep their hashes: the hash always covered the whole canonical record; what is
new is that `verify` also compares every column with it, so the new `ticket_key` column is filled
from each record's own JSON here (the append-only triggers are lifted for that one statement).

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import json

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer, "sqlite")
TS = sa.DateTime(timezone=True)
GENESIS = "0" * 64


def upgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    _drop_guards(postgres)
    op.add_column("audit_log", sa.Column("ticket_key", sa.String(255), nullable=True))
    op.add_column("audit_log", sa.Column("signature", sa.Text, nullable=True))
    op.create_index("ix_audit_ticket_key", "audit_log", ["platform", "ticket_key"])
    _fill_ticket_keys()

    # Pruning moves the chain's start: records up to base_seq are gone, base_hash is the last one's.
    op.add_column("audit_head", sa.Column("base_seq", Id, nullable=False, server_default="0"))
    op.add_column("audit_head", sa.Column("base_hash", sa.String(64), nullable=False, server_default=GENESIS))

    op.create_table(
        "audit_people",
        sa.Column("pseudonym", sa.String(40), primary_key=True),
        sa.Column("platform", sa.String(32), nullable=False),
        sa.Column("lookup", sa.String(80), nullable=False),
        sa.Column("person_id", sa.Text, nullable=False),
        sa.Column("name", sa.Text, nullable=True),
        sa.Column("first_seen", TS, nullable=False),
        sa.Column("last_seen_seq", Id, nullable=False),
        sa.UniqueConstraint("platform", "lookup", name="uq_audit_people_lookup"),
    )
    op.create_index("ix_audit_people_last_seen", "audit_people", ["last_seen_seq"])

    op.create_table(
        "audit_checkpoints",
        sa.Column("number", Id, primary_key=True, autoincrement=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("first_seq", Id, nullable=False),
        sa.Column("last_seq", Id, nullable=False),
        sa.Column("head_hash", sa.String(64), nullable=False),
        sa.Column("at", TS, nullable=False),
        sa.Column("digest", sa.String(64), nullable=False),
        sa.Column("document", sa.Text, nullable=False),  # the signed checkpoint, without its hash list
    )
    _create_guards(postgres)


def _fill_ticket_keys() -> None:
    conn = op.get_bind()
    rows = conn.execute(sa.text("SELECT seq, record FROM audit_log")).all()
    for seq, record in rows:
        try:
            key = (json.loads(record).get("ticket") or {}).get("key")
        except (ValueError, AttributeError):
            continue  # verify will name this record; the migration does not judge it
        if key is not None:
            conn.execute(
                sa.text("UPDATE audit_log SET ticket_key = :k WHERE seq = :s"), {"k": str(key), "s": seq}
            )


def _drop_guards(postgres: bool) -> None:
    if postgres:
        op.execute("DROP TRIGGER IF EXISTS audit_log_append_only ON audit_log")
        op.execute("DROP FUNCTION IF EXISTS escalator_audit_append_only()")
    else:
        op.execute("DROP TRIGGER IF EXISTS audit_log_no_update")
        op.execute("DROP TRIGGER IF EXISTS audit_log_no_delete")


def _create_guards(postgres: bool) -> None:
    """UPDATE is always refused; DELETE only for records at or before the pruned base (`audit prune`
    raises the base in the same transaction, right after signing a checkpoint at the cut)."""
    if postgres:
        op.execute(
            """
            CREATE FUNCTION escalator_audit_append_only() RETURNS trigger AS $$
            BEGIN
                IF TG_OP = 'DELETE' AND OLD.seq <= (SELECT base_seq FROM audit_head WHERE id = 1) THEN
                    RETURN OLD;
                END IF;
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
        op.execute(
            "CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log "
            "BEGIN SELECT RAISE(ABORT, 'audit_log is append-only (UPDATE refused)'); END"
        )
        op.execute(
            "CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log "
            "WHEN OLD.seq > (SELECT base_seq FROM audit_head WHERE id = 1) "
            "BEGIN SELECT RAISE(ABORT, 'audit_log is append-only (DELETE refused)'); END"
        )


def downgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    _drop_guards(postgres)
    op.drop_table("audit_checkpoints")
    op.drop_index("ix_audit_people_last_seen", table_name="audit_people")
    op.drop_table("audit_people")
    with op.batch_alter_table("audit_head") as batch:
        batch.drop_column("base_hash")
        batch.drop_column("base_seq")
    op.drop_index("ix_audit_ticket_key", table_name="audit_log")
    with op.batch_alter_table("audit_log") as batch:
        batch.drop_column("signature")
        batch.drop_column("ticket_key")
    # The original guards: every UPDATE and DELETE refused.
    if postgres:
        op.execute(
            "CREATE FUNCTION escalator_audit_append_only() RETURNS trigger AS $$ BEGIN "
            "RAISE EXCEPTION 'audit_log is append-only (% refused)', TG_OP; END; $$ LANGUAGE plpgsql"
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
