"""The PostgreSQL pool: no ping in a transaction's way while connections are in steady use, and a
connection the server closed while it sat idle (a restart, a proxy's idle cut) is replaced unseen."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from connector.store import db
from connector.store.db import make_engine

pytestmark = pytest.mark.postgres


def test_a_pooled_connection_the_server_closed_is_replaced_before_use(postgres_url, monkeypatch):
    engine = make_engine(postgres_url)
    killer = make_engine(postgres_url)
    try:
        with engine.connect() as conn:
            pid = conn.execute(text("SELECT pg_backend_pid()")).scalar_one()
        with killer.connect() as other:
            assert other.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid}).scalar_one()
        monkeypatch.setattr(db, "PING_WHEN_IDLE_SECONDS", 0.0)  # it has sat idle long enough
        with engine.connect() as conn:
            assert conn.execute(text("SELECT pg_backend_pid()")).scalar_one() != pid
    finally:
        engine.dispose()
        killer.dispose()


def test_a_connection_in_steady_use_is_not_pinged(postgres_url):
    engine = make_engine(postgres_url)
    pings = []
    ping = engine.dialect.do_ping
    engine.dialect.do_ping = lambda conn: pings.append(conn) or ping(conn)
    try:
        for _ in range(5):
            with engine.connect() as conn:
                conn.execute(text("SELECT 1"))
        assert pings == []
    finally:
        engine.dispose()


def test_a_connection_idle_a_while_is_pinged_first(postgres_url, monkeypatch):
    engine = make_engine(postgres_url)
    pings = []
    ping = engine.dialect.do_ping
    engine.dialect.do_ping = lambda conn: pings.append(conn) or ping(conn)
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        monkeypatch.setattr(db, "PING_WHEN_IDLE_SECONDS", 0.0)
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        assert len(pings) == 1
    finally:
        engine.dispose()
