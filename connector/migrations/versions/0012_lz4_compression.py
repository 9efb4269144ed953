"""PostgreSQL compresses the large values the worker writes with lz4 instead of pglz: a webhook's body
(a Jira issue event is 5–50 KB), the audit record, the outbox message and the ticket's snapshot.

Measured on the development machine, one 9 KB Jira body a row: an INSERT cost the server 0.12–0.21
ms with pglz and 0.02–0.03 with lz4, for the same size on disk; at 100 deliveries a second each is
written and read back several times. Only new values are written with lz4 (nothing is rewritten
here); older ones stay readable as they are. Servers before PostgreSQL 14, or built without lz4,
keep pglz: the upgrade then changes nothing.

Revision ID: 0012
Revises: 0011
"""

from __future__ import annotations

from alembic import op
from sqlalchemy import text

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

# (table, column): the values that are large enough to be compressed (over ~2 KB) on every delivery.
COLUMNS = (("inbox", "body"), ("audit_log", "record"), ("outbox", "message"), ("tickets", "snapshot"))


def _lz4_available() -> bool:
    found = (
        op.get_bind()
        .execute(
            text("SELECT 'lz4' = ANY(enumvals) FROM pg_settings WHERE name = 'default_toast_compression'")
        )
        .scalar()
    )
    return bool(found)


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql" or not _lz4_available():
        return
    for table, column in COLUMNS:
        op.execute(f"ALTER TABLE {table} ALTER COLUMN {column} SET COMPRESSION lz4")


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql" or not _lz4_available():
        return
    for table, column in COLUMNS:
        op.execute(f"ALTER TABLE {table} ALTER COLUMN {column} SET COMPRESSION DEFAULT")
