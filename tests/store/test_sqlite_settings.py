"""Every SQLite connection of the pool is set up alike: WAL, NORMAL sync, a busy timeout, foreign keys;
and a process writes through one of them, held between its transactions."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import event

from connector.store.db import make_engine, writing


def test_every_connection_gets_the_same_settings(sqlite_url):
    engine = make_engine(sqlite_url)
    try:
        conns = [engine.connect() for _ in range(3)]  # three pooled connections at once
        for conn in conns:
            read = lambda pragma, c=conn: c.exec_driver_sql(f"PRAGMA {pragma}").scalar()  # noqa: E731
            assert read("journal_mode") == "wal"
            assert read("synchronous") == 1  # NORMAL: durable in WAL across process crashes
            assert read("busy_timeout") == 30000
            assert read("foreign_keys") == 1
        for conn in conns:
            conn.close()
    finally:
        engine.dispose()


# --- the connection a process writes through --------------------------------------------------------


def _audit_heads(engine) -> int:
    with engine.connect() as conn:
        return conn.exec_driver_sql("SELECT count(*) FROM audit_head").scalar()


def test_writes_go_through_one_held_connection_and_a_failed_one_lets_it_go(sqlite_url):
    engine = make_engine(sqlite_url)
    checkouts = []
    event.listen(engine.pool, "checkout", lambda *_: checkouts.append(1))
    try:
        with writing(engine) as conn:
            first = conn.connection.dbapi_connection
        with writing(engine) as conn:
            assert conn.connection.dbapi_connection is first  # held between transactions
        assert len(checkouts) == 1  # taken from the pool once
        before = _audit_heads(engine)
        with pytest.raises(RuntimeError), writing(engine) as conn:
            conn.exec_driver_sql("INSERT INTO audit_head (id, seq, hash) VALUES (99, 0, 'x')")
            raise RuntimeError("a fault mid-transaction")
        assert _audit_heads(engine) == before  # rolled back
        taken = len(checkouts)
        with writing(engine):
            pass
        assert len(checkouts) == taken + 1  # given back to the pool (reset) after the failure, taken anew
    finally:
        engine.dispose()


def test_disposing_the_engine_closes_its_held_connection(sqlite_url):
    path = sqlite_url.removeprefix("sqlite:///")
    engine = make_engine(sqlite_url)
    with writing(engine) as conn:
        conn.exec_driver_sql("UPDATE audit_head SET seq = seq")
    assert os.path.exists(f"{path}-wal")
    engine.dispose()
    # The last connection closed: SQLite checkpointed the WAL into the file and removed it.
    assert not os.path.exists(f"{path}-wal")


def test_threads_writing_at_once_share_the_held_connection_one_at_a_time(sqlite_url):
    engine = make_engine(sqlite_url)
    try:
        with writing(engine) as conn:
            conn.exec_driver_sql("CREATE TABLE counted (n INTEGER)")

        def write(n: int) -> None:
            for k in range(50):
                with writing(engine) as conn:
                    conn.exec_driver_sql(f"INSERT INTO counted VALUES ({n * 100 + k})")
                    conn.exec_driver_sql("SELECT count(*) FROM counted").scalar()

        with ThreadPoolExecutor(8) as pool:
            list(pool.map(write, range(8)))
        with engine.connect() as conn:
            assert conn.exec_driver_sql("SELECT count(DISTINCT n) FROM counted").scalar() == 400
    finally:
        engine.dispose()
