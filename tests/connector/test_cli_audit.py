"""`escalator audit …` as an admin and an auditor type it."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import text

from connector import audit
from connector.audit.cli import since
from connector.audit.keys import AuditKeys, load_signer
from connector.cli import main
from connector.store.db import make_engine, migrate


@pytest.fixture
def setup(tmp_path):
    cfg = tmp_path / "escalator.yaml"
    assert main(["audit", "keygen", "--private-key", str(tmp_path / "k.pem"), "--public-key",
                 str(tmp_path / "k.pub")]) == 0  # fmt: skip
    cfg.write_text(
        f"database: sqlite:///{tmp_path / 'a.db'}\n"
        f"audit:\n  signing_key: {tmp_path / 'k.pem'}\n  checkpoints:\n    to: {tmp_path / 'cps'}\n"
    )
    engine = make_engine(f"sqlite:///{tmp_path / 'a.db'}")
    migrate(engine)
    now = datetime.now(UTC)
    keys = AuditKeys(signer=load_signer(str(tmp_path / "k.pem")))
    with engine.begin() as conn:
        for i, key in enumerate(("TES-41", "TES-42", "TES-42")):
            record = {"platform": "jira", "ticket": {"id": f"1004{i}", "key": key}, "outcome": "applied"}
            audit.append(conn, record, at=now - timedelta(hours=48 - 24 * i), keys=keys)
    engine.dispose()
    return tmp_path, ["--config", str(cfg)]


def test_keygen_never_overwrites(setup, capsys):
    tmp_path, _ = setup
    assert main(["audit", "keygen", "--private-key", str(tmp_path / "k.pem"), "--public-key", "x"]) == 2
    assert "never overwritten" in capsys.readouterr().err


def test_export_by_ticket_key_and_relative_since_and_show(setup, capsys):
    tmp_path, cfg = setup
    capsys.readouterr()
    assert main(["audit", "export", "--ticket", "TES-42", *cfg]) == 0
    assert [json.loads(line)["seq"] for line in capsys.readouterr().out.splitlines()] == [2, 3]
    assert main(["audit", "export", "--since", "30h", *cfg]) == 0
    assert [json.loads(line)["seq"] for line in capsys.readouterr().out.splitlines()] == [2, 3]
    assert main(["audit", "show", "2", *cfg]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["seq"] == 2 and shown["software"] and shown["signature"] and len(shown["hash"]) == 64
    assert main(["audit", "show", "9", *cfg]) == 1
    assert "no audit record with seq=9" in capsys.readouterr().err


def test_since_reads_relative_and_iso_times():
    assert abs(since("24h") - (datetime.now(UTC) - timedelta(hours=24))) < timedelta(seconds=5)
    assert since("2026-11-01") == datetime(2026, 11, 1, tzinfo=UTC)
    with pytest.raises(Exception, match="30m, 24h, 7d"):
        since("yesterday")


def test_verify_with_key_and_checkpoints_then_an_attack(setup, capsys):
    tmp_path, cfg = setup
    assert main(["audit", "checkpoint", *cfg]) == 0
    assert "checkpoint #1: records seq=1..3" in capsys.readouterr().err
    verify = [
        "audit",
        "verify",
        "--public-key",
        str(tmp_path / "k.pub"),
        "--checkpoints",
        str(tmp_path / "cps"),
    ]
    assert main([*verify, *cfg]) == 0
    out = capsys.readouterr().out
    assert "intact: 3 records" in out and "head: seq=3 hash=" in out
    engine = make_engine(f"sqlite:///{tmp_path / 'a.db'}")
    with engine.begin() as conn:  # truncate the tail and move the head back
        conn.execute(text("DROP TRIGGER audit_log_no_delete"))
        conn.execute(text("DELETE FROM audit_log WHERE seq = 3"))
        conn.execute(text("UPDATE audit_head SET seq = 2, hash = (SELECT hash FROM audit_log WHERE seq = 2)"))
    engine.dispose()
    assert main(["audit", "verify", *cfg]) == 0  # the database alone cannot tell
    assert main([*verify, *cfg]) == 1
    assert "BROKEN at record seq=3" in capsys.readouterr().out


def test_verify_refuses_checkpoints_without_a_public_key(setup, capsys):
    tmp_path, cfg = setup
    assert main(["audit", "checkpoint", *cfg]) == 0
    assert main(["audit", "verify", "--checkpoints", str(tmp_path / "cps"), *cfg]) == 2
    assert "needs --public-key" in capsys.readouterr().err


def test_export_proof_takes_no_filters(setup, capsys):
    _, cfg = setup
    assert main(["audit", "export", "--proof", "--ticket", "TES-42", *cfg]) == 2
    assert "no filters" in capsys.readouterr().err


def test_prune_refuses_without_a_cut_or_retention(setup, capsys):
    _, cfg = setup
    assert main(["audit", "prune", *cfg]) == 2
    assert "--before" in capsys.readouterr().err


def _audit_findings(config_file) -> list[tuple[str, str]]:
    from connector.config import load_config
    from connector.doctor import diagnose

    return [
        (f.level, f.message) for f in diagnose(load_config(config_file), online=False) if f.subject == "audit"
    ]


def test_doctor_checks_the_guard_the_keys_and_the_newest_checkpoint(setup):
    tmp_path, cfg = setup
    config_file = cfg[1]
    found = _audit_findings(config_file)
    assert ("ok", "audit_log refuses UPDATE and DELETE (append-only triggers in place)") in found
    assert any(level == "warn" and "no audit checkpoint yet for 3 records" in m for level, m in found)
    assert main(["audit", "checkpoint", *cfg]) == 0
    found = _audit_findings(config_file)
    assert any(level == "ok" and "newest audit checkpoint #1" in m and "verifies" in m for level, m in found)
    engine = make_engine(f"sqlite:///{tmp_path / 'a.db'}")
    with engine.begin() as conn:
        conn.execute(text("DROP TRIGGER audit_log_no_update"))
    engine.dispose()
    assert any(level == "FAIL" and "append-only triggers" in m for level, m in _audit_findings(config_file))


def test_doctor_warns_when_nothing_is_signed(tmp_path):
    config_file = tmp_path / "escalator.yaml"
    config_file.write_text(f"database: sqlite:///{tmp_path / 'a.db'}\n")
    found = _audit_findings(config_file)
    assert any(level == "warn" and "no signing key" in m for level, m in found)


def test_doctor_fails_a_checkpoint_directory_that_cannot_be_written(setup):
    # Signed checkpoints are what lets compliance tell a removed tail from an intact chain; with a
    # destination that cannot be written the worker logs an error a minute and none leaves the database.
    tmp_path, cfg = setup
    config_file = Path(cfg[1])
    assert not (tmp_path / "cps").exists()  # made by the first checkpoint: that is fine
    assert not [m for level, m in _audit_findings(config_file) if "checkpoints.to" in m]
    (tmp_path / "a-file").write_text("")
    text_ = config_file.read_text().replace(str(tmp_path / "cps"), str(tmp_path / "a-file" / "cps"))
    config_file.write_text(text_)
    (problem,) = [(level, m) for level, m in _audit_findings(config_file) if "checkpoints.to" in m]
    assert problem == (
        "FAIL",
        f"audit.checkpoints.to {tmp_path / 'a-file' / 'cps'}: {tmp_path / 'a-file'} is not a directory: "
        "no checkpoint would leave the database",
    )
