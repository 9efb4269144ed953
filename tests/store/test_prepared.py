"""Prepared statements store and read values exactly as Core does, on SQLite and PostgreSQL, and refuse
what only Core's execute can run."""

from __future__ import annotations

import time
from collections import Counter
from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import bindparam, event, exc, insert, select, text, update

from connector.store import prepared
from connector.store.db import database_unavailable, make_engine
from connector.store.prepared import NotPreparable, Prepared
from connector.store.tables import inbox, tickets
from tests.support.concurrency import run_together

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)

_INSERT_TICKET = Prepared(insert(tickets))
_THIS_TICKET = (tickets.c.platform == bindparam("b_platform"), tickets.c.ticket_id == bindparam("b_id"))
_UPDATE_TICKET = Prepared(update(tickets).where(*_THIS_TICKET))
_READ_BACK = (
    tickets.c.ticket_id, tickets.c.sla, tickets.c.priority_pinned, tickets.c.updated_at, tickets.c.snapshot,
)  # fmt: skip
_TICKET_BACK = Prepared(
    select(*_READ_BACK).where(tickets.c.platform == bindparam("b_platform")).order_by(tickets.c.ticket_id)
)


def _ticket(ticket_id: str, **values):
    return {"platform": "jira", "ticket_id": ticket_id, "priority_pinned": False, **values}


def _core_rows(engine, ticket_ids):
    with engine.connect() as conn:
        query = select(tickets).where(tickets.c.ticket_id.in_(ticket_ids)).order_by(tickets.c.ticket_id)
        return [row._asdict() for row in conn.execute(query)]


def _stored_text(engine, column, ticket_id):
    """What the database holds, without SQLAlchemy's conversions."""
    with engine.connect() as conn:
        sql = text(f"SELECT CAST({column} AS TEXT) FROM tickets WHERE ticket_id = :t")
        return conn.execute(sql, {"t": ticket_id}).scalar()


def test_values_are_stored_and_read_back_as_core_stores_and_reads_them(engine):
    values = dict(
        sla={"started_at": "2026-11-02T09:00:00+00:00", "paused": [1, 2]},
        snapshot={"summary": "Printer on fire", "labels": ["hw"]},
        updated_at=datetime(2026, 11, 2, 10, 30, tzinfo=timezone(timedelta(hours=2))),
        priority_pinned=True,
    )
    with engine.begin() as conn:
        _INSERT_TICKET.run(conn, _ticket("P-1", **values))
        conn.execute(insert(tickets), _ticket("C-1", **values))
    prepared, core = _core_rows(engine, ["P-1", "C-1"])[::-1]
    assert {**prepared, "ticket_id": "C-1"} == core
    assert prepared["updated_at"] == datetime(2026, 11, 2, 8, 30, tzinfo=UTC)
    for column in ("sla", "snapshot", "updated_at", "priority_pinned"):
        assert _stored_text(engine, column, "P-1") == _stored_text(engine, column, "C-1")

    with engine.connect() as conn:
        rows = _TICKET_BACK.rows(conn, {"b_platform": "jira"})
    assert [row.ticket_id for row in rows] == ["C-1", "P-1"]
    assert rows[1].sla == values["sla"] and rows[1].snapshot == values["snapshot"]
    assert rows[1].priority_pinned is True
    assert rows[1].updated_at == values["updated_at"] and rows[1].updated_at.tzinfo is UTC


def test_a_none_goes_through_its_column_as_with_core(engine):
    """A JSON column's None is JSON null under Core (none_as_null is off): the same here."""
    with engine.begin() as conn:
        _INSERT_TICKET.run(conn, _ticket("P-2", sla=None))
        conn.execute(insert(tickets), _ticket("C-2", sla=None))
    assert _stored_text(engine, "sla", "P-2") == _stored_text(engine, "sla", "C-2")


def test_the_parameters_given_choose_the_columns_set_and_the_rowcount_says_what_matched(engine):
    with engine.begin() as conn:
        _INSERT_TICKET.run(conn, _ticket("T-1", tier="L1", priority="P3"))
        matched = _UPDATE_TICKET.run(conn, {"b_platform": "jira", "b_id": "T-1", "tier": "L2"})
        missed = _UPDATE_TICKET.run(conn, {"b_platform": "jira", "b_id": "nope", "tier": "L2"})
    assert (matched, missed) == (1, 0)
    (row,) = _core_rows(engine, ["T-1"])
    assert (row["tier"], row["priority"]) == ("L2", "P3")  # priority was not named: left alone


def test_returning_rows_carry_the_statements_constants_and_conversions(engine):
    take = Prepared(
        update(inbox)
        .where(inbox.c.id == bindparam("b_id"), inbox.c.status == "pending")
        .values(status="processing", attempts=inbox.c.attempts + 1)
        .returning(inbox.c.id, inbox.c.body, inbox.c.ignored, inbox.c.received_at, inbox.c.attempts)
    )
    row = dict(platform="jira", delivery_id="d1", event_type="x", ticket_id="T", ignored=False, body=b"{}",
               received_at=T0, status="pending", attempts=0, next_attempt_at=T0)  # fmt: skip
    with engine.begin() as conn:
        (item_id,) = conn.execute(insert(inbox).returning(inbox.c.id), row).one()
        taken = take.first(conn, {"b_id": item_id})
        again = take.first(conn, {"b_id": item_id})  # no longer pending: nothing matched
    assert again is None
    assert taken == (item_id, b"{}", False, T0, 1)
    assert taken.received_at.tzinfo is UTC and taken.ignored is False
    with engine.connect() as conn:
        assert conn.execute(select(inbox.c.status).where(inbox.c.id == item_id)).scalar() == "processing"


def test_a_missing_parameter_is_named(engine):
    with engine.begin() as conn, pytest.raises(KeyError, match="b_id"):
        _UPDATE_TICKET.run(conn, {"b_platform": "jira", "tier": "L2"})


def test_what_only_core_can_run_is_refused_with_the_reason(engine):
    ids = bindparam("ids", expanding=True)
    expanding = Prepared(select(tickets.c.ticket_id).where(tickets.c.ticket_id.in_(ids)))
    with engine.connect() as conn, pytest.raises(NotPreparable, match="expanding IN"):
        expanding.rows(conn, {"ids": ["a"]})
    defaults = Prepared(insert(tickets))  # priority_pinned has a Python-side default
    with engine.begin() as conn, pytest.raises(NotPreparable, match="priority_pinned explicitly"):
        defaults.run(conn, {"platform": "jira", "ticket_id": "D-1"})
    same_ticket = tickets.c.ticket_id == inbox.c.ticket_id
    twice = Prepared(select(tickets.c.ticket_id, inbox.c.ticket_id).where(same_ticket))
    with engine.connect() as conn, pytest.raises(NotPreparable, match="distinct names"):
        twice.rows(conn, {})


def test_driver_errors_arrive_as_sqlalchemys_and_the_transaction_rolls_back(engine):
    with pytest.raises(exc.IntegrityError), engine.begin() as conn:
        _INSERT_TICKET.run(conn, _ticket("I-1"))
        _INSERT_TICKET.run(conn, _ticket("I-1"))
    assert _core_rows(engine, ["I-1"]) == []


def test_outside_a_transaction_it_begins_one_the_callers_commit_ends(engine):
    with engine.connect() as conn:
        _INSERT_TICKET.run(conn, _ticket("A-1"))
        assert conn.in_transaction()
        conn.commit()
    with engine.connect() as conn:
        _INSERT_TICKET.run(conn, _ticket("A-2"))  # closed without a commit: rolled back
    assert [row["ticket_id"] for row in _core_rows(engine, ["A-1", "A-2"])] == ["A-1"]


def test_cursor_listeners_see_the_statements(engine):
    seen: Counter = Counter()

    def count(conn, cursor, statement, parameters, context, executemany):
        seen[statement.split()[0]] += 1

    event.listen(engine, "before_cursor_execute", count)
    try:
        with engine.begin() as conn:
            _INSERT_TICKET.run(conn, _ticket("L-1"))
            _UPDATE_TICKET.run(conn, {"b_platform": "jira", "b_id": "L-1", "tier": "L3"})
    finally:
        event.remove(engine, "before_cursor_execute", count)
    assert seen == {"INSERT": 1, "UPDATE": 1}


@pytest.mark.postgres
def test_a_lost_connection_is_the_database_unavailable_and_the_pool_recovers(migrated_postgres_url):
    """The server ends the connection under a prepared statement: the caller sees what Core would
    raise (the worker waits for the database), and the next transaction gets a working connection."""
    engine = make_engine(migrated_postgres_url)
    killer = make_engine(migrated_postgres_url)
    try:
        with pytest.raises(exc.OperationalError) as lost, engine.begin() as conn:
            pid = conn.execute(text("SELECT pg_backend_pid()")).scalar_one()
            with killer.connect() as other:
                other.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
            _INSERT_TICKET.run(conn, _ticket("K-1"))
        assert database_unavailable(engine, lost.value)
        with engine.begin() as conn:
            _INSERT_TICKET.run(conn, _ticket("K-2"))
        assert [row["ticket_id"] for row in _core_rows(engine, ["K-1", "K-2"])] == ["K-2"]
    finally:
        engine.dispose()
        killer.dispose()


def test_threads_using_a_statement_first_at_once_all_read_whole_rows(engine, monkeypatch):
    """The worker's threads may be the first to run a statement together: each finds it compiled
    and its reader set whole, or builds them itself (building is slowed here to widen the window)."""
    make_row_class = prepared.namedtuple
    monkeypatch.setattr(prepared, "namedtuple", lambda *a, **k: time.sleep(0.05) or make_row_class(*a, **k))
    with engine.begin() as conn:
        _INSERT_TICKET.run(conn, _ticket("R-1", sla={"paused": True}, updated_at=T0))
    for _ in range(5):
        fresh = Prepared(select(*_READ_BACK).where(tickets.c.platform == bindparam("b_platform")))
        seen: list = []

        def read(_k: int, statement=fresh, seen=seen) -> None:
            with engine.connect() as conn:
                seen.extend(statement.rows(conn, {"b_platform": "jira"}))

        run_together(read, 8)
        assert {(row.ticket_id, row.sla["paused"], row.updated_at) for row in seen} == {("R-1", True, T0)}
        assert len(seen) == 8


def test_a_value_for_no_column_is_refused_and_a_selecting_extra_is_not(engine):
    """Core leaves a parameter that names no column out of the SET clause without a word; here it is
    an error (a misspelt column), while an unused `b_*` parameter (selecting rows) is left alone."""
    with engine.begin() as conn:
        _INSERT_TICKET.run(conn, _ticket("V-1"))
        with pytest.raises(ValueError, match="not tickets columns: teir"):
            _UPDATE_TICKET.run(conn, {"b_platform": "jira", "b_id": "V-1", "teir": "L2"})
        with pytest.raises(ValueError, match="not tickets columns: teir"):
            _INSERT_TICKET.run(conn, _ticket("V-2", teir="L2"))
        selecting = {"b_platform": "jira", "b_id": "V-1", "b_unused": 1}
        assert _UPDATE_TICKET.run(conn, {**selecting, "tier": "L2"}) == 1


def test_parameter_sets_of_one_executemany_must_name_the_same_keys(engine):
    with engine.begin() as conn, pytest.raises(ValueError, match="same keys as the first"):
        _INSERT_TICKET.run_many(conn, [_ticket("M-1"), _ticket("M-2", tier="L2")])
    assert _core_rows(engine, ["M-1", "M-2"]) == []


def test_many_rows_in_one_statement_store_what_core_stores(engine):
    """InsertRows: on PostgreSQL one multi-row INSERT per ROWS_A_STATEMENT rows (not a statement a row),
    each value typed as its column (JSON, an aware datetime, a boolean) and stored as Core stores it;
    on SQLite the one-row INSERT run for each. An ON CONFLICT clause holds for every row."""
    values = dict(
        sla={"started_at": "2026-11-02T09:00:00+00:00", "paused": [1, 2]},
        snapshot={"summary": "Printer on fire", "labels": ["hw"]},
        updated_at=datetime(2026, 11, 2, 10, 30, tzinfo=timezone(timedelta(hours=2))),
        priority_pinned=True,
    )
    count = prepared.ROWS_A_STATEMENT * 2 + 3
    rows = [_ticket(f"M-{n:03}", **values) for n in range(count)]
    many = prepared.InsertRows(tickets, lambda insert: insert.on_conflict_do_nothing())
    seen: list[tuple[str, bool]] = []
    event.listen(engine, "before_cursor_execute", lambda *a: seen.append((a[2].split(" (")[0], a[5])))
    with engine.begin() as conn:
        many.send(conn, rows)
        conn.execute(insert(tickets), _ticket("C-1", **values))
    one = ("INSERT INTO tickets", False)  # (statement, run as executemany)
    assert seen[:-1] == (
        [one] * 3 if engine.dialect.name == "postgresql" else [("INSERT INTO tickets", True)]
    )
    stored = _core_rows(engine, [r["ticket_id"] for r in rows] + ["C-1"])
    core = stored.pop(0)  # (C before M)
    assert [r["ticket_id"] for r in stored] == [r["ticket_id"] for r in rows]
    assert all({**r, "ticket_id": "C-1"} == core for r in stored)
    for column in ("sla", "snapshot", "updated_at", "priority_pinned"):
        assert _stored_text(engine, column, "M-130") == _stored_text(engine, column, "C-1")

    with engine.begin() as conn:  # again, with one new: the rows stored before are left alone
        many.send(conn, [_ticket("M-000", priority_pinned=False), _ticket("M-new", priority_pinned=False)])
    again = {r["ticket_id"]: r["priority_pinned"] for r in _core_rows(engine, ["M-000", "M-new"])}
    assert again == {"M-000": True, "M-new": False}


def test_many_rows_must_name_the_same_columns(engine):
    with engine.begin() as conn, pytest.raises(ValueError, match="same columns"):
        prepared.InsertRows(tickets).send(conn, [_ticket("A"), _ticket("B", tier="L2")])
