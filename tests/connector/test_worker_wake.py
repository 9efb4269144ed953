"""A delivery stored by one process reaches a worker waiting in another at once, without its poll:
NOTIFY on PostgreSQL, a datagram beside the SQLite file. A lost signal still ends at the poll, and a
signal nobody hears never troubles the webhook's acknowledgement."""

from __future__ import annotations

import json
import socket
import threading
import time
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select, text

from connector import wakeup, worker
from connector.app import create_app
from connector.config import Config
from connector.model import EventKind
from connector.runtime import build_runtime
from connector.scheduler import SlaScheduler
from connector.store import inbox, timers
from connector.store.db import writing
from connector.store.tables import inbox as inbox_table
from connector.worker import WorkerPool
from tests.support.fixtures import fixture_bytes
from tests.support.harness import SECRET, sign
from tests.support.marks import ONE_AT_A_TIME
from tests.support.timers import Timer

pytestmark = ONE_AT_A_TIME

LONG_POLL = 30.0  # far beyond every bound below: only a wake-up can explain a prompt claim


def _config(db_url: str, poll: float) -> Config:
    return Config.model_validate(
        {
            "database": db_url,
            "dry_run": True,
            "worker": {"poll_seconds": poll, "concurrency": 4},
            "platforms": {"jira": {"url": "http://127.0.0.1:9", "webhook_secret": SECRET}},
        }
    )


def _deliver(client, n: int, *, later: int = 0) -> None:
    """Issue WAKE-n's webhook; `later`: a later change of the same issue (seconds on)."""
    payload = json.loads(fixture_bytes("jira", "issue_created__outage"))
    payload["issue"]["id"], payload["issue"]["key"] = str(50_000 + n), f"WAKE-{n}"
    if later:
        updated = datetime.fromisoformat(payload["issue"]["fields"]["updated"]) + timedelta(seconds=later)
        payload["issue"]["fields"]["updated"] = updated.isoformat()
    body = json.dumps(payload).encode()
    answer = client.post(
        "/webhooks/jira",
        data=body,
        headers={"X-Hub-Signature": sign(body), "X-Atlassian-Webhook-Identifier": f"wake-{uuid.uuid4()}"},
    )
    assert answer.status_code == 202, answer.data


def _seconds_until_done(engine, n: int, timeout: float) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        with engine.connect() as conn:
            done = conn.execute(select(inbox_table.c.status).where(inbox_table.c.status == "done")).all()
        if len(done) >= n:
            return time.monotonic() - started
        time.sleep(0.01)
    raise AssertionError(f"only {len(done)} of {n} deliveries were handled within {timeout:.0f}s")


@pytest.fixture
def two_processes(db_url):
    """The web side and the worker side as two runtimes with their own engines (and, on SQLite,
    their own connections and writer locks), as serve and its worker process have."""
    web = build_runtime(_config(db_url, LONG_POLL))
    work = build_runtime(_config(db_url, LONG_POLL))
    yield web, work
    web.close()
    work.close()


def test_a_delivery_stored_elsewhere_wakes_a_worker_waiting_on_a_long_poll(two_processes):
    web, work = two_processes
    pool = WorkerPool(work)
    pool.start()
    try:
        assert pool._listener is not None and pool._listener.ready.wait(10)
        time.sleep(0.2)  # the pool's first look (at start) has found nothing and it now waits
        client = create_app(web).test_client()
        for n in range(3):  # one after the other: each must wake the pool again
            _deliver(client, n)
            assert _seconds_until_done(work.engine, n + 1, timeout=LONG_POLL / 3) < 2.0
    finally:
        assert pool.close(5)


def test_a_lost_signal_is_caught_by_the_poll(db_url):
    web = build_runtime(_config(db_url, LONG_POLL))
    work = build_runtime(_config(db_url, 0.5))
    pool = WorkerPool(work, listen=False)  # deaf: as if every signal were lost
    pool.start()
    try:
        time.sleep(0.2)
        _deliver(create_app(web).test_client(), 1)
        waited = _seconds_until_done(work.engine, 1, timeout=10)
        assert waited < 3.0  # the 0.5 s poll, on a shared machine
    finally:
        pool.close(5)
        web.close()
        work.close()


def test_a_worker_whose_listen_connection_was_cut_listens_again(postgres_url):
    web = build_runtime(_config(postgres_url, LONG_POLL))
    work = build_runtime(_config(postgres_url, LONG_POLL))
    pool = WorkerPool(work)
    pool.start()
    try:
        listener = pool._listener
        assert listener is not None and listener.ready.wait(10)
        with web.engine.connect() as conn:  # what a database restart or a proxy's idle cut does
            cut = conn.execute(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND query ILIKE 'LISTEN%'"
                )
            ).all()
        assert cut == [(True,)]
        deadline = time.monotonic() + 10
        while not (listener.ready.is_set() and listener._conn is not None) and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.3)
        _deliver(create_app(web).test_client(), 7)
        assert _seconds_until_done(work.engine, 1, timeout=10) < 2.0
    finally:
        pool.close(5)
        web.close()
        work.close()


def test_a_doorbell_nobody_hears_neither_fails_nor_slows_the_acknowledgement(sqlite_url, tmp_path):
    rt = build_runtime(_config(sqlite_url, LONG_POLL))
    folder = wakeup.socket_folder(rt.engine)
    folder.mkdir()
    dead = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    dead.bind(str(folder / "999999.0.sock"))
    dead.close()  # its file stays: a worker killed without cleaning up
    try:
        client = create_app(rt).test_client()
        started = time.perf_counter()
        for n in range(20):
            _deliver(client, n)
        assert (time.perf_counter() - started) / 20 < 0.05
        with rt.engine.connect() as conn:
            assert conn.execute(select(inbox_table.c.id)).all().__len__() == 20
    finally:
        rt.close()


def test_a_long_database_path_still_gets_a_socket(tmp_path):
    deep = tmp_path / ("d" * 60) / ("e" * 60)
    deep.mkdir(parents=True)
    rt = build_runtime(_config(f"sqlite:///{deep / 'escalator.db'}", LONG_POLL))
    woken = []
    listener = wakeup.listener(rt.engine, woken.append)
    try:
        assert listener is not None and listener.ready.wait(5)
        assert len(str(wakeup.socket_folder(rt.engine))) > 107
        before = len(woken)
        bell = wakeup.doorbell(rt.engine)
        bell.rang([{"platform": "zendesk", "ticket_id": "7"}] * 2)
        bell.close()
        deadline = time.monotonic() + 5
        while len(woken) == before and time.monotonic() < deadline:
            time.sleep(0.01)
        assert woken[before:] == [Counter({("zendesk", "7"): 2})]
    finally:
        if listener is not None:
            listener.stop()
        rt.close()


def test_a_signal_names_its_tickets_in_payloads_postgresql_and_a_datagram_can_carry():
    stored = Counter({("jira", f"OPS-{n}"): 1 + n % 3 for n in range(2000)})
    chunks = wakeup.payloads(stored)
    assert len(chunks) > 1 and all(len(c.encode()) <= wakeup.PAYLOAD_BYTES for c in chunks)
    heard: Counter = Counter()
    for chunk in chunks:
        heard += wakeup.parse(chunk)
    assert heard == stored
    assert wakeup.payloads(Counter({("jira", "X" * 8000): 1})) == [""]  # too long to name: unnamed
    assert wakeup.parse("") is None and wakeup.parse(b"not json") is None and wakeup.parse("[[1]]") is None


def _listening_pool(rt) -> WorkerPool:
    """A started pool whose first look (at start) is over: from here only a signal wakes it."""
    pool = WorkerPool(rt)
    pool.start()
    assert pool._listener is not None and pool._listener.ready.wait(10)
    time.sleep(0.3)
    return pool


def test_a_successor_stored_while_its_ticket_is_in_flight_is_taken_when_that_ends(two_processes, monkeypatch):
    web, work = two_processes
    handling, release = threading.Event(), threading.Event()
    process = worker.process

    def first_waits(rt, item):
        if not handling.is_set():
            handling.set()
            assert release.wait(10)
        return process(rt, item)

    monkeypatch.setattr(worker, "process", first_waits)
    pool = _listening_pool(work)
    client = create_app(web).test_client()
    try:
        _deliver(client, 5)
        assert handling.wait(5)
        _deliver(client, 5, later=1)  # the same ticket: the claim it wakes must leave it, it is leased
        time.sleep(0.3)
        release.set()
        assert _seconds_until_done(work.engine, 2, timeout=LONG_POLL / 3) < 3.0
    finally:
        release.set()
        assert pool.close(5)


def test_a_delivery_that_leaves_nothing_behind_sends_the_dispatcher_looking_no_more(
    two_processes, monkeypatch
):
    """Each delivery costs the one claim that took it: its end wakes nobody (no empty second claim)."""
    web, work = two_processes
    claims: list[int] = []
    claim = inbox.claim

    def counted(*args, **kwargs):
        taken = claim(*args, **kwargs)
        claims.append(len(taken))
        return taken

    monkeypatch.setattr(inbox, "claim", counted)
    dues: list[float] = []
    next_due = inbox.next_due
    monkeypatch.setattr(inbox, "next_due", lambda *a, **k: dues.append(time.monotonic()) or next_due(*a, **k))
    pool = _listening_pool(work)
    client = create_app(web).test_client()
    try:
        before, read_before = len(claims), len(dues)
        for n in range(3):
            _deliver(client, 10 + n)
            _seconds_until_done(work.engine, n + 1, timeout=LONG_POLL / 3)
            time.sleep(0.2)  # a look its end asked for would have been made by now
        assert claims[before:] == [1, 1, 1]
        assert dues[read_before:] == []  # nothing was left to wait: when it comes due is known
    finally:
        assert pool.close(5)


def test_two_replicas_take_every_change_of_busy_tickets_without_waiting_for_a_poll(db_url):
    """Three changes each to eight tickets, sent as fast as they are stored, to two replicas' workers
    that only signals can wake: a successor the other replica's claim had to leave (the ticket was
    leased here) is taken when its predecessor ends, whichever replica holds it."""
    web = build_runtime(_config(db_url, LONG_POLL))
    replicas = [build_runtime(_config(db_url, LONG_POLL)) for _ in range(2)]
    pools = [_listening_pool(rt) for rt in replicas]
    client = create_app(web).test_client()
    try:
        for change in range(3):
            for ticket in range(8):
                _deliver(client, 20 + ticket, later=change)
        assert _seconds_until_done(web.engine, 24, timeout=LONG_POLL / 3) < 10.0
        with web.engine.connect() as conn:
            handled = conn.execute(text("SELECT count(*) FROM audit_log")).scalar_one()
        assert handled == 24  # each change once
    finally:
        for pool in pools:
            assert pool.close(5)
        for rt in (web, *replicas):
            rt.close()


def test_two_rows_of_one_ticket_signalled_together_each_send_the_dispatcher_looking(db_url):
    """One claim takes one delivery per ticket: the second row signalled with the first is owed to the
    ticket, and the first's end sends the dispatcher for it; a ticket owed nothing sends it nowhere."""
    rt = build_runtime(_config(db_url, LONG_POLL))
    now = datetime.now(UTC)
    for n, ticket in enumerate(["T-1", "T-1", "T-2"]):
        row = inbox.new_row("jira", f"d-{n}", "jira:issue_updated", ticket, False, b"{}", now)
        inbox.accept(rt.engine, row)
    pool = WorkerPool(rt, listen=False)  # not started: its dispatcher's steps are taken by hand
    pool._hears = True  # as with its listener, which the signal below stands for
    try:
        pool.wake(Counter({("jira", "T-1"): 2, ("jira", "T-2"): 1}))
        assert pool._claim(4) == 2  # one row of each ticket
        taken = {}
        for _ in range(2):
            item, unnamed = pool._work.get_nowait()
            taken[item.ticket_id] = (item, unnamed)
        assert pool._ended(*taken["T-2"], "failed") is False  # nothing owed to T-2
        for item, _ in taken.values():
            worker.process(rt, item)  # recorded (as unreadable): the ticket's lease ends
        assert pool._ended(*taken["T-1"], "failed") is True  # T-1's second row waits for it
        assert pool._claim(4) == 1
        item, unnamed = pool._work.get_nowait()
        assert pool._ended(item, unnamed, "failed") is False
        assert pool._ended(item, unnamed - 1, "failed") is True  # a signal naming no tickets came
        assert pool._ended(item, unnamed, "retrying") is True  # it comes due again on its own
    finally:
        rt.close()


def test_a_pool_that_does_not_listen_still_takes_a_successor_when_its_ticket_ends(sqlite_url):
    # With `worker.listen: false` no signal names the tickets with work waiting: each end looks again.
    rt = build_runtime(_config(sqlite_url, LONG_POLL))
    client = create_app(rt).test_client()
    _deliver(client, 6)
    _deliver(client, 6, later=1)  # stored before the pool starts: its first claim takes one of them
    pool = WorkerPool(rt, listen=False)
    pool.start()
    try:
        assert _seconds_until_done(rt.engine, 2, timeout=LONG_POLL / 3) < 3.0
    finally:
        assert pool.close(5)
        rt.close()


def test_a_successor_signalled_while_its_ticket_ends_during_a_claim_is_still_owed(db_url, monkeypatch):
    """Found by a real `escalator serve` on PostgreSQL: a claim whose snapshot came before the ticket's
    delivery ended could not take the successor, and then forgot it was owed (the ticket was no longer
    in flight), so the successor's successor waited for the poll."""
    rt = build_runtime(_config(db_url, LONG_POLL))
    now = datetime.now(UTC)
    ticket = ("jira", "T-1")

    def store(n: int) -> None:
        inbox.accept(
            rt.engine, inbox.new_row("jira", f"d-{n}", "jira:issue_updated", "T-1", False, b"{}", now)
        )

    pool = WorkerPool(rt, listen=False)  # not started: its dispatcher's steps are taken by hand
    pool._hears = True  # as with its listener, which the signals below stand for
    try:
        store(0)
        pool.wake(Counter({ticket: 1}))
        assert pool._claim(4) == 1
        first, unnamed = pool._work.get_nowait()
        for n in (1, 2):
            store(n)
        pool.wake(Counter({ticket: 2}))  # two successors, while the first is in flight
        claim = inbox.claim

        def first_ends_meanwhile(*args, **kwargs):
            taken = claim(*args, **kwargs)  # its snapshot: the ticket still leased, nothing taken
            worker.process(rt, first)
            assert pool._ended(first, unnamed, "failed") is True
            return taken

        monkeypatch.setattr(inbox, "claim", first_ends_meanwhile)
        assert pool._claim(4) == 0
        monkeypatch.setattr(inbox, "claim", claim)
        assert pool._claim(4) == 1
        second, unnamed = pool._work.get_nowait()
        worker.process(rt, second)
        assert pool._ended(second, unnamed, "failed") is True  # the third is still owed
    finally:
        rt.close()


def test_rows_stored_while_nobody_listened_are_taken_one_after_the_other(db_url):
    """Found by kill -9 of a real worker: changes to a ticket stored while no worker listened were
    signalled to nobody, and each waited for a poll once its predecessor ended. The claim sees them."""
    rt = build_runtime(_config(db_url, LONG_POLL))
    now = datetime.now(UTC)
    for n in range(2):
        inbox.accept(
            rt.engine, inbox.new_row("jira", f"d-{n}", "jira:issue_updated", "T-1", False, b"{}", now)
        )
    pool = WorkerPool(rt, listen=False)  # not started: its dispatcher's steps are taken by hand
    pool._hears = True  # as with a listener that heard none of it
    try:
        assert pool._claim(4) == 1
        first, unnamed = pool._work.get_nowait()
        assert first.behind
        worker.process(rt, first)
        assert pool._ended(first, unnamed, "failed") is True
        assert pool._claim(4) == 1
        last, unnamed = pool._work.get_nowait()
        assert not last.behind
        worker.process(rt, last)
        assert pool._ended(last, unnamed, "failed") is False
    finally:
        rt.close()


def test_a_retry_a_delivery_leaves_is_taken_when_it_comes_due_not_at_the_next_poll(db_url):
    # Jira cannot be reached (nothing listens on port 9): each attempt ends "retrying", due again
    # after the backoff. The worker learns of that from the delivery's end, not from a signal.
    jira = {"url": "http://127.0.0.1:9", "email": "bot@acme.test", "api_token": "t", "webhook_secret": SECRET}
    config = {
        "database": db_url,
        "dry_run": False,
        "worker": {"poll_seconds": LONG_POLL, "backoff_initial_seconds": 0.3, "backoff_max_seconds": 0.3},
        "platforms": {"jira": jira},
    }
    rt = build_runtime(Config.model_validate(config))
    _deliver(create_app(rt).test_client(), 7)
    pool = _listening_pool(rt)
    try:
        deadline = time.monotonic() + LONG_POLL / 3
        attempts = 0
        while attempts < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
            with rt.engine.connect() as conn:
                attempts = conn.execute(select(inbox_table.c.attempts)).scalar_one()
        assert attempts >= 3, "a retry waited for the poll"
    finally:
        assert pool.close(5)
        rt.close()


def test_a_retry_is_taken_when_it_comes_due_not_at_the_next_poll(sqlite_url):
    rt = build_runtime(_config(sqlite_url, LONG_POLL))
    _deliver(create_app(rt).test_client(), 3)
    now = datetime.now(UTC)
    with writing(rt.engine) as conn:  # as a 503's backoff or the rate limiter leaves it: due in 0.5 s
        conn.execute(inbox_table.update().values(next_attempt_at=now + timedelta(seconds=0.5)))
    pool = WorkerPool(rt)
    pool.start()
    try:
        assert _seconds_until_done(rt.engine, 1, timeout=LONG_POLL / 3) < 3.0
        assert inbox.next_due(rt.engine, now=datetime.now(UTC)) is None
    finally:
        assert pool.close(5)
        rt.close()


def test_a_timer_the_clock_fires_wakes_the_worker_beside_it(sqlite_url):
    rt = build_runtime(_config(sqlite_url, LONG_POLL))
    due = datetime.now(UTC) - timedelta(seconds=1)
    with writing(rt.engine) as conn:
        timers.reconcile(
            conn, "jira", "T-1", [Timer("first_response", EventKind.SLA_BREACHED, 100, due)], due
        )
    pool = WorkerPool(rt, listen=False)  # deaf to the doorbell: only the clock's own call can wake it
    pool.start()
    time.sleep(0.3)  # its first look found nothing; it now waits out a 30 s poll
    scheduler = SlaScheduler(rt, on_fired=pool.wake)
    scheduler.start()  # the first tick runs at once and fires the timer into the inbox
    try:
        started = time.monotonic()
        while time.monotonic() - started < 10:
            with rt.engine.connect() as conn:
                left = conn.execute(
                    select(inbox_table.c.id).where(inbox_table.c.status.in_(("pending", "processing")))
                ).all()
                fired = conn.execute(select(inbox_table.c.id)).all()
            if fired and not left:
                break
            time.sleep(0.02)
        assert fired and not left and time.monotonic() - started < 3.0
    finally:
        scheduler.stop()
        assert pool.close(5)
        rt.close()


def test_a_timer_one_replicas_clock_fires_wakes_the_worker_of_another(two_processes):
    clock_side, work = two_processes  # the clock on one, the worker on the other: two replicas
    due = datetime.now(UTC) - timedelta(seconds=1)
    with writing(clock_side.engine) as conn:
        timers.reconcile(
            conn, "jira", "T-2", [Timer("first_response", EventKind.SLA_BREACHED, 100, due)], due
        )
    pool = WorkerPool(work)
    pool.start()
    assert pool._listener is not None and pool._listener.ready.wait(10)
    time.sleep(0.3)  # its first look found nothing; it now waits out a 30 s poll
    scheduler = SlaScheduler(clock_side)  # nothing of the other replica's to call: only the doorbell
    started = time.monotonic()
    scheduler.start()  # the first tick runs at once and fires the timer into the inbox
    try:
        while time.monotonic() - started < 10:
            with work.engine.connect() as conn:
                statuses = [r.status for r in conn.execute(select(inbox_table.c.status))]
            if statuses and all(s not in ("pending", "processing") for s in statuses):
                break
            time.sleep(0.02)
        assert statuses and time.monotonic() - started < 3.0, statuses
    finally:
        scheduler.stop()
        assert pool.close(5)


def test_a_delivery_the_database_failed_under_is_taken_again_when_it_answers_not_after_its_lease(
    sqlite_url, monkeypatch
):
    """The database went away while the record was written (a restart): the worker gives the delivery
    back as soon as the database answers again, instead of leaving it to its lease (minutes)."""
    from sqlalchemy.exc import OperationalError

    from connector import pipeline

    rt = build_runtime(_config(sqlite_url, 0.2))
    assert rt.config.worker.lease_seconds >= 60  # only a give-back explains a prompt second try
    _deliver(create_app(rt).test_client(), 4)
    record, failed = pipeline._record, []

    def database_gone_once(rt_, item, result):
        if not failed:
            failed.append(item.delivery_id)
            lost = Exception("server closed the connection unexpectedly")
            raise OperationalError("UPDATE inbox …", {}, lost)
        return record(rt_, item, result)

    monkeypatch.setattr(pipeline, "_record", database_gone_once)
    pool = WorkerPool(rt)
    pool.start()
    try:
        assert _seconds_until_done(rt.engine, 1, timeout=20) < 10.0
    finally:
        assert pool.close(5)
    with rt.engine.connect() as conn:
        row = conn.execute(select(inbox_table.c.lease_expiries, inbox_table.c.attempts)).one()
        records = conn.execute(text("SELECT count(*) FROM audit_log")).scalar_one()
    rt.close()
    assert failed and tuple(row) == (1, 2)  # taken twice, the give-back counted as a lease run out
    assert records == 1  # one record: the decision that was recorded
