from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select, update

from connector.store import inbox
from connector.store.db import make_engine
from connector.store.tables import tickets
from tests.support.sqlite_work import counting_steps, store_history

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
LEASE = timedelta(seconds=60)


def _accept(engine, delivery_id, ticket="10040", ignored=False, now=T0):
    return inbox.accept(
        engine, inbox.new_row("jira", delivery_id, "jira:issue_updated", ticket, ignored, b"{}", now)
    )


def test_a_redelivery_is_stored_once(engine):
    assert _accept(engine, "d1") is True
    assert _accept(engine, "d1") is False
    assert inbox.counts(engine) == {"pending": 1}


def test_one_ticket_at_a_time_in_order(engine):
    for d in ("a1", "a2", "a3"):
        _accept(engine, d, ticket="A")
    _accept(engine, "b1", ticket="B")
    first = inbox.claim(engine, owner="w1", now=T0, lease=LEASE, limit=10)
    assert [i.delivery_id for i in first] == ["a1", "b1"]
    # a second worker gets nothing: A's next event waits for a1, B has no more
    assert inbox.claim(engine, owner="w2", now=T0, lease=LEASE, limit=10) == []
    with engine.begin() as conn:
        inbox.finish(conn, first[0], status=inbox.DONE, owner="w1", now=T0)
    assert [i.delivery_id for i in inbox.claim(engine, owner="w2", now=T0, lease=LEASE, limit=10)] == ["a2"]


def test_retry_later_keeps_the_ticket_blocked_and_comes_back_when_due(engine):
    _accept(engine, "a1", ticket="A")
    _accept(engine, "a2", ticket="A")
    (item,) = inbox.claim(engine, owner="w1", now=T0, lease=LEASE, limit=10)
    with engine.begin() as conn:
        inbox.retry_later(conn, item, owner="w1", at=T0 + timedelta(seconds=30), error="503")
    assert inbox.claim(engine, owner="w1", now=T0 + timedelta(seconds=10), lease=LEASE, limit=10) == []
    (again,) = inbox.claim(engine, owner="w1", now=T0 + timedelta(seconds=31), lease=LEASE, limit=10)
    assert again.delivery_id == "a1" and again.attempts == 2


def test_a_dead_workers_lease_expires_and_the_note_in_flight_and_confirmed_requests_survive(engine):
    _accept(engine, "a1", ticket="A")
    (item,) = inbox.claim(engine, owner="dead", now=T0, lease=LEASE, limit=10)
    inbox.record_in_flight(
        engine, item, "note-fingerprint", owner="dead", confirmed=frozenset({"put-fingerprint"})
    )
    assert inbox.claim(engine, owner="w2", now=T0 + timedelta(seconds=30), lease=LEASE, limit=10) == []
    (again,) = inbox.claim(engine, owner="w2", now=T0 + timedelta(seconds=61), lease=LEASE, limit=10)
    assert again.id == item.id and again.confirmed == {"put-fingerprint"}
    assert again.in_flight == "note-fingerprint"


def test_a_delivery_given_back_is_taken_again_at_once_with_its_note_in_flight(engine):
    """What the worker does when the database failed under a delivery (connector/worker.py): the
    lease's expiry, without waiting for it; a delivery recorded after all is left alone."""
    _accept(engine, "a1", ticket="A")
    _accept(engine, "b1", ticket="B")
    a, b = inbox.claim(engine, owner="w1", now=T0, lease=LEASE, limit=10)
    inbox.record_in_flight(
        engine, a, "note-fingerprint", owner="w1", confirmed=frozenset({"put-fingerprint"})
    )
    with engine.begin() as conn:  # b's record was committed before its connection was lost
        inbox.finish(conn, b, status=inbox.DONE, owner="w1", now=T0)
    assert inbox.give_back(engine, [b], owner="w1", now=T0) == []
    assert inbox.give_back(engine, [a], owner="w2", now=T0) == []  # not w2's to give
    assert inbox.give_back(engine, [a, b], owner="w1", now=T0) == [a]
    (again,) = inbox.claim(engine, owner="w2", now=T0 + timedelta(seconds=1), lease=LEASE, limit=10)
    assert again.id == a.id and again.lease_expiries == 1 and again.attempts == 2
    assert again.in_flight == "note-fingerprint" and again.confirmed == {"put-fingerprint"}


def test_a_retry_keeps_what_the_platform_confirmed_and_clears_the_mark_of_a_note_refused(engine):
    _accept(engine, "a1", ticket="A")
    (item,) = inbox.claim(engine, owner="w1", now=T0, lease=LEASE, limit=10)
    inbox.record_in_flight(
        engine, item, "note-fingerprint", owner="w1", confirmed=frozenset({"put-fingerprint"})
    )
    with engine.begin() as conn:
        inbox.retry_later(conn, item, owner="w1", at=T0 + timedelta(seconds=5), error="429",
                          confirmed=["put-fingerprint"], in_flight=None)  # fmt: skip
    (again,) = inbox.claim(engine, owner="w1", now=T0 + timedelta(seconds=6), lease=LEASE, limit=10)
    assert again.confirmed == {"put-fingerprint"} and again.in_flight is None


def test_events_without_a_ticket_are_claimed_independently(engine):
    _accept(engine, "x1", ticket=None, ignored=True)
    _accept(engine, "x2", ticket=None, ignored=True)
    items = inbox.claim(engine, owner="w1", now=T0, lease=LEASE, limit=10)
    assert [(i.delivery_id, i.ignored) for i in items] == [("x1", True), ("x2", True)]


def test_waiting_for_a_rate_limit_costs_no_attempt_and_claim_takes_the_line_by_rank(engine):
    for n, ticket in enumerate(("P4", "P1", "new", "P2")):
        _accept(engine, f"d-{ticket}", ticket=ticket, now=T0 + timedelta(seconds=n))
    now = T0 + timedelta(seconds=10)
    items = {i.ticket_id: i for i in inbox.claim(engine, owner="w1", now=now, lease=LEASE, limit=3)}
    ranks = {"P4": 42, "P1": 10, "new": None}
    with engine.begin() as conn:
        for ticket, item in items.items():  # judged and put back to wait for a write slot
            if ranks[ticket] is not None:
                inbox.defer(conn, item, owner="w1", at=now, rank=ranks[ticket], why="waiting for a slot")
    with engine.begin() as conn:
        inbox.retry_later(conn, items["new"], owner="w1", at=now, error="503")
    again = inbox.claim(engine, owner="w2", now=now, lease=LEASE, limit=10)
    # Not judged yet first (the oldest first), then by rank: the P1 before the P4.
    assert [i.ticket_id for i in again] == ["new", "P2", "P1", "P4"]
    assert {i.ticket_id: i.attempts for i in again} == {"new": 2, "P2": 1, "P1": 1, "P4": 1}


@pytest.mark.postgres
def test_postgres_claim_frees_a_ticket_it_leased_when_another_worker_took_the_row_meanwhile(
    migrated_postgres_url,
):
    """PostgreSQL claims in one statement: the ticket's lease, then the row. Should another
    transaction take the row between the two (it held the row's lock), the lease granted is freed
    again, and the other owner keeps the row."""
    engine = make_engine(migrated_postgres_url)
    try:
        _accept(engine, "a1", ticket="A")
        taking = engine.connect()
        taking.begin()
        row_id = taking.execute(select(inbox.inbox.c.id)).scalar_one()
        taking.execute(  # another worker taking the row, its ticket lease aside: not committed yet
            update(inbox.inbox)
            .where(inbox.inbox.c.id == row_id)
            .values(status=inbox.PROCESSING, lease_owner="w2")
        )
        with ThreadPoolExecutor(1) as pool:
            claimed = pool.submit(inbox.claim, engine, owner="w1", now=T0, lease=LEASE, limit=10)
            time.sleep(0.5)  # the claim leased ticket A and now waits for the row's lock
            assert not claimed.done()
            taking.commit()
            assert claimed.result(timeout=10) == []
        taking.close()
        with engine.connect() as conn:
            ticket = conn.execute(select(tickets.c.lease_owner, tickets.c.lease_until)).one()
            row = conn.execute(select(inbox.inbox.c.status, inbox.inbox.c.lease_owner)).one()
        assert tuple(ticket) == (None, None)
        assert tuple(row) == (inbox.PROCESSING, "w2")
    finally:
        engine.dispose()


def test_a_claim_looks_for_expired_leases_at_most_once_a_second(engine):
    """Leases last minutes; a claim per webhook under a trickle must not look every time."""
    _accept(engine, "a1", ticket="A")
    (item,) = inbox.claim(engine, owner="dead", now=T0, lease=timedelta(milliseconds=100), limit=10)
    soon = T0 + timedelta(milliseconds=500)  # its lease ran out, but the last look was T0's
    assert inbox.claim(engine, owner="w2", now=soon, lease=LEASE, limit=10) == []
    (again,) = inbox.claim(engine, owner="w2", now=T0 + timedelta(seconds=1), lease=LEASE, limit=10)
    assert again.id == item.id and again.lease_expiries == 1 and again.attempts == 2


def _queue(engine, tickets_: int, per_ticket: int) -> None:
    rows = [
        inbox.new_row("jira", f"q-{t}-{n}", "jira:issue_updated", f"q-{t}", False, b"{}", T0)
        for t in range(tickets_)
        for n in range(per_ticket)
    ]
    with engine.begin() as conn:
        conn.execute(inbox.inbox.insert(), rows)


@pytest.mark.parametrize("analyze", [False, True], ids=["no statistics", "after ANALYZE"])
@pytest.mark.parametrize("per_ticket", [1, 20], ids=["a ticket each", "20 on each ticket"])
def test_a_claim_reads_its_batch_not_the_backlog(sqlite_url, analyze, per_ticket):
    # An outage leaves thousands of deliveries waiting. A claim grouped every unfinished row to find
    # each ticket's oldest, then sorted all the due ones to keep its batch: 5 ms a claim of 20 with
    # 2,000 waiting, 26 ms with 8,000, so a backlog drained in time that grew with its square. It
    # walks the line's index (ix_inbox_line) until its batch is full, each head one probe.

    def claim_steps(waiting: int) -> tuple[int, list[str]]:
        engine = make_engine(sqlite_url)
        store_history(engine, "jira", 0, T0, analyze=False)  # an empty inbox
        _queue(engine, waiting // per_ticket, per_ticket)
        if analyze:
            with engine.begin() as conn:
                conn.exec_driver_sql("ANALYZE")
        with counting_steps(engine) as steps:
            taken = inbox.claim(engine, owner="w1", now=T0, lease=LEASE, limit=16)
        return steps[0], [item.delivery_id for item in taken]

    # The walk passes the rows queued behind each head it takes (20 a ticket: 320 rows for 16), however
    # many more wait beyond; ten times the backlog adds a level to the indexes' trees, no more.
    (few, first), (many, first_of_many) = claim_steps(800), claim_steps(8000)
    assert first == first_of_many == [f"q-{t}-0" for t in range(16)]  # oldest first, heads only
    assert 0 < few and many <= few * 1.25, (few, many)


@pytest.mark.postgres
def test_postgresql_claims_through_the_line_and_the_open_rows(migrated_postgres_url):
    # The partial indexes serve PostgreSQL's one-statement claim too; it uses them only for a
    # statement whose condition names their values (SQL literals, not parameters).
    engine = make_engine(migrated_postgres_url)
    try:
        _queue(engine, 500, 4)
        with engine.begin() as conn:
            conn.exec_driver_sql("ANALYZE inbox")
            compiled = inbox._claim_statement().compile(dialect=engine.dialect)
            params = {**compiled.params, "b_now": T0, "b_limit": 20, "b_owner": "w", "b_until": T0 + LEASE}
            plan = "\n".join(row[0] for row in conn.exec_driver_sql(f"EXPLAIN {compiled}", params))
        assert "ix_inbox_line" in plan and "ix_inbox_open" in plan, plan
        taken = inbox.claim(engine, owner="w1", now=T0, lease=LEASE, limit=20)
        assert [item.delivery_id for item in taken] == [f"q-{t}-0" for t in range(20)]
    finally:
        engine.dispose()


@pytest.mark.parametrize("analyze", [False, True], ids=["no statistics", "after ANALYZE"])
def test_a_claim_does_not_grow_with_the_inbox_history(sqlite_url, analyze):
    # The claim finds each ticket's oldest unfinished row among the rows it keeps for `retention`
    # days. Once SQLite has statistics (ANALYZE, PRAGMA optimize) it read all of them in ticket
    # order to do so (21 ms a claim with 50,000 finished rows): it is told the unfinished are few.
    def claim_steps(history: int) -> int:
        engine = make_engine(sqlite_url)
        store_history(engine, "jira", history, T0, analyze=analyze)
        for n in range(3):
            _accept(engine, f"new-{n}", ticket=f"new-{n}", now=T0)
        with counting_steps(engine) as steps:
            taken = inbox.claim(engine, owner="w1", now=T0, lease=LEASE, limit=16)
        assert len(taken) == 3
        return steps[0]

    few, many = claim_steps(10), claim_steps(5000)
    assert 0 < few and many <= few + 20, (few, many)
