"""`escalator db upgrade | current | check` and the schema state behind them (SQLite and PostgreSQL)."""

from __future__ import annotations

from alembic import command
from alembic.config import Config

from connector.store.db import MIGRATIONS, make_engine, writing
from connector.store.schema import head, state, upgrade
from tests.support.entry import escalator


def _migrate_to(engine, revision: str) -> None:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    with writing(engine) as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)


def test_state_and_upgrade_from_an_older_revision(empty_db_url):
    engine = make_engine(empty_db_url)
    try:
        assert state(engine).current is None and not state(engine).up_to_date
        _migrate_to(engine, "0001")
        behind = state(engine)
        assert behind.current == "0001" and behind.known and not behind.up_to_date
        assert f"behind {head()}: `escalator db upgrade`" in str(behind)
        before, after = upgrade(engine)
        assert (before.current, after.current) == ("0001", head()) and after.up_to_date
        assert upgrade(engine)[0].up_to_date  # idempotent
    finally:
        engine.dispose()


def test_db_commands_through_the_installed_command(tmp_path):
    db = tmp_path / "escalator.db"
    config = tmp_path / "escalator.yaml"
    config.write_text("database: sqlite:///escalator.db\n")  # next to the config file
    missing = escalator("db", "check", "--config", str(config))
    assert missing.returncode == 1 and "does not exist yet" in missing.stderr and not db.exists()

    engine = make_engine(f"sqlite:///{db}")
    _migrate_to(engine, "0001")
    engine.dispose()
    behind = escalator("db", "check", "--config", str(config))
    assert behind.returncode == 1 and f"schema at 0001, behind {head()}" in behind.stderr
    upgraded = escalator("db", "upgrade", "--config", str(config))
    assert upgraded.returncode == 0 and f"upgraded from 0001 to {head()}" in upgraded.stdout
    current = escalator("db", "current", "--config", str(config))
    assert current.returncode == 0 and f"schema at {head()} (the newest)" in current.stdout
    assert escalator("db", "check", "--config", str(config)).returncode == 0
