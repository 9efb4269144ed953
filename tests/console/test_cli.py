"""`escalator user add|token` print config entries that the console accepts; `console index` catches up."""

from __future__ import annotations

import io
import sys

from ruamel.yaml import YAML
from sqlalchemy import select

from connector.cli import main
from connector.config import Config
from connector.store.tables import console_index_state
from console import auth
from tests.console import seed


def entry(printed: str) -> dict:
    return YAML(typ="safe").load(printed)


def test_user_add_prints_an_entry_that_logs_in(monkeypatch, capsys):
    monkeypatch.setattr(sys, "stdin", io.StringIO("a long enough password\n"))
    assert main(["user", "add", "alice", "--role", "operator", "--password-stdin"]) == 0
    printed = capsys.readouterr().out
    assert "a long enough password" not in printed
    users = entry(printed)
    settings = Config.model_validate({"console": {"users": users}}).console
    assert auth.check_login(settings, "alice", "a long enough password").role == "operator"
    assert auth.check_login(settings, "alice", "a wrong password") is None


def test_user_add_refuses_a_short_password_and_a_strange_name(monkeypatch, capsys):
    monkeypatch.setattr(sys, "stdin", io.StringIO("short\n"))
    assert main(["user", "add", "alice", "--password-stdin"]) == 2
    assert "at least 12 characters" in capsys.readouterr().err
    assert main(["user", "add", "al ice", "--password-stdin"]) == 2
    assert "user name 'al ice'" in capsys.readouterr().err


def test_user_token_prints_the_token_once_and_only_its_hash_for_the_config(capsys):
    assert main(["user", "token", "reporting"]) == 0
    printed = capsys.readouterr().out
    token = printed.split("Bearer …`): ")[1].split()[0]
    tokens = entry(printed)
    assert token not in str(tokens)
    settings = Config.model_validate({"console": {"tokens": tokens}}).console
    assert auth.check_token(settings, f"Bearer {token}").name == "reporting"


def test_console_index_catches_up(sqlite_console, tmp_path, capsys):
    url = sqlite_console.rt.config.database
    (tmp_path / "escalator.yaml").write_text(f"database: '{url}'\n")
    assert main(["console", "index", "--config", str(tmp_path / "escalator.yaml")]) == 0
    assert f"indexed {len(seed.DECISIONS)} audit records" in capsys.readouterr().out
    with sqlite_console.rt.engine.connect() as conn:
        assert conn.execute(select(console_index_state.c.last_seq)).scalar_one() == len(seed.DECISIONS)
