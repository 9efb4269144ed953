"""inbox.retention_days: finished deliveries older than the retention go; nothing unfinished does."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select, update

from connector.store.db import writing
from connector.store.inbox import new_row, store_rows
from connector.store.retention import prune_inbox
from connector.store.tables import inbox, rate_windows

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


def _stored_bytes(engine, delivery_id: str) -> bytes:
    from sqlalchemy import LargeBinary, type_coerce

    with engine.connect() as conn:
        raw = type_coerce(inbox.c.body, LargeBinary)
        return bytes(conn.execute(select(raw).where(inbox.c.delivery_id == delivery_id)).scalar_one())


def test_finished_bodies_are_kept_compressed_and_read_back_as_received(engine):
    from connector.store.retention import compress_bodies

    body = json.dumps({"issue": {"fields": {"description": "checkout is down " * 40}}}).encode()
    rows = [new_row("jira", f"c-{n}", "jira:issue_updated", str(n), False, body, NOW) for n in range(3)]
    with writing(engine) as conn:
        store_rows(conn.connection.dbapi_connection, conn.dialect, rows)
        conn.execute(update(inbox).where(inbox.c.delivery_id != "c-2").values(status="done", finished_at=NOW))
    assert compress_bodies(engine) == 2
    assert len(_stored_bytes(engine, "c-0")) < len(body) / 4
    assert _stored_bytes(engine, "c-2") == body  # still pending: the worker reads it as stored
    with engine.connect() as conn:
        assert set(conn.execute(select(inbox.c.body)).scalars()) == {body}  # every reader sees the body
    assert compress_bodies(engine) == 0  # a second run finds nothing new
    with writing(engine) as conn:  # the pending one finishes later: the next run takes it
        conn.execute(
            update(inbox).where(inbox.c.delivery_id == "c-2").values(status="failed", finished_at=NOW)
        )
    assert compress_bodies(engine) == 1
    assert len(_stored_bytes(engine, "c-2")) < len(body) / 4


def test_the_workers_scheduler_prunes_compresses_and_drops_idle_rate_windows(tmp_path, sqlite_url):
    from connector.config import Config
    from connector.ratelimit import Ask, Limiter
    from connector.scheduler import SlaScheduler
    from tests.support.harness import FakeClock, start

    esc = start(Config.model_validate({"database": sqlite_url}), FakeClock(NOW))
    assert esc.rt.config.inbox.retention_days == 30
    engine = esc.rt.engine
    body = json.dumps({"ticket": {"description": "a long story " * 50}}).encode()
    rows = [new_row("zendesk", f"s-{n}", "ticket.updated", str(n), False, body, NOW) for n in range(2)]
    with writing(engine) as conn:
        store_rows(conn.connection.dbapi_connection, conn.dialect, rows)
        old = NOW - timedelta(days=31)
        conn.execute(update(inbox).where(inbox.c.delivery_id == "s-0").values(status="done", finished_at=old))
        conn.execute(update(inbox).where(inbox.c.delivery_id == "s-1").values(status="done", finished_at=NOW))
    Limiter(engine, esc.rt.config.rate_limits).admit(
        Ask("zendesk", "1", 999, 40, NOW, 1), NOW - timedelta(hours=1)
    )
    SlaScheduler(esc.rt)._prune()  # what the hourly "inbox-retention" job runs
    with engine.connect() as conn:
        assert list(conn.execute(select(inbox.c.delivery_id)).scalars()) == ["s-1"]
        assert conn.execute(select(func.count()).select_from(rate_windows)).scalar_one() == 0
    assert len(_stored_bytes(engine, "s-1")) < len(body) / 4
    esc.rt.close()
