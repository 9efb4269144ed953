from __future__ import annotations

import pytest
from sqlalchemy import inspect, text
from sqlalchemy.exc import DBAPIError

from connector.store.db import migrate


def test_migration_creates_every_table_and_is_idempotent(engine):
    migrate(engine)  # a second run is a no-op
    names = set(inspect(engine).get_table_names())
    assert {"inbox", "tickets", "audit_log", "audit_head", "alembic_version"} <= names


@pytest.mark.parametrize("statement", ["UPDATE audit_log SET outcome = 'x'", "DELETE FROM audit_log"])
def test_audit_log_refuses_update_and_delete(engine, statement):
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO audit_log (seq, record_id, at, platform, outcome, record, prev_hash, hash) "
                "VALUES (1, 'r1', CURRENT_TIMESTAMP, 'jira', 'applied', '{}', :z, :z)"
            ),
            {"z": "0" * 64},
        )
    with pytest.raises(DBAPIError, match="append-only"):
        with engine.begin() as conn:
            conn.execute(text(statement))
