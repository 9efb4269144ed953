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
from tests.support.fixtures import load_fixture
from tests.support.marks import ONE_AT_A_TIME
from tests.support.processes import post_jira, wait_for_line, wait_until
from tests.support.replicas import receiver_and_two_workers

pytestmark = ONE_AT_A_TIME

LEASE = 60.0


def test_a_killed_workers_delivery_is_taken_by_the_other_in_seconds(tmp_path, db_url):
    jira = SlowJira(first_answer_after=120)  # the first edit hangs: its worker holds the delivery
    engine = make_engine(db_url)

    def row():
        with engine.connect() as conn:
            query = select(inbox.c.status, inbox.c.attempts, inbox.c.lease_expiries, inbox.c.lease_owner)
            return conn.execute(query).one()

    try:
        with receiver_and_two_workers(tmp_path, db_url, jira.url, LEASE) as replicas:
            payload = load_fixture("jira", "issue_created__outage")
            payload["issue"]["id"], payload["issue"]["key"] = "82001", "GONE-1"
            assert post_jira(replicas.port, payload, "gone-1") == 202
            try:
                assert jira.taken.wait(30), "no worker sent the edit"
                holder = int(row().lease_owner.split(":")[1])  # host:pid:tag
                survivor = replicas.workers[next(pid for pid in replicas.workers if pid != holder)]
                killed = time.monotonic()
                os.killpg(holder, signal.SIGKILL)
                wait_until(lambda: row().status == "done", 30, "the other worker did not take the delivery")
                waited = time.monotonic() - killed
                said = "is gone (its process ended): handed back what it held: 1 delivery"
                wait_for_line(survivor, said, timeout=5)
            finally:
                jira.release.set()  # before the workers are stopped
    finally:
        jira.close()
    # A look every 2 s, the claim's once-a-second look for expired leases, and the decision: seconds,
    # where the lease alone would have kept it a minute.
    assert waited < 10, f"taken again {waited:.1f} s after the kill"
    status, attempts, expiries, _ = row()
    engine.dispose()
    assert (status, attempts, expiries, jira.puts) == ("done", 2, 1, 2)
