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


def test_audit_records_written_before_the_upgrade_still_verify_and_filter_by_key(empty_db_url):
    """A deployed database at 0002 with records in the old format: after the upgrade verify still
    passes (every column now checked), `--ticket TES-41` finds them, and new records chain on."""
    import json
    from datetime import UTC, datetime

    from alembic import command
    from alembic.config import Config

    from connector import audit
    from connector.store.db import MIGRATIONS, make_engine

    engine = make_engine(empty_db_url)
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0002")
    prev = audit.GENESIS
    with engine.begin() as conn:
        for seq in (1, 2):
            at = datetime(2026, 10, 1, 9, seq, tzinfo=UTC)
            body = {  # exactly what the 0.1 code wrote: no v, no software, unkeyed pseudonyms
                "platform": "jira", "ticket": {"id": "10040", "key": "TES-41", "url": None},
                "rules": ["outage-goes-to-l2"], "outcome": "applied", "id": f"old-{seq}", "seq": seq,
                "at": at.isoformat(timespec="microseconds"),
                "inputs": {"actor": audit.pseudonym("557058:abc")},
            }  # fmt: skip
            record = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
            digest = audit.chain_hash(prev, record)
            conn.execute(
                text(
                    "INSERT INTO audit_log (seq, record_id, at, platform, ticket_id, rules, outcome, record, "
                    "prev_hash, hash) VALUES (:s, :i, :at, 'jira', '10040', 'outage-goes-to-l2', 'applied', "
                    ":r, :p, :h)"
                ),
                {"s": seq, "i": f"old-{seq}", "at": at if conn.dialect.name == "postgresql" else
                 at.replace(tzinfo=None).isoformat(sep=" "), "r": record, "p": prev, "h": digest},
            )  # fmt: skip
            prev = digest
        conn.execute(text("UPDATE audit_head SET seq = 2, hash = :h"), {"h": prev})
    migrate(engine)
    result = audit.verify(engine)
    assert result.ok and result.checked == 2, str(result)
    assert [r["seq"] for r in audit.records(engine, ticket="TES-41")] == [1, 2]
    with engine.begin() as conn:
        new = audit.append(conn, {"platform": "jira", "ticket": {"id": "10040", "key": "TES-41"},
                                  "outcome": "applied"}, at=datetime(2026, 11, 1, tzinfo=UTC))  # fmt: skip
    assert new["prev_hash"] == prev and new["v"] == 2 and new["software"]
    assert audit.verify(engine).ok
    with pytest.raises(DBAPIError, match="append-only"):
        with engine.begin() as conn:
            conn.execute(text("DELETE FROM audit_log WHERE seq = 1"))
    engine.dispose()


def test_processes_starting_together_on_a_new_database_migrate_it_once(empty_db_url):
    """Replicas (or `serve` and `escalator work`) started at once on a database nothing has touched:
    each migrates at start. On PostgreSQL two at once both tried to create Alembic's version table,
    and one ended with a unique violation on the catalog. (Processes: Alembic runs one migration
    at a time per process.)"""
    import subprocess
    import sys
    from pathlib import Path

    script = (
        "import sys, time\n"
        "from connector.store.db import make_engine, migrate\n"
        "engine = make_engine(sys.argv[1])\n"
        "while time.time() < float(sys.argv[2]): time.sleep(0.001)\n"  # all start together
        "migrate(engine)\n"
    )
    import time

    at = str(time.time() + 3)
    root = Path(__file__).resolve().parents[2]
    starting = [
        subprocess.Popen([sys.executable, "-c", script, empty_db_url, at], cwd=root, stderr=subprocess.PIPE)
        for _ in range(4)
    ]
    errors = [p.communicate(timeout=120)[1].decode() for p in starting]
    assert [p.returncode for p in starting] == [0, 0, 0, 0], "\n".join(errors)
    from connector.store.db import make_engine

    engine = make_engine(empty_db_url)
    try:
        with engine.connect() as conn:
            assert len(conn.execute(text("SELECT version_num FROM alembic_version")).all()) == 1
    finally:
        engine.dispose()


@pytest.mark.postgres
def test_postgresql_compresses_large_values_with_lz4_reads_them_back_and_downgrades(migrated_postgres_url):
    """Migration 0012: a webhook body (a recorded Jira event, ~9 KB, compressible) is stored with lz4
    by the server, and reads back byte for byte; the other large columns are set alike. Downgraded,
    the columns go back to the server's default and the lz4 value still reads; upgraded again, lz4."""
    from datetime import UTC, datetime
    from pathlib import Path

    from sqlalchemy import insert, select

    from connector.store import inbox
    from connector.store.db import make_engine
    from connector.store.tables import inbox as inbox_table

    body = (
        Path(__file__).parents[1] / "fixtures/jira/thirdparty/mm__webhook-issue-updated-reopened.json"
    ).read_bytes()
    engine = make_engine(migrated_postgres_url)
    try:
        with engine.begin() as conn:
            available = conn.execute(
                text("SELECT 'lz4' = ANY(enumvals) FROM pg_settings WHERE name = 'default_toast_compression'")
            ).scalar()
            if not available:
                pytest.skip("this PostgreSQL has no lz4: the migration leaves pglz")
            row = inbox.new_row("jira", "lz4-1", "jira:issue_updated", "1", False, body,
                                datetime(2026, 12, 2, tzinfo=UTC))  # fmt: skip
            conn.execute(insert(inbox_table), [row])
        with engine.connect() as conn:
            how = conn.execute(text("SELECT pg_column_compression(body) FROM inbox")).scalar()
            back = conn.execute(select(inbox_table.c.body)).scalar()
        assert how == "lz4" and back == body
        assert _compression(engine) == {
            "inbox.body": "l",
            "audit_log.record": "l",
            "outbox.message": "l",
            "tickets.snapshot": "l",
        }

        _alembic(engine, "downgrade", "0011")  # back to the server's default; what lz4 wrote still reads
        assert _compression(engine) == {}
        with engine.connect() as conn:
            assert conn.execute(select(inbox_table.c.body)).scalar() == body
        migrate(engine)
        assert set(_compression(engine).values()) == {"l"}
    finally:
        engine.dispose()


def _compression(engine) -> dict[str, str]:
    """PostgreSQL's columns with a compression method of their own: table.column → its letter."""
    with engine.connect() as conn:
        query = text(
            "SELECT c.relname || '.' || a.attname, a.attcompression FROM pg_attribute a "
            "JOIN pg_class c ON c.oid = a.attrelid WHERE a.attcompression <> ''"
        )
        return dict(conn.execute(query).all())


def _alembic(engine, command_name: str, revision: str) -> None:
    from alembic import command
    from alembic.config import Config

    from connector.store.db import MIGRATIONS

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        getattr(command, command_name)(cfg, revision)
