"""A worker's liveness lock (connector/store/liveness.py) and the look for workers that are gone
(connector/lease_keeper.py, DeadOwners), on SQLite and PostgreSQL, with real processes killed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from connector.lease_keeper import DeadOwners
from connector.metrics import Metrics
from connector.store import inbox, liveness
from connector.store.db import make_engine
from tests.support.processes import wait_for_line, wait_until

ROOT = Path(__file__).resolve().parents[2]
T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
LEASE = timedelta(minutes=10)

_HOLDER = """
import sys, time
from connector.store.db import make_engine
from connector.store.liveness import Alive
alive = Alive(make_engine(sys.argv[1]), sys.argv[2])  # kept: the lock goes with the object
alive.hold()
print("held", flush=True)
time.sleep(600)
"""


def _holder(db_url: str, owner: str) -> subprocess.Popen:
    """A process that holds `owner`'s lock until it is killed."""
    proc = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, db_url, owner], cwd=ROOT, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    wait_for_line(proc, "held", timeout=30)
    return proc


def _kill(proc: subprocess.Popen) -> None:
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=30)


def _owner(pid: int) -> str:
    return f"host-a:{pid}:{liveness.new_tag()}"


def test_a_live_owner_is_not_gone_and_a_killed_one_is(db_url):
    engine = make_engine(db_url)
    owner = _owner(4242)
    proc = _holder(db_url, owner)
    try:
        assert liveness.gone(engine, [owner]) == []
        assert liveness.gone(engine, [owner]) == []  # looking took nothing from it
    finally:
        _kill(proc)
    wait_until(lambda: liveness.gone(engine, [owner]) == [owner], 10, "the killed owner was not found gone")
    engine.dispose()


def test_only_owners_that_say_they_hold_a_lock_are_ever_named(db_url):
    """A worker of an earlier version, or a command that claims without a lock, holds none: its
    leases are left to run out by themselves."""
    engine = make_engine(db_url)
    plain = "host-a:4243:0a1b2c"
    assert not liveness.holds_lock(plain)
    assert liveness.gone(engine, [plain]) == []
    with pytest.raises(ValueError, match="no liveness tag"):
        liveness.Alive(engine, plain)
    engine.dispose()


def test_a_released_lock_is_free_and_cannot_be_held_twice_meanwhile(db_url):
    engine = make_engine(db_url)
    owner = _owner(4244)
    alive = liveness.Alive(engine, owner)
    alive.hold()
    try:
        assert alive.held()
        with pytest.raises(RuntimeError, match="holds the liveness lock"):
            liveness.Alive(engine, owner).hold()
    finally:
        alive.release()
    if engine.dialect.name == "postgresql":
        assert liveness.gone(engine, [owner]) == [owner]
    else:  # its file went with it: an owner that made none is not known to be gone
        assert not list(Path(engine.url.database + ".workers").glob("*.lock"))
    engine.dispose()


def _lease(engine, owner: str, delivery: str, ticket: str) -> inbox.InboxItem:
    inbox.accept(engine, inbox.new_row("jira", delivery, "jira:issue_updated", ticket, False, b"{}", T0))
    (item,) = inbox.claim(engine, owner=owner, now=T0, lease=LEASE, limit=1)
    return item


class _Rt:
    def __init__(self, engine, owner):
        self.engine, self.owner = engine, owner
        self.clock = lambda: T0 + timedelta(seconds=5)
        self.metrics = Metrics()


def test_the_leases_of_a_gone_worker_are_run_out_and_no_one_elses(db_url):
    engine = make_engine(db_url)
    me, live, dead = _owner(1), _owner(2), _owner(3)
    mine, lives, died = (
        _lease(engine, me, "d1", "A"),
        _lease(engine, live, "d2", "B"),
        _lease(engine, dead, "d3", "C"),
    )
    plain = _lease(engine, "host-a:4:0a1b2c", "d4", "D")  # no lock at all: never named
    assert liveness.lease_owners(engine, T0) == {me, live, dead, "host-a:4:0a1b2c"}
    alive = liveness.Alive(engine, me)
    alive.hold()
    living, dying = _holder(db_url, live), _holder(db_url, dead)
    handed_back = []
    try:
        _kill(dying)
        watch = DeadOwners(_Rt(engine, me), alive, on_handed_back=lambda: handed_back.append(True))
        wait_until(lambda: watch.look() == [dead], 10, "the dead worker was not found")
        assert handed_back == [True]
        assert watch.rt.metrics.workers_gone._value.get() == 1  # escalator_workers_gone_total
        assert watch.look() == []  # its leases ran out: nothing of it is left to look at
    finally:
        _kill(living)
        alive.release()
    # The dead one's delivery is taken again at once, as after its lease ran out (the expiry counted);
    # the others still wait for their leases.
    (taken,) = inbox.claim(engine, owner=me, now=T0 + timedelta(seconds=6), lease=LEASE, limit=10)
    assert (taken.id, taken.lease_expiries) == (died.id, 1)
    assert {mine.id, lives.id, plain.id}.isdisjoint({taken.id})
    engine.dispose()


def test_an_owner_whose_lock_was_free_at_one_look_only_keeps_its_work(db_url):
    """Free at one look and held again by the next (its session was cut and it took the lock again):
    not gone. Only a lock free for a whole interval, seen at two looks, says the process ended."""
    engine = make_engine(db_url)
    me, other = _owner(6), _owner(7)
    theirs = _lease(engine, other, "d6", "F")
    alive = liveness.Alive(engine, me)
    alive.hold()
    watch = DeadOwners(_Rt(engine, me), alive, interval=0.5)
    holder = None
    try:
        assert watch.look() == []  # free now (nobody holds it yet): noted, not handed back
        holder = _holder(db_url, other)  # its lock is held again
        time.sleep(0.6)
        assert watch.look() == []
        _kill(holder)
        holder = None
        wait_until(lambda: liveness.gone(engine, [other]) == [other], 10, "the killed holder's lock stayed")
        assert watch.look() == []  # free again: from now on
        time.sleep(0.6)
        assert watch.look() == [other]
    finally:
        if holder is not None:
            _kill(holder)
        alive.release()
    (taken,) = inbox.claim(engine, owner=me, now=T0 + timedelta(seconds=6), lease=LEASE, limit=10)
    assert taken.id == theirs.id
    engine.dispose()


def test_a_lock_the_database_lost_is_held_again_at_the_next_look_which_hands_back_nothing(
    migrated_postgres_url,
):
    """A PostgreSQL restart ends every session, and every worker's lock with it: the next look takes
    this worker's lock again and hands back no one's work, since the others are taking theirs again."""
    from sqlalchemy import text

    engine = make_engine(migrated_postgres_url)
    me, other = _owner(5), _owner(8)
    _lease(engine, other, "d8", "G")  # its lock free all along (as if it had not taken it again yet)
    alive = liveness.Alive(engine, me)
    alive.hold()
    watch = DeadOwners(_Rt(engine, me), alive, interval=0.5)
    try:
        assert watch.look() == []  # the other's lock free: noted
        pid = alive._connection.dbapi_connection.info.backend_pid
        with engine.connect() as conn:
            conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
        wait_until(lambda: not alive.held(), 10, "the ended session was not noticed")
        assert liveness.gone(engine, [me]) == [me]  # meanwhile others would find it free
        time.sleep(0.6)
        assert watch.look() == []  # held again; what was noted is forgotten
        assert alive.held() and liveness.gone(engine, [me]) == []
        assert watch.look() == []  # the other's lock free again: noted anew
        time.sleep(0.6)
        assert watch.look() == [other]
    finally:
        alive.release()
        engine.dispose()
