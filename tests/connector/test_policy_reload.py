from __future__ import annotations

import hashlib
import os
import signal

import pytest
from sqlalchemy import select

from connector.config import EXAMPLE_POLICY
from connector.runtime import PolicyHolder
from connector.store.db import make_engine
from connector.store.tables import console_policies
from console import integrity
from policies import PolicyError
from tests.support.marks import ONE_AT_A_TIME
from tests.support.processes import start_escalator, wait_for_line


def test_a_broken_policy_never_replaces_the_running_one(tmp_path):
    path = tmp_path / "policy.yaml"
    path.write_text(EXAMPLE_POLICY.read_text())
    holder = PolicyHolder(str(path))
    good = holder.current

    path.write_text(EXAMPLE_POLICY.read_text().replace("version: 1", "version: 2") + "\nsurprise: 1\n")
    with pytest.raises(PolicyError, match=rf"{path}:\d+: .*surprise"):
        holder.reload()
    assert holder.current is good

    path.write_text(EXAMPLE_POLICY.read_text().replace("version: 1", "version: 2"))
    assert holder.reload().version == 2
    assert holder.current.version == 2 and holder.current.sha256 != good.sha256


@ONE_AT_A_TIME
def test_sighup_reloads_the_worker_and_refuses_a_broken_file(tmp_path):
    policy = tmp_path / "policy.yaml"
    policy.write_text(EXAMPLE_POLICY.read_text())
    config = tmp_path / "escalator.yaml"
    config.write_text(f"database: sqlite:///{tmp_path / 'x.db'}\npolicy: {policy}\n")
    proc = start_escalator(tmp_path, "work", "--config", str(config))
    try:
        wait_for_line(proc, "worker started")
        policy.write_text(EXAMPLE_POLICY.read_text() + "\nsurprise: 1\n")
        os.kill(proc.pid, signal.SIGHUP)
        refused = wait_for_line(proc, "policy reload refused")
        assert "[worker]" in refused and f"{policy}:" in refused and "surprise" in refused  # one line
        policy.write_text(EXAMPLE_POLICY.read_text().replace("version: 1", "version: 7"))
        os.kill(proc.pid, signal.SIGHUP)
        assert "v7" in wait_for_line(proc, "policy reloaded")
        # a different policy: the armed SLA timers are re-armed in the background
        assert "0 of 0 tickets" in wait_for_line(proc, "SLA timers re-armed under policy global-support v7")
    finally:
        proc.terminate()
        proc.communicate(timeout=30)
    assert proc.returncode == 0

    # Both versions that ran are kept by hash, as they were loaded (not the broken file in between),
    # so the console diffs them without having been open while they served.
    engine = make_engine(f"sqlite:///{tmp_path / 'x.db'}")
    first = hashlib.sha256(EXAMPLE_POLICY.read_bytes()).hexdigest()
    seventh = hashlib.sha256(policy.read_bytes()).hexdigest()
    with engine.connect() as conn:
        kept = dict(conn.execute(select(console_policies.c.sha256, console_policies.c.version)).all())
    assert kept == {first: "1", seventh: "7"}
    assert [line for line in integrity.diff(engine, first, seventh) if line.startswith(("-v", "+v"))] == [
        "-version: 1",
        "+version: 7",
    ]
    engine.dispose()


def test_a_reload_while_the_database_is_away_still_serves_the_new_policy(
    tmp_path, sqlite_url, monkeypatch, caplog
):
    """SIGHUP runs the reload in a signal handler: an error there would end serve or the worker. The
    database away at that moment only costs the console's copy of the text, said in the log."""
    from sqlalchemy.exc import OperationalError

    from connector import cli_serve
    from connector.config import Config
    from connector.runtime import build_runtime
    from connector.store import policy_texts

    policy = tmp_path / "policy.yaml"
    policy.write_text(EXAMPLE_POLICY.read_text())
    rt = build_runtime(Config.model_validate({"database": sqlite_url, "policy": str(policy)}))
    policy.write_text(EXAMPLE_POLICY.read_text().replace("version: 1", "version: 8"))

    def away(*args, **kwargs):
        raise OperationalError("SELECT sha256 FROM console_policies", {}, Exception("Connection refused"))

    monkeypatch.setattr(policy_texts, "keep", away)
    try:
        assert cli_serve._reload_policy(rt) is True
        assert rt.policy.current.version == 8
        assert "its text could not be kept for the console's diff" in caplog.text
    finally:
        rt.close()
