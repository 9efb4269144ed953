"""inbox.retention_days: finished deliveries older than the retention go; nothing unfinished does."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import select, update

from connector.store.db import writing
from connector.store.inbox import new_row, store_rows
from connector.store.retention import prune_inbox
from connector.store.tables import inbox

NOW = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)


def test_only_finished_deliveries_older_than_the_cutoff_are_pruned(engine):
    rows = [new_row("jira", f"d-{n}", "jira:issue_updated", "1", False, b"{}", NOW) for n in range(6)]
    with writing(engine) as conn:
        store_rows(conn.connection.dbapi_connection, conn.dialect, rows)
        states = {
            "d-0": ("done", NOW - timedelta(days=40)),
            "d-1": ("ignored", NOW - timedelta(days=31)),
            "d-2": ("failed", NOW - timedelta(days=90)),
            "d-3": ("done", NOW - timedelta(days=2)),  # recent: kept
            "d-4": ("pending", None),  # unfinished: kept, however old
            "d-5": ("processing", None),
        }
        for delivery_id, (status, finished) in states.items():
            conn.execute(
                update(inbox)
                .where(inbox.c.delivery_id == delivery_id)
                .values(status=status, finished_at=finished)
            )
    assert prune_inbox(engine, before=NOW - timedelta(days=30)) == 3
    with engine.connect() as conn:
        left = sorted(conn.execute(select(inbox.c.delivery_id)).scalars())
    assert left == ["d-3", "d-4", "d-5"]
    assert prune_inbox(engine, before=NOW - timedelta(days=30)) == 0
