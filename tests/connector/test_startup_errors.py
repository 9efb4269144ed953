"""Every start-up failure an admin can cause is one line that says what to do, exit 2, no traceback."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from connector.cli import main
from connector.config import load_config
from connector.store.db import DatabaseUnavailable, NewerSchema, driver_url, make_engine, migrate
from tests.support.entry import escalator


def _one_line_error(done, *expected: str) -> str:
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert "Traceback" not in done.stderr, done.stderr
    err = done.stderr.strip().splitlines()[-1]  # serve may have logged its start before
    assert err.startswith("escalator: "), done.stderr
    for text in expected:
        assert text in err, err
    return err


def test_port_in_use(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        config = tmp_path / "escalator.yaml"
        config.write_text("database: sqlite:///x.db\nworker: {threads: 0}\n")
        done = escalator("serve", "--config", str(config), "--port", str(port), cwd=tmp_path)
    _one_line_error(done, f"port {port} on 127.0.0.1 is already in use", "--port or server.port")


@pytest.mark.parametrize(
    "url, expected",
    [
        ("postgresql://escalator@127.0.0.1:1/escalator", "PostgreSQL at 127.0.0.1:1 does not answer"),
        ("mysql://u@db/escalator", "'mysql' is not a database Escalator supports: use sqlite:///PATH or"),
        ("sqlite:///no/such/folder/escalator.db", "the folder of the SQLite file"),
    ],
)
def test_a_database_that_cannot_be_used(tmp_path, capsys, url, expected):
    config = tmp_path / "escalator.yaml"
    config.write_text(f"database: {url}\n")
    assert main(["events", "list", "--config", str(config)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("escalator: database: ") and expected in err and "\n" not in err


def test_a_database_down_through_the_installed_command(tmp_path):
    config = tmp_path / "escalator.yaml"
    config.write_text("database: postgresql://escalator:pw@127.0.0.1:1/escalator\n")
    err = _one_line_error(escalator("audit", "verify", "--config", str(config)), "does not answer")
    assert "pw" not in err  # the password never shows


def _migrated_by_a_newer_escalator(tmp_path) -> Path:
    """A config whose database a newer Escalator migrated (to a revision this code does not have)."""
    url = f"sqlite:///{tmp_path / 'escalator.db'}"
    engine = make_engine(url)
    migrate(engine)
    with engine.begin() as conn:
        conn.exec_driver_sql("UPDATE alembic_version SET version_num = '9001'")
    engine.dispose()
    config = tmp_path / "escalator.yaml"
    config.write_text(f"database: {url}\nworker: {{threads: 0}}\n")
    return config


@pytest.mark.parametrize("command", [["serve", "--port", "0"], ["work"], ["events", "list"]])
def test_a_database_a_newer_escalator_migrated_is_refused_with_what_to_do(tmp_path, command):
    # Run after a downgrade, this code would have handed Alembic a revision it does not have, and
    # Alembic's "Can't locate revision" came out as a traceback (and a restart loop under systemd).
    config = _migrated_by_a_newer_escalator(tmp_path)
    done = escalator(*command, "--config", str(config), cwd=tmp_path)
    _one_line_error(done, "schema at 9001, which this Escalator does not know", "upgrade Escalator")
    with pytest.raises(NewerSchema) as refused:
        migrate(make_engine(f"sqlite:///{tmp_path / 'escalator.db'}"))
    assert not refused.value.may_answer_later  # serve does not wait for it: it exits


def test_a_missing_policy_file_names_the_file_not_line_0(tmp_path):
    config = tmp_path / "escalator.yaml"
    config.write_text("database: sqlite:///x.db\npolicy: policies/mine.yaml\n")
    done = escalator("serve", "--config", str(config), cwd=tmp_path)
    assert done.returncode == 2
    assert f"{tmp_path}/policies/mine.yaml: cannot read the policy file: No such file" in done.stderr
    assert ":0:" not in done.stderr and "Traceback" not in done.stderr


def test_an_unreadable_config_file(tmp_path, capsys):
    folder = tmp_path / "escalator.yaml"
    folder.mkdir()  # reading it fails as an unreadable file does (the tests may run as root)
    assert main(["events", "list", "--config", str(folder)]) == 2
    assert f"{folder}: cannot read the config file" in capsys.readouterr().err


def test_relative_paths_resolve_against_the_config_files_folder(tmp_path, monkeypatch):
    (tmp_path / "etc").mkdir()
    config = tmp_path / "etc" / "escalator.yaml"
    config.write_text("database: sqlite:///data/escalator.db?timeout=5\npolicy: ../policy.yaml\n")
    monkeypatch.chdir("/")
    loaded = load_config(config)
    assert loaded.database == f"sqlite:///{tmp_path}/etc/data/escalator.db?timeout=5"
    assert loaded.policy == str(tmp_path / "policy.yaml")
    for kept in ("sqlite:////var/lib/escalator.db", "sqlite://", "sqlite:///:memory:", "postgresql://h/db"):
        config.write_text(f"database: '{kept}'\n")
        assert load_config(config).database == kept


def test_postgres_scheme_is_postgresql():
    assert driver_url("postgres://u@h/db") == "postgresql+psycopg://u@h/db"
    assert driver_url("postgresql://u@h/db") == "postgresql+psycopg://u@h/db"


@pytest.mark.postgres
def test_postgres_url_works_and_a_missing_database_is_named(postgres_url):
    short = postgres_url.replace("postgresql+psycopg://", "postgres://", 1)
    engine = make_engine(short)
    migrate(engine)  # the postgres:// spelling reaches the real server
    engine.dispose()
    base, _, name = short.rpartition("/")
    with pytest.raises(DatabaseUnavailable, match=rf'has no database "{name}_nope": create it \(createdb'):
        migrate(make_engine(f"{base}/{name}_nope"))
