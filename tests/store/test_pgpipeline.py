"""PostgreSQL transactions sent through libpq's pipeline directly (connector/store/pgpipeline.py):
values stored and read exactly as through psycopg's cursor, Core statements inside a block, the
server-side statements kept across the pool's resets, and waits that let other threads run."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime

import pytest
from psycopg.pq import TransactionStatus
from sqlalchemy import Connection, bindparam, select, text
from sqlalchemy.exc import IntegrityError, ProgrammingError

from connector.store.db import make_engine, one_statement, pipelined_writing, reading
from connector.store.pgpipeline import _numbered
from connector.store.prepared import Prepared, dbapi_cursor
from connector.store.tables import tickets

pytestmark = pytest.mark.postgres

T0 = datetime(2026, 11, 2, 9, 0, 0, 123456, tzinfo=UTC)
_INSERT = Prepared(tickets.insert())
_READ = Prepared(select(tickets).where(tickets.c.ticket_id == bindparam("b_id")))


@pytest.fixture
def engine(migrated_postgres_url):
    engine = make_engine(migrated_postgres_url)
    yield engine
    engine.dispose()


def _row(ticket_id: str) -> dict:
    """A ticket row with a value of every kind the store writes: text, numbers, booleans, instants,
    JSON (nested, unicode, null), JSONB, and NULLs."""
    return dict(
        platform="jira",
        ticket_id=ticket_id,
        ticket_key="ŠUP-1 '%s' %(x)s",  # quotes and psycopg's own placeholder text, as data
        requester_id=None,
        tier="L2",
        priority="P1",
        priority_pinned=True,
        lease_owner="host:1:Labc",
        lease_until=T0,
        updated_at=T0,
        snapshot={"ref": {"id": "SUP-1"}, "labels": ["outage", "ünïcode"], "none": None, "n": 2**40},
        sla={"started_at": "2026-11-02T09:00:00+00:00", "paused": False, "spent": 1.5},
        sla_open=True,
        write_windows={"account": [[1.25, 2]]},
    )


def _stored(conn: Connection, ticket_id: str) -> dict:
    return conn.execute(select(tickets).where(tickets.c.ticket_id == ticket_id)).one()._asdict()


def test_values_go_and_come_back_as_through_psycopgs_cursor(engine):
    with engine.begin() as conn:  # psycopg's cursor: the reference
        _INSERT.send(conn, _row("A"))
    with pipelined_writing(engine) as conn:
        _INSERT.send(conn, _row("B"))
        read_inside = _READ.first(conn, {"b_id": "B"})  # read through the pipeline
    with engine.connect() as conn:
        a, b = _stored(conn, "A"), _stored(conn, "B")
        read_outside = _READ.first(conn, {"b_id": "A"})
    assert {**a, "ticket_id": "B"} == b
    assert b["ticket_key"] == "ŠUP-1 '%s' %(x)s" and b["lease_until"] == T0
    assert {**read_outside._asdict(), "ticket_id": "B"} == read_inside._asdict() == b


def test_a_core_statement_in_a_block_runs_after_what_was_queued_and_inside_the_transaction(engine):
    with pytest.raises(IntegrityError), pipelined_writing(engine) as conn:
        _INSERT.send(conn, _row("C1"))
        # Core's own cursor: the queued insert is answered first, so the SELECT sees it.
        assert conn.execute(select(tickets.c.ticket_id)).scalars().all() == ["C1"]
        _INSERT.send(conn, _row("C2"))
        _INSERT.send(conn, _row("C2"))  # refused: everything before goes with it
    with engine.connect() as conn:
        assert conn.execute(select(tickets.c.ticket_id)).scalars().all() == []
    with pipelined_writing(engine) as conn:
        conn.execute(tickets.insert(), {**_row("C3"), "snapshot": None})
        _INSERT.send(conn, _row("C4"))
    with engine.connect() as conn:
        assert sorted(conn.execute(select(tickets.c.ticket_id)).scalars()) == ["C3", "C4"]


def test_a_refusal_is_raised_at_the_next_read_as_sqlalchemys_error(engine):
    with pipelined_writing(engine) as conn:
        _INSERT.send(conn, _row("D"))
    with pytest.raises(IntegrityError, match="duplicate key") as refused:
        with pipelined_writing(engine) as conn:
            _INSERT.send(conn, _row("D"))  # not waited for
            _READ.first(conn, {"b_id": "D"})  # the first read says it
    assert "INSERT INTO tickets" in str(refused.value)


def test_statements_prepared_once_per_connection_outlive_a_rollback_and_recover_from_deallocation(engine):
    engine.pool.dispose()
    for n in range(3):  # a failed block between: rolled back, the pool resets the connection
        with pipelined_writing(engine) as conn:
            _INSERT.send(conn, _row(f"E{n}"))
        with pytest.raises(IntegrityError), pipelined_writing(engine) as conn:
            _INSERT.send(conn, _row(f"E{n}"))
    with engine.connect() as conn:
        prepared = conn.execute(text("SELECT count(*) FROM pg_prepared_statements")).scalar_one()
        assert prepared >= 1
        conn.execute(text("DEALLOCATE ALL"))  # behind the pipeline's back
        conn.commit()
    with pytest.raises(ProgrammingError, match="does not exist"), pipelined_writing(engine) as conn:
        _INSERT.send(conn, _row("E9"))
    with pipelined_writing(engine) as conn:  # prepared anew
        _INSERT.send(conn, _row("E9"))
    with engine.connect() as conn:
        assert sorted(conn.execute(select(tickets.c.ticket_id)).scalars()) == ["E0", "E1", "E2", "E9"]


def test_a_pipeline_waiting_for_the_server_lets_other_threads_run(engine):
    """A block whose statement waits for a lock another transaction holds: the waiting thread is
    in poll(), not holding the interpreter, so the rest of the worker goes on."""
    with pipelined_writing(engine) as conn:
        _INSERT.send(conn, _row("F"))
    holder = engine.connect()
    holder.execute(text("SELECT 1 FROM tickets WHERE ticket_id = 'F' FOR UPDATE"))
    done = threading.Event()

    def blocked() -> None:
        with pipelined_writing(engine) as conn:
            cursor = dbapi_cursor(conn)
            cursor.execute("UPDATE tickets SET tier = %s WHERE ticket_id = %s", ["L3", "F"])
            assert cursor.rowcount == 1  # waits for the lock
        done.set()

    thread = threading.Thread(target=blocked)
    thread.start()
    counted, until = 0, time.monotonic() + 0.5
    while time.monotonic() < until:
        counted += 1
    assert not done.is_set() and counted > 100_000  # this thread ran freely meanwhile
    holder.rollback()
    holder.close()
    thread.join(10)
    assert done.is_set()
    with engine.connect() as conn:
        assert conn.execute(select(tickets.c.tier).where(tickets.c.ticket_id == "F")).scalar_one() == "L3"


def test_psycopg_placeholders_become_numbered_ones():
    named = _numbered("SELECT %(a)s, %(b)s, %(a)s, 100%% FROM t")
    assert named == (b"SELECT $1, $2, $1, 100% FROM t", ("a", "b"))
    assert _numbered("UPDATE t SET x = %s WHERE y = %s") == (b"UPDATE t SET x = $1 WHERE y = $2", ())
    with pytest.raises(ValueError, match="both named and positional"):
        _numbered("SELECT %(a)s, %s")


def test_outside_a_transaction_what_was_sent_commits_at_each_read_and_at_the_end(engine):
    def stored() -> list[str]:
        with engine.connect() as other:
            return sorted(other.execute(select(tickets.c.ticket_id)).scalars())

    with one_statement(engine) as conn:
        _INSERT.send(conn, _row("G1"))
        assert _READ.first(conn, {"b_id": "G1"}).tier == "L2"
        assert conn.connection.dbapi_connection.info.transaction_status == TransactionStatus.IDLE
        assert stored() == ["G1"]  # committed at the read
        _INSERT.send(conn, _row("G2"))  # not read: committed at the block's end
    assert stored() == ["G1", "G2"]
    with pytest.raises(IntegrityError), reading(engine) as conn:
        _INSERT.send(conn, _row("G2"))
    with one_statement(engine) as conn:  # a refusal caught, the block goes on (as psycopg's autocommit)
        with pytest.raises(IntegrityError):
            _INSERT.run(conn, _row("G1"))
        _INSERT.send(conn, _row("G3"))
    assert stored() == ["G1", "G2", "G3"]
    with reading(engine) as conn:  # the connection that was refused works again
        assert _READ.first(conn, {"b_id": "G2"}).ticket_id == "G2"
