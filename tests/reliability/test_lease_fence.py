"""A worker whose lease ran out while it worked (cut off from the database past
`worker.lease_seconds`) finds its delivery taken and decided by another worker. Its late result must
not overwrite that: the row stays done, the audit holds one decision, and its note is not sent
again (the in-flight mark before a note is refused once the row is no longer its own)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select, update

from connector import pipeline
from connector.store import inbox
from connector.store.db import pipelined_writing
from connector.store.tables import tickets
from tests.conformance.drivers import Spec, post
from tests.reliability.test_exactly_once import NotePlatform


def _decisions(esc) -> list[dict]:
    return [r for r in esc.audit() if "notification" not in r]


def test_a_late_worker_leaves_the_decision_another_worker_made_meanwhile(esc, driver, api, monkeypatch):
    platform = NotePlatform(api, driver.platform)
    assert post(esc, driver, driver.created(Spec(71, labels=("outage",)), esc.clock())).status_code == 202
    lease = timedelta(seconds=esc.rt.config.worker.lease_seconds)
    (late,) = inbox.claim(esc.rt.engine, owner="late-worker", now=esc.clock(), lease=lease, limit=1)

    esc.clock.advance(lease.total_seconds() + 1)  # the late worker renewed nothing: its lease ran out
    esc.work()  # another worker takes the delivery and decides it
    assert inbox.counts(esc.rt.engine) == {"done": 1} and len(platform.notes) == 1
    decided = _decisions(esc)

    monkeypatch.setattr(esc.rt, "owner", "late-worker")
    assert pipeline.process(esc.rt, late) == pipeline.TAKEN_OVER

    assert inbox.counts(esc.rt.engine) == {"done": 1}  # not overwritten as failed, nor as done again
    assert _decisions(esc) == decided  # one decision audited: the other worker's
    assert len(platform.notes) == 1, "the late worker sent the note again"


def test_writes_to_a_row_no_longer_ours_are_refused_and_roll_back_their_transaction(esc, driver):
    if esc.rt.engine.dialect.name == "sqlite" and driver.platform != "jira":
        pytest.skip("the store's fence is the same for every platform")
    assert post(esc, driver, driver.created(Spec(72), esc.clock())).status_code == 202
    lease = timedelta(seconds=60)
    (mine,) = inbox.claim(esc.rt.engine, owner="w1", now=esc.clock(), lease=lease, limit=1)
    with pytest.raises(inbox.LeaseLost, match="no longer w2's"):
        inbox.record_in_flight(esc.rt.engine, mine, "fp", owner="w2", confirmed=frozenset())
    # As a record does it: other writes first (here the ticket's memory), the delivery's row last, in a
    # pipelined block on PostgreSQL. Refused, the whole transaction is rolled back, the ticket's too.
    with pytest.raises(inbox.LeaseLost), pipelined_writing(esc.rt.engine) as conn:
        conn.execute(update(tickets).where(tickets.c.ticket_id == mine.ticket_id).values(priority="P1"))
        inbox.finish(conn, mine, status=inbox.DONE, owner="w2", now=esc.clock())
    assert inbox.counts(esc.rt.engine) == {"processing": 1}
    with esc.rt.engine.connect() as conn:  # and the pool's connection is fit for the next transaction
        priority = conn.execute(select(tickets.c.priority).where(tickets.c.ticket_id == mine.ticket_id))
        assert priority.scalar_one() is None
    # The owner's own writes land (on PostgreSQL, inside a pipelined block too).
    inbox.record_in_flight(esc.rt.engine, mine, "fp", owner="w1", confirmed=frozenset())
    with pipelined_writing(esc.rt.engine) as conn:
        inbox.finish(conn, mine, status=inbox.DONE, owner="w1", now=esc.clock())
    assert inbox.counts(esc.rt.engine) == {"done": 1}
