"""A worker killed with `kill -9` and no serve watching it (two `escalator work` replicas beside a
`serve --no-worker`, as on two hosts): the other finds its liveness lock free and takes its delivery
within seconds, not after the lease (a minute here), on SQLite and on PostgreSQL."""

from __future__ import annotations

import os
import signal
import time

from sqlalchemy import select

from connector.store.db import make_engine
from connector.store.tables import inbox
from tests.support.fake_http import SlowJira
from tests.support.marks import ONE_AT_A_TIME
from tests.support.processes import wait_for_line, wait_until
from tests.support.replicas import an_edit_held_by_a_worker

pytestmark = ONE_AT_A_TIME

LEASE = 60.0


def test_a_killed_workers_delivery_is_taken_by_the_other_in_seconds(tmp_path, db_url):
    jira = SlowJira(first_answer_after=120)  # the first edit hangs: its worker holds the delivery
    engine = make_engine(db_url)

    def row():
        with engine.connect() as conn:
            query = select(inbox.c.status, inbox.c.attempts, inbox.c.lease_expiries, inbox.c.lease_owner)
            return conn.execute(query).one()

    with an_edit_held_by_a_worker(tmp_path, db_url, jira, LEASE, issue_id="82001", key="GONE-1") as replicas:
        holder = int(row().lease_owner.split(":")[1])  # host:pid:tag
        survivor = replicas.workers[next(pid for pid in replicas.workers if pid != holder)]
        killed = time.monotonic()
        os.killpg(holder, signal.SIGKILL)
        wait_until(lambda: row().status == "done", 30, "the other worker did not take the delivery")
        waited = time.monotonic() - killed
        said = "is gone (its process ended): handed back what it held: 1 delivery"
        wait_for_line(survivor, said, timeout=5)
    # A look every 2 s, the claim's once-a-second look for expired leases, and the decision: seconds,
    # where the lease alone would have kept it a minute.
    assert waited < 10, f"taken again {waited:.1f} s after the kill"
    status, attempts, expiries, _ = row()
    engine.dispose()
    assert (status, attempts, expiries, jira.puts) == ("done", 2, 1, 2)
