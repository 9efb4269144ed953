"""Short leases, renewed while a worker lives (connector/lease_keeper.py), as real processes: a webhook
receiver (`serve --no-worker`) and two `escalator work` replicas beside it, a Jira that is slow to
answer, and a lease of 2 s. A live worker keeps its delivery through a 6 s answer; a worker killed
with `kill -9` (no serve watching it) has its delivery taken by the other within about one lease."""

from __future__ import annotations

import os
import signal
import sqlite3
import time

from tests.support.fake_http import SlowJira
from tests.support.marks import ONE_AT_A_TIME
from tests.support.processes import wait_until
from tests.support.replicas import an_edit_held_by_a_worker

pytestmark = ONE_AT_A_TIME

LEASE = 2.0


def _row(tmp_path) -> tuple[str, int, int, str | None]:
    with sqlite3.connect(tmp_path / "escalator.db") as db:
        return db.execute("SELECT status, attempts, lease_expiries, lease_owner FROM inbox").fetchone()


def _run(tmp_path, jira: SlowJira, scenario) -> None:
    database = f"sqlite:///{tmp_path / 'escalator.db'}"
    held = an_edit_held_by_a_worker(tmp_path, database, jira, LEASE, issue_id="81001", key="LEASE-1")
    with held as replicas:
        scenario(replicas.workers)


def test_a_live_worker_keeps_its_delivery_through_an_answer_three_leases_long(tmp_path):
    jira = SlowJira(first_answer_after=3 * LEASE)

    def scenario(workers):
        wait_until(lambda: _row(tmp_path)[0] == "done", 60, "the delivery was not decided")

    _run(tmp_path, jira, scenario)
    status, attempts, expiries, _ = _row(tmp_path)
    # Renewed every 2/3 s: the other worker never found it expired, and Jira got one edit.
    assert (status, attempts, expiries, jira.puts) == ("done", 1, 0, 1)


def test_a_killed_workers_delivery_is_taken_by_the_other_within_about_one_lease(tmp_path):
    jira = SlowJira(first_answer_after=60)

    def scenario(workers):
        owner = _row(tmp_path)[3]
        holder = int(owner.split(":")[1])  # host:pid:tag
        assert holder in workers
        killed = time.monotonic()
        os.killpg(holder, signal.SIGKILL)
        wait_until(lambda: _row(tmp_path)[0] == "done", 30, "the other worker did not take the delivery")
        waited = time.monotonic() - killed
        # One lease (its last renewal at most a third of it before the kill), the claim's once-a-second
        # look for expired leases, and the decision; never worker.lease_seconds' old five minutes.
        assert waited < LEASE + 5, f"taken again {waited:.1f} s after the kill"

    _run(tmp_path, jira, scenario)
    status, attempts, expiries, _ = _row(tmp_path)
    assert (status, attempts, expiries, jira.puts) == ("done", 2, 1, 2)
