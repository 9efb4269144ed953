"""The webhook path's group commit: concurrent requests share commits, and none is lost or left hanging."""

from __future__ import annotations

import logging
import threading
import time
from datetime import UTC, datetime

import pytest
from sqlalchemy import event

import connector.store.intake as intake_module
from connector.store import inbox
from connector.store.db import make_engine
from connector.store.intake import Intake, IntakeUnavailable
from tests.support.concurrency import run_together

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


def _row(delivery_id: str) -> dict:
    return inbox.new_row("jira", delivery_id, "jira:issue_created", "10040", False, b"{}", T0)


def _slow_store(monkeypatch, batches: list[int], delay: float = 0.02):
    """Make each commit take `delay` so requests arriving meanwhile queue behind the leader."""
    real = intake_module.store_rows

    def slow(dbapi, dialect, rows):
        batches.append(len(rows))
        time.sleep(delay)
        return real(dbapi, dialect, rows)

    monkeypatch.setattr(intake_module, "store_rows", slow)


def _accept_together(intake: Intake, delivery_ids: list[str]) -> dict[int, object]:
    """Call accept from one thread per delivery, all released at once; index → result or exception."""
    results: dict[int, object] = {}

    def run(k: int) -> None:
        try:
            results[k] = intake.accept(_row(delivery_ids[k]))
        except IntakeUnavailable as exc:
            results[k] = exc

    run_together(run, len(delivery_ids), timeout=10)
    return results


def test_concurrent_requests_share_commits_and_each_learns_its_own_answer(engine, monkeypatch):
    batches: list[int] = []
    _slow_store(monkeypatch, batches)
    intake = Intake(engine)
    ids = [f"d{k}" for k in range(12)] + ["d0", "d1", "d2"]  # three redeliveries among them
    try:
        results = _accept_together(intake, ids)
    finally:
        intake.close()

    stored = [k for k, r in results.items() if r is True]
    repeated = [k for k, r in results.items() if r is False]
    assert len(stored) == 12 and len(repeated) == 3
    assert {ids[k] for k in repeated} <= {"d0", "d1", "d2"}
    assert inbox.counts(engine) == {"pending": 12}
    assert sum(batches) == 15 and max(batches) > 1, f"no commit was shared: {batches}"


def test_a_batch_the_database_refuses_fails_every_waiter_and_the_next_request_works(engine, monkeypatch):
    batches: list[int] = []
    _slow_store(monkeypatch, batches)
    real = intake_module.store_rows

    def full_disk(dbapi, dialect, rows):
        real(dbapi, dialect, rows)
        raise OSError("database or disk is full")

    intake = Intake(engine)
    try:
        monkeypatch.setattr(intake_module, "store_rows", full_disk)
        results = _accept_together(intake, [f"d{k}" for k in range(6)])
        assert all(isinstance(r, IntakeUnavailable) for r in results.values()), results
        assert all("disk is full" in str(r) for r in results.values())
        assert inbox.counts(engine) == {}  # rolled back: nothing half-stored

        monkeypatch.setattr(intake_module, "store_rows", real)
        assert intake.accept(_row("d0")) is True  # a fresh connection after the failure
    finally:
        intake.close()
    assert inbox.counts(engine) == {"pending": 1}


def test_a_follower_that_waits_too_long_is_told_to_retry(engine, monkeypatch):
    release = threading.Event()
    real = intake_module.store_rows

    def stuck(dbapi, dialect, rows):
        release.wait(5)
        return real(dbapi, dialect, rows)

    monkeypatch.setattr(intake_module, "store_rows", stuck)
    intake = Intake(engine, timeout=0.2)
    leader = threading.Thread(target=intake.accept, args=(_row("first"),))
    leader.start()
    try:
        time.sleep(0.05)  # the leader is now inside the stuck commit
        with pytest.raises(IntakeUnavailable, match="did not store the delivery within"):
            intake.accept(_row("second"))
    finally:
        release.set()
        leader.join(5)
        intake.close()


@pytest.mark.postgres
def test_a_connection_the_server_closed_is_replaced_and_the_delivery_stored(migrated_postgres_url):
    """The database server restarted (or a proxy cut the idle connection) between two webhooks:
    the next one is stored on a new connection, not refused."""
    from sqlalchemy import text

    from connector.store.db import make_engine

    engine, other = make_engine(migrated_postgres_url), make_engine(migrated_postgres_url)
    intake = Intake(engine)
    try:
        assert intake.accept(_row("before")) is True
        with other.connect() as conn:
            cut = conn.execute(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                )
            ).all()
        assert cut and all(ok for (ok,) in cut)
        assert intake.accept(_row("after")) is True
        assert intake.accept(_row("after")) is False  # stored once
    finally:
        intake.close()
        engine.dispose()
        other.dispose()


@pytest.mark.postgres
def test_on_postgresql_a_batch_goes_through_the_pipeline_its_insert_prepared_once(migrated_postgres_url):
    """The intake's statements go through libpq's pipeline mode: the INSERT is prepared on the server
    once for the connection (not parsed per webhook), each batch is one transaction with its NOTIFY,
    a redelivery is told apart, and the connection goes back to the pool as it came."""
    import psycopg

    from connector.store.db import make_engine

    engine = make_engine(migrated_postgres_url)
    listener = psycopg.connect(migrated_postgres_url.replace("+psycopg", ""), autocommit=True)
    listener.execute(f"LISTEN {intake_module.wakeup.CHANNEL}")
    intake = Intake(engine)
    try:
        assert [intake.accept(_row(f"p{k}")) for k in range(3)] == [True, True, True]
        assert intake.accept(_row("p1")) is False  # stored before: no row, no signal
        raw = intake._connection.dbapi_connection
        prepared = [s for (s,) in raw.execute("SELECT statement FROM pg_prepared_statements").fetchall()]
        assert len([s for s in prepared if s.startswith("INSERT INTO inbox")]) == 1
        signals = list(listener.notifies(timeout=1.0, stop_after=4))
        assert len(signals) == 3  # one a stored batch, none for the redelivery
        with engine.connect() as conn:
            stored = conn.execute(inbox.inbox.select().with_only_columns(inbox.inbox.c.delivery_id)).scalars()
            assert sorted(stored) == ["p0", "p1", "p2"]
    finally:
        intake.close()
        listener.close()
    with engine.connect() as conn:  # the pool's connection (the intake's, given back) is not in autocommit
        assert conn.connection.dbapi_connection.autocommit is False
    engine.dispose()


def _unreachable_for(engine, monkeypatch, failures: int) -> list[float]:
    """The engine cannot connect for its next `failures` attempts (a restart): when each was made."""
    real, attempts = engine.raw_connection, []

    def connect():
        attempts.append(time.monotonic())
        if len(attempts) <= failures:
            raise engine.dialect.dbapi.OperationalError("connection refused: is the server running?")
        return real()

    monkeypatch.setattr(engine, "raw_connection", connect)
    return attempts


def test_a_database_unreachable_for_a_moment_is_waited_for_not_answered_503(engine, monkeypatch):
    """A restart of a few seconds: the webhook waits for it and is stored (ServiceNow, for one, does
    not send a delivery again after a 503)."""
    attempts = _unreachable_for(engine, monkeypatch, failures=3)
    intake = Intake(engine)
    try:
        assert intake.accept(_row("during-restart")) is True
    finally:
        intake.close()
    assert len(attempts) == 4 and attempts[-1] - attempts[0] >= 0.3  # backing off, not spinning
    assert inbox.counts(engine) == {"pending": 1}


def test_a_database_unreachable_longer_than_the_hold_is_503(engine, monkeypatch):
    _unreachable_for(engine, monkeypatch, failures=1000)
    intake = Intake(engine, hold_seconds=0.3)
    started = time.monotonic()
    try:
        with pytest.raises(IntakeUnavailable, match="connection refused"):
            intake.accept(_row("down"))
    finally:
        intake.close()
    assert time.monotonic() - started < 2.0


def test_a_full_disk_is_503_with_one_warning_line_that_says_so(sqlite_url, caplog):
    # Tried from outside on a 3 MB tmpfs: every webhook refused once the disk filled logged an ERROR
    # with a traceback. It is the database's condition, not a bug: one line, naming what to do.
    engine = make_engine(sqlite_url)

    @event.listens_for(engine, "connect")
    def no_room_to_grow(dbapi_connection, _record) -> None:  # SQLite's SQLITE_FULL, as on a full disk
        pages = dbapi_connection.execute("PRAGMA page_count").fetchone()[0]
        dbapi_connection.execute(f"PRAGMA max_page_count = {pages}")

    intake = Intake(engine)
    try:
        with caplog.at_level(logging.WARNING, logger="escalator.intake"):
            with pytest.raises(IntakeUnavailable, match="database or disk is full"):
                for n in range(1000):
                    intake.accept(inbox.new_row("jira", f"full-{n}", "jira:issue_created", str(n), False,
                                                b"x" * 2000, T0))  # fmt: skip
    finally:
        intake.close()
        engine.dispose()
    (line,) = [r for r in caplog.records if r.name == "escalator.intake"]
    assert line.levelno == logging.WARNING and line.exc_info is None
    assert "could not store 1 webhook deliveries (the database's disk is full, free space there: " in (
        line.getMessage()
    )


def _held_first(monkeypatch) -> tuple[threading.Event, threading.Event, list[tuple[int, list[str]]]]:
    """The first batch's commit waits for `release` (`entered` says it began); each batch is noted
    with the thread that stored it and its delivery ids."""
    entered, release = threading.Event(), threading.Event()
    batches: list[tuple[int, list[str]]] = []
    real = intake_module.store_rows

    def store(dbapi, dialect, rows):
        batches.append((threading.get_ident(), [r["delivery_id"] for r in rows]))
        if len(batches) == 1:
            entered.set()
            release.wait(5)
        return real(dbapi, dialect, rows)

    monkeypatch.setattr(intake_module, "store_rows", store)
    return entered, release, batches


def _accepting(intake: Intake, delivery_id: str, answers: dict[str, object]) -> threading.Thread:
    def run() -> None:
        try:
            answers[delivery_id] = intake.accept(_row(delivery_id))
        except IntakeUnavailable as exc:
            answers[delivery_id] = exc

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def _queued(intake: Intake, count: int) -> None:
    deadline = time.monotonic() + 5
    while len(intake._queue) < count:
        assert time.monotonic() < deadline, f"{len(intake._queue)} requests queued, not {count}"
        time.sleep(0.005)


def test_a_leader_stores_one_batch_then_hands_the_lead_to_the_first_request_waiting(engine, monkeypatch):
    entered, release, batches = _held_first(monkeypatch)
    intake = Intake(engine)
    answers: dict[str, object] = {}
    first = _accepting(intake, "first", answers)
    try:
        assert entered.wait(5)
        waiting = [_accepting(intake, f"then-{n}", answers) for n in range(3)]
        _queued(intake, 3)
        release.set()
        for thread in (first, *waiting):
            thread.join(5)
    finally:
        release.set()
        intake.close()
    assert answers == {"first": True, "then-0": True, "then-1": True, "then-2": True}
    # The first leader stored its own delivery alone and answered; the three that had queued meanwhile
    # were stored together by one of their own threads, not by the first request's.
    (first_thread, first_ids), (second_thread, second_ids) = batches
    assert first_ids == ["first"] and sorted(second_ids) == ["then-0", "then-1", "then-2"]
    assert second_thread != first_thread
    assert inbox.counts(engine) == {"pending": 4}


def test_a_request_that_gave_up_leaves_the_queue_and_is_never_handed_the_lead(engine, monkeypatch):
    """It was answered 503: it is not stored after that answer, and the lead, handed on after the
    batch before it, goes to a request still there (a lead handed to it would be lost: every later
    request would wait behind a leader that never comes)."""
    entered, release, batches = _held_first(monkeypatch)
    intake = Intake(engine, timeout=0.3)
    answers: dict[str, object] = {}
    first = _accepting(intake, "first", answers)
    try:
        assert entered.wait(5)
        gave_up = _accepting(intake, "gave-up", answers)
        gave_up.join(5)
        assert isinstance(answers["gave-up"], IntakeUnavailable)
        assert len(intake._queue) == 0  # it left
        release.set()
        first.join(5)
        assert intake.accept(_row("next")) is True  # leads at once: nobody holds a lost lead
    finally:
        release.set()
        intake.close()
    assert answers["first"] is True
    assert [ids for _, ids in batches] == [["first"], ["next"]]
    assert inbox.counts(engine) == {"pending": 2}
