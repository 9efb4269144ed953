"""The worker's per-event writes, built once and batched: timer reconciliation in at most one
statement per kind of change, audit appends from racing writers, ticket leases and memory."""

from __future__ import annotations

import itertools
import threading
import time
from collections import Counter
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import event, select

from connector import audit
from connector.model import EventKind, Ticket, TicketRef, TicketState
from connector.store import inbox, tickets, timers
from connector.store.db import make_engine, pipelined_writing, writing
from connector.store.prepared import Prepared
from connector.store.tables import inbox as inbox_table
from connector.store.tables import tickets as tickets_table
from connector.store.tables import timers as timers_table
from tests.support.concurrency import run_together
from tests.support.timers import Timer

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
LEASE = timedelta(seconds=60)


@contextmanager
def _statements(engine):
    """The statements the block runs: (first words, executemany?) → count."""
    seen: Counter = Counter()

    def count(conn, cursor, statement, parameters, context, executemany):
        seen[(" ".join(statement.split()[:2]), executemany)] += 1

    event.listen(engine, "before_cursor_execute", count)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", count)


def _timer_rows(engine, ticket):
    with engine.connect() as conn:
        rows = conn.execute(select(timers_table).where(timers_table.c.ticket_id == ticket)).all()
    return {row.key: row for row in rows}


def _at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def test_reconcile_arms_rearms_and_removes_in_one_statement_each(engine):
    fired_same = Timer("first_response", EventKind.SLA_WARNING, 75, _at(10))
    fired_moved = Timer("first_response", EventKind.SLA_BREACHED, 100, _at(15))
    moved = Timer("resolution", EventKind.SLA_WARNING, 75, _at(60))
    dropped = [
        Timer("update_every", kind, p, _at(30))
        for kind, p in [(EventKind.SLA_WARNING, 75), (EventKind.SLA_BREACHED, 100)]
    ]
    with engine.begin() as conn:
        timers.reconcile(conn, "jira", "A", [fired_same, fired_moved, moved, *dropped], T0)
    timers.fire_due(engine, now=_at(20), limit=10, late_after=timedelta(seconds=30))  # fires both at 10, 15
    before = _timer_rows(engine, "A")

    later = T0 + timedelta(minutes=25)
    wanted = [
        fired_same,  # unchanged: stays fired, untouched
        Timer("first_response", EventKind.SLA_BREACHED, 100, _at(40)),  # re-armed, no longer fired
        Timer("resolution", EventKind.SLA_WARNING, 75, _at(90)),  # re-armed
        Timer("resolution", EventKind.SLA_BREACHED, 100, _at(120)),  # new
        Timer("next_response", EventKind.SLA_BREACHED, 100, _at(50)),  # new
    ]
    with _statements(engine) as seen, engine.begin() as conn:
        timers.reconcile(conn, "jira", "A", wanted, later)
    # The new ones: one multi-row INSERT on PostgreSQL, the one-row INSERT run for each on SQLite.
    assert seen == {
        ("SELECT timers.id,", False): 1,
        ("INSERT INTO", engine.dialect.name != "postgresql"): 1,
        ("UPDATE timers", True): 1,
        ("DELETE FROM", True): 1,
    }

    after = _timer_rows(engine, "A")
    assert set(after) == {t.key for t in wanted}
    assert after[fired_same.key] == before[fired_same.key]  # same id, due, armed_at and fired_at
    for timer in wanted[1:3]:
        row = after[timer.key]
        assert row.id == before[timer.key].id
        assert (row.due_at, row.armed_at, row.fired_at) == (timer.due, later, None)
    for timer in wanted[3:]:
        row = after[timer.key]
        assert (row.platform, row.kind, row.metric) == ("jira", str(timer.kind), timer.metric)
        assert (row.percent, row.target_seconds, row.calendar) == (100, 900.0, "always")
        assert (row.due_at, row.armed_at, row.fired_at) == (timer.due, later, None)
    with engine.connect() as conn:
        assert timers.armed(conn, "jira", "A") == {t.key: t.due for t in wanted[1:]}


def test_reconcile_with_nothing_changed_only_reads(engine):
    wanted = [Timer("resolution", EventKind.SLA_BREACHED, 100, _at(5))]
    with engine.begin() as conn:
        timers.reconcile(conn, "jira", "A", wanted, T0)
        timers.reconcile(conn, "jira", "B", wanted, T0)
    with _statements(engine) as seen, engine.begin() as conn:
        timers.reconcile(conn, "jira", "A", wanted, T0 + timedelta(minutes=1))
        timers.reconcile(conn, "jira", "C", [], T0)
    assert seen == {("SELECT timers.id,", False): 2}
    with engine.begin() as conn:
        timers.reconcile(conn, "jira", "A", [], T0)
    assert _timer_rows(engine, "A") == {} and set(_timer_rows(engine, "B")) == {wanted[0].key}


def test_racing_appenders_keep_the_chain_linear(db_url, engine):
    threads, each = 4, 15
    engines = [make_engine(db_url) for _ in range(threads)]
    appended: list[dict] = []

    def run(k: int) -> None:
        for i in range(each):
            with engines[k].begin() as conn:  # no writer lock: the head row alone must serialise
                record = {"platform": "jira", "ticket": {"id": f"{k}-{i}"}, "outcome": "no_change"}
                appended.append(audit.append(conn, record, at=T0 + timedelta(seconds=i)))

    try:
        run_together(run, threads)
    finally:
        for e in engines:
            e.dispose()
    by_seq = sorted(appended, key=lambda r: r["seq"])
    assert [r["seq"] for r in by_seq] == list(range(1, threads * each + 1))
    assert [r["prev_hash"] for r in by_seq] == [audit.GENESIS] + [r["hash"] for r in by_seq[:-1]]
    result = audit.verify(engine)
    assert result.ok and result.checked == threads * each, str(result)


def _accept(engine, delivery_id, ticket):
    inbox.accept(engine, inbox.new_row("jira", delivery_id, "jira:issue_updated", ticket, False, b"{}", T0))


def test_claiming_a_known_ticket_keeps_what_is_remembered_of_it(engine):
    snapshot = Ticket(TicketRef("jira", "A", "TES-1"), title="Checkout is down")
    _accept(engine, "a1", "A")
    _accept(engine, "a2", "A")
    (first,) = inbox.claim(engine, owner="w1", now=T0, lease=LEASE, limit=10)
    with engine.begin() as conn:
        tickets.save(
            conn, "jira", "A", key="TES-1", state=TicketState(tier="L2", priority_pinned=True), priority="P1",
            requester_id="cust-1", now=T0, snapshot=snapshot, sla={"clocks": {}},
        )  # fmt: skip
        inbox.finish(conn, first, status=inbox.DONE, owner="w1", now=T0, error="kept?")
    (second,) = inbox.claim(engine, owner="w2", now=T0, lease=LEASE, limit=10)
    assert (second.delivery_id, second.attempts, second.confirmed) == ("a2", 1, frozenset())
    # the claim hands over what is remembered with the lease: what a read would give
    with engine.connect() as conn:
        assert tickets.from_row(second.memory) == tickets.load(conn, "jira", "A")
    assert tickets.from_row(second.memory).snapshot == snapshot and first.memory is not None
    with engine.connect() as conn:
        row = conn.execute(select(tickets_table)).one()
        done = conn.execute(select(inbox_table).where(inbox_table.c.id == first.id)).one()
    assert (row.tier, row.priority, row.priority_pinned, row.requester_id) == ("L2", "P1", True, "cust-1")
    assert (row.lease_owner, row.lease_until) == ("w2", T0 + LEASE)
    assert (done.status, done.finished_at, done.last_error, done.lease_owner, done.lease_until) == (
        inbox.DONE, T0, "kept?", None, None,
    )  # fmt: skip

    # a save without requester or snapshot keeps the ones remembered; the SLA state is replaced
    with engine.begin() as conn:
        tickets.save(
            conn, "jira", "A", key="TES-1", state=TicketState(tier="L3"), priority=None, requester_id=None,
            now=T0 + timedelta(minutes=1),
        )  # fmt: skip
        stored = tickets.load(conn, "jira", "A")
    assert stored.state == TicketState(tier="L3", priority_pinned=False)
    assert (stored.requester_id, stored.snapshot, stored.sla) == ("cust-1", snapshot, None)
    with engine.connect() as conn:
        assert tickets.load(conn, "jira", "unknown") == tickets.StoredTicket(TicketState(), None)


def test_a_misspelt_column_in_a_shared_update_is_an_error_not_a_silent_skip(engine):
    _accept(engine, "a1", "A")
    (item,) = inbox.claim(engine, owner="w1", now=T0, lease=LEASE, limit=10)
    with pytest.raises(ValueError, match="not inbox columns: finshed_at"), engine.begin() as conn:
        inbox._release_item(conn, item, "w1", status=inbox.DONE, finshed_at=T0)
    with pytest.raises(ValueError, match="not tickets columns: teir"), engine.begin() as conn:
        tickets._update(conn, "jira", "A", {"teir": "L2"})


def test_racing_workers_take_each_event_once_and_each_ticket_one_at_a_time(db_url, engine):
    n_tickets, per_ticket = 12, 3
    for n in range(per_ticket):
        for t in range(n_tickets):
            _accept(engine, f"T{t}-{n}", f"T{t}")
    engines = [make_engine(db_url), make_engine(db_url)]
    guard = threading.Lock()
    in_flight: set[str] = set()
    handled: list[str] = []

    def run(k: int) -> None:
        idle = 0
        while idle < 3:  # the other worker may still hold the last events
            items = inbox.claim(engines[k], owner=f"w{k}", now=T0, lease=LEASE, limit=4)
            idle = 0 if items else idle + 1
            for item in items:
                with guard:
                    assert item.ticket_id not in in_flight, f"{item.ticket_id} taken twice at once"
                    in_flight.add(item.ticket_id)
                    handled.append(item.delivery_id)
                time.sleep(0.001)  # "processing", while the other worker claims
                with guard:  # before the finish commits: until then the lease is still ours
                    in_flight.remove(item.ticket_id)
                with writing(engines[k]) as conn:
                    inbox.finish(conn, item, status=inbox.DONE, owner=f"w{k}", now=T0)

    try:
        run_together(run, 2)
    finally:
        for e in engines:
            e.dispose()
    assert sorted(handled) == sorted(f"T{t}-{n}" for t in range(n_tickets) for n in range(per_ticket))
    for t in range(n_tickets):  # each ticket's events in the order they arrived
        assert [d for d in handled if d.startswith(f"T{t}-")] == [f"T{t}-{n}" for n in range(per_ticket)]
    assert inbox.counts(engine) == {"done": n_tickets * per_ticket}


def test_saving_a_tickets_memory_frees_its_lease_only_for_the_owner_that_holds_it(engine):
    _accept(engine, "a1", "A")
    (item,) = inbox.claim(engine, owner="w1", now=T0, lease=LEASE, limit=10)
    state = TicketState(tier="L2")
    with engine.begin() as conn:  # another owner's save leaves w1's lease alone
        tickets.save(conn, "jira", "A", key="TES-1", state=state, priority=None, requester_id=None,
                     now=T0, release_lease_of="w2")  # fmt: skip
    with engine.connect() as conn:
        assert conn.execute(select(tickets_table.c.lease_owner)).scalar_one() == "w1"
    with engine.begin() as conn:
        tickets.save(conn, "jira", "A", key="TES-1", state=state, priority="P2", requester_id=None,
                     now=T0, release_lease_of="w1")  # fmt: skip
        inbox.finish(conn, item, status=inbox.DONE, owner="w1", now=T0, ticket_released=True)
    with engine.connect() as conn:
        row = conn.execute(select(tickets_table)).one()
    assert (row.lease_owner, row.lease_until, row.tier, row.priority) == (None, None, "L2", "P2")


def test_json_columns_round_trip_what_orjson_writes_and_what_it_refuses(engine):
    """JSON columns are written by orjson; what it refuses (an integer beyond 64 bits) by json."""
    _accept(engine, "a1", "A")
    inbox.claim(engine, owner="w1", now=T0, lease=LEASE, limit=10)
    clocks = {"clocks": {}, "ünïcode": "Zürich — 東京", "big": 2**70, "nested": [1.5, None, True, {"k": "v"}]}
    with engine.begin() as conn:
        tickets.save(conn, "jira", "A", key="TES-1", state=TicketState(), priority=None, requester_id=None,
                     now=T0, sla=clocks)  # fmt: skip
        assert tickets.load(conn, "jira", "A").sla == clocks


def test_pipelined_writes_land_together_or_not_at_all(engine):
    """The record's writes go out without waiting for each answer on PostgreSQL: a refusal surfaces
    at the block's end and takes the whole transaction with it, and the connection goes on working."""
    row = dict(platform="jira", ticket_id="P-1", priority_pinned=False)
    with pytest.raises(Exception) as refused:
        with pipelined_writing(engine) as conn:
            _INSERT_TICKET.send(conn, {**row, "ticket_id": "P-0"})
            if engine.dialect.name == "postgresql":  # what the block is for: statements not waited on
                assert conn.connection.dbapi_connection.pgconn.pipeline_status != 0
            _INSERT_TICKET.send(conn, row)
            _INSERT_TICKET.send(conn, row)  # the same key again: refused
    assert "unique" in str(refused.value).lower() or "duplicate" in str(refused.value).lower()
    with pipelined_writing(engine) as conn:
        _INSERT_TICKET.send(conn, {**row, "ticket_id": "P-2"})
    with engine.connect() as conn:
        assert conn.execute(select(tickets_table.c.ticket_id)).scalars().all() == ["P-2"]


_INSERT_TICKET = Prepared(tickets_table.insert())


@pytest.mark.postgres
def test_a_pipelined_transaction_waits_only_for_its_reads_and_its_end(migrated_postgres_url):
    """BEGIN goes with the first statements and COMMIT with the end: four writes and a read that
    returns rows are two waits for the server, where psycopg's own transaction handling made four."""
    engine = make_engine(migrated_postgres_url)
    try:
        _accept(engine, "w1", "W")
        (item,) = inbox.claim(engine, owner="w1", now=T0, lease=LEASE, limit=1)
        with pipelined_writing(engine) as conn:
            pgconn = conn.connection.dbapi_connection.pgconn
            waits = _count_waits(pgconn)
            for n in range(3):
                _INSERT_TICKET.send(conn, dict(platform="jira", ticket_id=f"Q-{n}", priority_pinned=False))
            inbox.finish(conn, item, status=inbox.DONE, owner="w1", now=T0)  # its RETURNING is read
            tickets.save_write_windows(conn, "jira", "Q-0", {"account": []})
        assert waits() == 2
        assert inbox.counts(engine) == {"done": 1}
        with engine.connect() as conn:
            assert conn.execute(select(tickets_table.c.write_windows).where(
                tickets_table.c.ticket_id == "Q-0")).scalar_one() == {"account": []}  # fmt: skip
    finally:
        engine.dispose()


@pytest.mark.postgres
def test_a_decisions_record_waits_twice_its_fence_read_with_the_chains_bump(migrated_postgres_url):
    """As the worker records a decision: the delivery's row (its lease fence read later), the audit
    append, then the fence: the fence's answer comes with the bump's, and the end is the other wait."""
    engine = make_engine(migrated_postgres_url)
    try:
        _accept(engine, "f1", "F")
        (item,) = inbox.claim(engine, owner="w1", now=T0, lease=LEASE, limit=1)
        with pipelined_writing(engine) as conn:
            waits = _count_waits(conn.connection.dbapi_connection.pgconn)
            fence = inbox.finish(conn, item, status=inbox.DONE, owner="w1", now=T0, fence_later=True)
            audit.append(conn, {"platform": "jira", "ticket": {"id": "F"}, "outcome": "applied"}, at=T0)
            fence()
        assert waits() == 2
        assert inbox.counts(engine) == {"done": 1} and audit.verify(engine).checked == 1
    finally:
        engine.dispose()


def test_a_fence_read_late_still_refuses_and_takes_the_audit_record_with_it(engine):
    """Read after the append, the fence of a row no longer ours still refuses before the commit: the
    row, the ticket's lease and the audit record all stay as they were."""
    _accept(engine, "f2", "G")
    (item,) = inbox.claim(engine, owner="w1", now=T0, lease=LEASE, limit=1)
    with pytest.raises(inbox.LeaseLost, match="no longer w2's"), pipelined_writing(engine) as conn:
        fence = inbox.finish(conn, item, status=inbox.DONE, owner="w2", now=T0, fence_later=True)
        audit.append(conn, {"platform": "jira", "ticket": {"id": "G"}, "outcome": "applied"}, at=T0)
        fence()
    assert inbox.counts(engine) == {"processing": 1}
    assert audit.verify(engine).checked == 0
    with engine.connect() as conn:
        owner = conn.execute(select(tickets_table.c.lease_owner).where(tickets_table.c.ticket_id == "G"))
        assert owner.scalar_one() == "w1"


def _count_waits(pgconn):
    """How many times the client waited for the server: in the connection's protocol trace, the turns
    from messages sent (F) to messages received (B)."""
    import tempfile

    trace = tempfile.TemporaryFile()
    pgconn.trace(trace.fileno())
    pgconn.set_trace_flags(0)

    def waits() -> int:
        pgconn.untrace()
        trace.seek(0)
        sides = [line.split(b"\t")[1] for line in trace.read().splitlines()]
        trace.close()
        return sum(1 for sent, then in itertools.pairwise(sides) if sent == b"F" and then == b"B")

    return waits


@pytest.mark.postgres
def test_a_connection_lost_in_a_pipelined_transaction_is_the_database_unavailable(migrated_postgres_url):
    """The server ends the connection mid-transaction: nothing of the block is kept, the caller sees
    what the worker treats as the database unavailable, and the next transaction gets a working
    connection from the pool."""
    from sqlalchemy import text

    from connector.store.db import database_unavailable

    engine = make_engine(migrated_postgres_url)
    killer = make_engine(migrated_postgres_url)
    try:
        with pytest.raises(Exception) as lost:
            with pipelined_writing(engine) as conn:
                conn.execute(
                    tickets_table.insert(), dict(platform="jira", ticket_id="L-1", priority_pinned=False)
                )
                pid = conn.connection.dbapi_connection.info.backend_pid
                with killer.connect() as other:
                    other.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
                time.sleep(0.2)
                tickets.save_write_windows(conn, "jira", "L-1", None)
        assert database_unavailable(engine, lost.value), repr(lost.value)
        for n in range(3):  # every pooled connection, the one the server ended included, works again
            with pipelined_writing(engine) as conn:
                conn.execute(
                    tickets_table.insert(),
                    dict(platform="jira", ticket_id=f"L-{n + 2}", priority_pinned=False),
                )
        with engine.connect() as conn:
            assert conn.execute(
                select(tickets_table.c.ticket_id).order_by(tickets_table.c.ticket_id)
            ).scalars().all() == ["L-2", "L-3", "L-4"]
    finally:
        engine.dispose()
        killer.dispose()


def test_a_new_tickets_record_arms_its_timers_without_reading_for_them(db_url):
    """A ticket no record was made for yet has no timers: its first record writes them unread."""
    import responses

    from tests.conformance.conftest import start_all_platforms
    from tests.conformance.drivers import JiraDriver, Spec, post

    esc = start_all_platforms(db_url)
    driver = JiraDriver(esc.rt.policy.current.platforms["jira"])
    try:
        with responses.RequestsMock(assert_all_requests_are_fired=False) as api:
            driver.register_write(api)
            created = driver.created(Spec(1, labels=("outage",)), esc.clock())
            assert post(esc, driver, created).status_code == 202
            with _statements(esc.rt.engine) as seen:
                esc.work()
        assert [r["outcome"] for r in esc.audit()] == ["applied"]
        with esc.rt.engine.connect() as conn:
            assert conn.execute(select(timers_table.c.key)).all()  # armed
        assert not [s for s in seen if s[0].startswith("SELECT timers")]
    finally:
        esc.rt.close()
