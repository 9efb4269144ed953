"""Every SQLite connection of the pool is set up alike: WAL, NORMAL sync, a busy timeout, foreign keys."""

from __future__ import annotations

from connector.store.db import make_engine


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
