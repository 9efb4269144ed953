"""PostgreSQL keeps each ticket's SLA state as jsonb: the console's board and clock reports read a
dozen values out of it per ticket, and json (text) had to be parsed again for each, or cast first.

Revision ID: 0010
Revises: 0009
"""

from __future__ import annotations

from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":  # SQLite has one JSON: text
        op.execute("ALTER TABLE tickets ALTER COLUMN sla TYPE jsonb USING sla::jsonb")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE tickets ALTER COLUMN sla TYPE json USING sla::json")
