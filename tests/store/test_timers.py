"""Durable SLA timers: arming, re-arming, cancelling, and firing each one exactly once."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from connector.model import EventKind
from connector.store import inbox, timers
from connector.store.db import make_engine
from connector.store.tables import inbox as inbox_table
from tests.support.concurrency import run_together
from tests.support.timers import Timer

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
LATE = timedelta(seconds=30)


WARN = Timer("first_response", EventKind.SLA_WARNING, 75, T0 + timedelta(minutes=11, seconds=15))
BREACH = Timer("first_response", EventKind.SLA_BREACHED, 100, T0 + timedelta(minutes=15))


def _arm(engine, ticket, wanted, now=T0):
    with engine.begin() as conn:
        timers.reconcile(conn, "jira", ticket, wanted, now)


def _armed(engine, ticket):
    with engine.connect() as conn:
        return timers.armed(conn, "jira", ticket)


def _fire(engine, now, limit=100):
    return timers.fire_due(engine, now=now, limit=limit, late_after=LATE)


def test_arming_then_firing_when_due_feeds_the_inbox_once(engine):
    _arm(engine, "10040", [WARN, BREACH])
    assert _armed(engine, "10040") == {WARN.key: WARN.due, BREACH.key: BREACH.due}
    assert _fire(engine, T0 + timedelta(minutes=11)) == []  # nothing due yet

    (fired,) = _fire(engine, WARN.due + timedelta(seconds=1))
    assert (fired.key, fired.kind, fired.percent, fired.late) == (WARN.key, "sla.warning", 75, False)
    assert _fire(engine, WARN.due + timedelta(seconds=2)) == []  # fired once, never again
    assert _armed(engine, "10040") == {BREACH.key: BREACH.due}

    with engine.connect() as conn:
        row = conn.execute(select(inbox_table)).one()
    assert (row.platform, row.ticket_id, row.event_type, row.status) == (
        "jira", "10040", "sla.warning", inbox.PENDING,
    )  # fmt: skip
    assert row.delivery_id == f"timer:10040:{WARN.key}:{WARN.due.isoformat()}"
    body = json.loads(row.body)["timer"]
    assert body["metric"] == "first_response" and body["target_seconds"] == 900
    assert timers.FiredTimer.from_json("jira", "10040", body) == fired


def test_unchanged_timers_stay_fired_changed_ones_are_rearmed_unwanted_ones_removed(engine):
    _arm(engine, "10040", [WARN, BREACH])
    _fire(engine, WARN.due)
    # the same clocks again (a later event that changed nothing): the warning does not re-arm
    _arm(engine, "10040", [WARN, BREACH])
    assert _armed(engine, "10040") == {BREACH.key: BREACH.due}
    # raised to P1: a shorter target from the same start re-arms both
    sooner_warn = Timer("first_response", EventKind.SLA_WARNING, 75, T0 + timedelta(minutes=3))
    sooner_breach = Timer("first_response", EventKind.SLA_BREACHED, 100, T0 + timedelta(minutes=4))
    _arm(engine, "10040", [sooner_warn, sooner_breach])
    assert _armed(engine, "10040") == {WARN.key: sooner_warn.due, BREACH.key: sooner_breach.due}
    # the clock stopped (first public reply): nothing is left armed
    _arm(engine, "10040", [])
    assert _armed(engine, "10040") == {}
    assert _fire(engine, T0 + timedelta(hours=5)) == []
    assert timers.counts(engine) == {"armed": 0, "fired": 0}


def test_timers_due_while_down_fire_once_at_startup_marked_late(engine):
    _arm(engine, "A", [WARN, BREACH])
    _arm(engine, "B", [Timer("resolution", EventKind.SLA_BREACHED, 100, T0 + timedelta(hours=4))])
    fired = _fire(engine, T0 + timedelta(hours=1))  # the connector was down for an hour
    assert [(t.ticket_id, t.key, t.late) for t in fired] == [("A", WARN.key, True), ("A", BREACH.key, True)]
    assert _fire(engine, T0 + timedelta(hours=1)) == []


def test_a_tick_fires_oldest_due_first_up_to_its_batch(engine):
    for n in range(5):
        _arm(
            engine, f"T{n}", [Timer("first_response", EventKind.SLA_BREACHED, 100, T0 + timedelta(minutes=n))]
        )
    first = _fire(engine, T0 + timedelta(hours=1), limit=3)
    assert [t.ticket_id for t in first] == ["T0", "T1", "T2"]
    assert [t.ticket_id for t in _fire(engine, T0 + timedelta(hours=1), limit=3)] == ["T3", "T4"]


def test_two_schedulers_sharing_one_database_fire_each_timer_exactly_once(db_url, engine):
    n = 300
    with engine.begin() as conn:
        for i in range(n):
            due = T0 + timedelta(seconds=i % 60)
            timers.reconcile(
                conn, "jira", f"T{i}", [Timer("resolution", EventKind.SLA_BREACHED, 100, due)], T0
            )
    # Two schedulers, each with its own engine (as two replicas would have), racing batch by batch.
    engines = [make_engine(db_url), make_engine(db_url)]
    fired: list[list[timers.FiredTimer]] = [[], []]

    def run(k: int) -> None:
        while batch := _fire(engines[k], T0 + timedelta(minutes=5), limit=7):
            fired[k].extend(batch)

    try:
        run_together(run, 2, timeout=60)
    finally:
        for e in engines:
            e.dispose()
    tickets = [t.ticket_id for batch in fired for t in batch]
    assert sorted(tickets) == sorted(f"T{i}" for i in range(n))  # every timer fired, none twice
    assert inbox.counts(engine) == {"pending": n}


def test_overdue_seconds_shows_a_stuck_scheduler(engine):
    assert timers.overdue_seconds(engine, T0) == 0.0
    _arm(engine, "A", [WARN, BREACH])
    assert timers.overdue_seconds(engine, WARN.due - timedelta(seconds=1)) == 0.0
    assert timers.overdue_seconds(engine, BREACH.due + timedelta(seconds=90)) == 90 + 225
    _fire(engine, BREACH.due + timedelta(seconds=90))
    assert timers.overdue_seconds(engine, BREACH.due + timedelta(seconds=95)) == 0.0
    assert timers.counts(engine) == {"armed": 0, "fired": 2}


_SCHEDULER_PROCESS = """
import sys
from datetime import datetime, timedelta
from connector.store.db import make_engine
from connector.store.timers import fire_due
engine = make_engine(sys.argv[1])
now = datetime.fromisoformat(sys.argv[2])
fired = 0
while batch := fire_due(engine, now=now, limit=5, late_after=timedelta(seconds=30)):
    fired += len(batch)
print(fired)
"""


def test_two_scheduler_processes_fire_each_timer_exactly_once(db_url, engine):
    import subprocess
    import sys
    from pathlib import Path

    n = 200
    with engine.begin() as conn:
        for i in range(n):
            wanted = [Timer("resolution", EventKind.SLA_BREACHED, 100, T0 + timedelta(seconds=i % 30))]
            timers.reconcile(conn, "jira", f"T{i}", wanted, T0)
    root = Path(__file__).resolve().parents[2]
    now = (T0 + timedelta(minutes=1)).isoformat()
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _SCHEDULER_PROCESS, db_url, now],
            cwd=root,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    outputs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [err for _, err in outputs]
    assert sum(int(out) for out, _ in outputs) == n  # together they fired every timer …
    with engine.connect() as conn:
        delivered = conn.execute(select(inbox_table.c.ticket_id)).scalars().all()
    assert sorted(delivered) == sorted(f"T{i}" for i in range(n))  # … and none twice
