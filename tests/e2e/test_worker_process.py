"""serve's worker process is kept running: killed, crashed, or unable to reach the database when it
started, it is started again, and what was accepted meanwhile is decided (a serve that only
acknowledges webhooks looks healthy to every probe while nothing happens)."""

from __future__ import annotations

import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time

import pytest
from sqlalchemy.engine import make_url

import connector.worker_process as worker_process
from connector.runtime import owner_name
from connector.store import liveness
from connector.worker_process import WorkerProcess
from tests.support.fake_http import SlowJira
from tests.support.fixtures import load_fixture
from tests.support.harness import SECRET
from tests.support.marks import ONE_AT_A_TIME
from tests.support.processes import post_jira, start_escalator, wait_for_line, wait_until

pytestmark = ONE_AT_A_TIME


def test_a_worker_that_ends_is_started_again_and_spaced_out_while_it_keeps_failing(monkeypatch):
    monkeypatch.setattr(worker_process, "FIRST_PAUSE", 0.1)
    started = time.monotonic()
    worker = WorkerProcess([sys.executable, "-c", "raise SystemExit(3)"])  # fails at every start
    try:
        wait_until(lambda: worker.restarts >= 3, 10, "never started again three times")
    finally:
        worker.stop(5)
    assert time.monotonic() - started >= 0.1 + 0.2 + 0.4  # backing off between starts, not spinning
    restarts = worker.restarts
    time.sleep(0.5)
    assert worker.restarts == restarts  # stopped: not started again


def test_a_worker_stopped_by_serve_is_not_started_again():
    worker = WorkerProcess([sys.executable, "-c", "import time; time.sleep(60)"])
    pid = worker.pid
    worker.stop(5)
    time.sleep(1.5)
    assert worker.restarts == 0 and worker.pid == pid


def test_a_worker_that_ends_is_named_to_on_end_by_the_owner_name_its_leases_carry(tmp_path, monkeypatch):
    """The child gets its tag on the command line and names itself `host:pid:tag`, as serve does."""
    monkeypatch.setattr(worker_process, "FIRST_PAUSE", 0.1)
    seen = tmp_path / "seen"
    record = f"open({str(seen)!r}, 'a').write(f'{{os.getpid()}} {{sys.argv[-1]}}\\n')"
    code = f"import os, sys; {record}; sys.exit(3)"
    ended: list[str] = []
    worker = WorkerProcess([sys.executable, "-c", code], on_end=ended.append)
    try:
        wait_until(lambda: len(ended) >= 2, 10, "on_end was not called for two ends")
    finally:
        worker.stop(5)
    started = [line.split() for line in seen.read_text().splitlines()]
    assert ended[:2] == [owner_name(int(pid), tag) for pid, tag in started[:2]]
    assert started[0][1] != started[1][1]  # each start its own tag
    assert all(liveness.holds_lock(owner) for owner in ended)  # the child holds a liveness lock


def test_with_worker_liveness_off_the_child_is_named_as_one_that_holds_no_lock(tmp_path):
    """worker.liveness: false (behind PgBouncer in transaction mode): no other worker looks for its lock."""
    ended: list[str] = []
    worker = WorkerProcess(
        [sys.executable, "-c", "raise SystemExit(3)"], on_end=ended.append, liveness_lock=False
    )
    try:
        wait_until(lambda: ended, 10, "on_end was not called")
    finally:
        worker.stop(5)
    assert not liveness.holds_lock(ended[0])


def test_stop_hands_back_only_a_worker_it_had_to_kill():
    ended: list[str] = []
    graceful = WorkerProcess([sys.executable, "-c", "import time; time.sleep(60)"], on_end=ended.append)
    time.sleep(0.3)
    graceful.stop(5)  # SIGTERM ends it: a real worker gives back what it holds itself
    assert ended == []
    stubborn = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(60)"
    killed = WorkerProcess([sys.executable, "-c", stubborn], on_end=ended.append)
    time.sleep(0.5)
    killed.stop(0.5)
    assert len(ended) == 1 and ended[0].endswith(f":{killed.pid}:{ended[0].rsplit(':', 1)[1]}")


def test_a_failing_hand_back_is_logged_and_the_worker_still_starts_again(monkeypatch, caplog):
    monkeypatch.setattr(worker_process, "FIRST_PAUSE", 0.1)

    def database_down(owner: str) -> None:
        raise ConnectionError("the database does not answer")

    worker = WorkerProcess([sys.executable, "-c", "raise SystemExit(3)"], on_end=database_down)
    try:
        wait_until(lambda: worker.restarts >= 1, 10, "never started again")
    finally:
        worker.stop(5)
    assert "could not hand back what the worker" in caplog.text
    assert "the database does not answer" in caplog.text and "worker.lease_seconds" in caplog.text


def test_a_killed_workers_delivery_is_decided_at_once_not_after_its_lease(tmp_path):
    jira = SlowJira()
    config = tmp_path / "escalator.yaml"
    config.write_text(  # worker.lease_seconds left at its default: 60 s, twice the wait below
        f"database: sqlite:///{tmp_path / 'escalator.db'}\n"
        "dry_run: false\n"
        "worker: {poll_seconds: 0.1, nice: 0}\n"
        "platforms:\n"
        f"  jira: {{url: '{jira.url}', email: bot@acme.test, api_token: t,\n"
        f"         webhook_secret: {SECRET}, account_id: escalator-bot}}\n"
    )
    proc, port, worker = _serve(tmp_path, config)
    try:
        assert _deliver(port, 1) == 202
        assert jira.taken.wait(30), "the worker never sent its edit"
        os.kill(worker, signal.SIGKILL)  # mid-request, holding the delivery and its ticket
        line = wait_for_line(proc, "handed back what the worker", timeout=30)
        assert f":{worker}:" in line and "1 delivery, 1 ticket" in line
        wait_until(lambda: _done(tmp_path) == 1, 30, "the killed worker's delivery was not decided again")
        with sqlite3.connect(tmp_path / "escalator.db") as db:
            attempts, expiries = db.execute("SELECT attempts, lease_expiries FROM inbox").fetchone()
        assert (attempts, expiries) == (2, 1)  # counted as its lease's expiry, as if it had run out
        assert jira.puts == 2
    finally:
        jira.release.set()
        os.killpg(proc.pid, signal.SIGTERM)
        proc.communicate(timeout=30)
        jira.close()


def _serve(tmp_path, config) -> tuple[subprocess.Popen, int, int]:
    """A real `escalator serve`: its process, the port it listens on, its worker process's pid."""
    proc = start_escalator(tmp_path, "serve", "--config", str(config), "--port", "0", own_group=True)
    try:
        port = int(wait_for_line(proc, "Escalator listening on").rsplit(":", 1)[1])
        return proc, port, int(wait_for_line(proc, "workers:").rsplit(" ", 1)[1])
    except BaseException:  # it never came up as expected: not left running
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate(timeout=30)
        raise


def _deliver(port: int, n: int) -> int:
    payload = load_fixture("jira", "issue_created__outage")
    payload["issue"]["id"], payload["issue"]["key"] = str(70000 + n), f"KEEP-{n}"
    return post_jira(port, payload, f"keep-{n}")


def _done(tmp_path) -> int:
    with sqlite3.connect(tmp_path / "escalator.db") as db:
        return db.execute("SELECT count(*) FROM inbox WHERE status = 'done'").fetchone()[0]


def test_serve_starts_its_worker_again_after_kill_9_and_the_deliveries_are_decided(tmp_path):
    config = tmp_path / "escalator.yaml"
    config.write_text(
        f"database: sqlite:///{tmp_path / 'escalator.db'}\n"
        "worker: {poll_seconds: 0.1, nice: 0}\n"
        f"platforms:\n  jira: {{url: 'http://127.0.0.1:9', webhook_secret: {SECRET}}}\n"
    )
    proc, port, worker = _serve(tmp_path, config)
    try:
        assert _deliver(port, 1) == 202
        wait_until(lambda: _done(tmp_path) == 1, 30, "the first delivery was not decided")
        os.kill(worker, signal.SIGKILL)
        assert _deliver(port, 2) == 202  # accepted while no worker runs
        line = wait_for_line(proc, "started in place of", timeout=30)
        assert f"in place of {worker}" in line
        wait_until(lambda: _done(tmp_path) == 2, 30, "the delivery accepted meanwhile was not decided")
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.communicate(timeout=30)


class _LatePostgres:
    """A TCP port that forwards to the real PostgreSQL once `open()` is called: a database server
    that is not up yet (booting, restarting) until then."""

    def __init__(self, target: tuple[str, int]):
        self.target = target
        probe = socket.socket()
        probe.bind(("127.0.0.1", 0))
        self.port = probe.getsockname()[1]
        probe.close()  # nothing listens here until open()
        self._server: socket.socket | None = None

    def open(self) -> None:
        self._server = socket.create_server(("127.0.0.1", self.port))
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.target)
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            sink.close()

    def close(self) -> None:
        if self._server is not None:
            self._server.close()


@pytest.mark.postgres
def test_a_worker_whose_database_is_not_up_yet_waits_for_it_then_starts(tmp_path, postgres_url):
    """At boot the database may come up after Escalator: the worker says it waits, and starts once
    the database answers, instead of exiting (a service manager would leave it stopped)."""
    url = make_url(postgres_url)
    late = _LatePostgres((url.host or "127.0.0.1", url.port or 5432))
    config = tmp_path / "escalator.yaml"
    moved = url.set(host="127.0.0.1", port=late.port).render_as_string(hide_password=False)
    config.write_text(f"database: '{moved}'\n")
    proc = start_escalator(tmp_path, "work", "--config", str(config), own_group=True)
    try:
        assert "does not answer" in wait_for_line(proc, "waiting for it", timeout=60)
        assert proc.poll() is None
        late.open()
        wait_for_line(proc, "worker started", timeout=60)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.communicate(timeout=30)
        late.close()


def test_a_database_that_refuses_still_ends_a_long_running_command_at_once(tmp_path):
    config = tmp_path / "escalator.yaml"
    config.write_text("database: 'sqlite:///no/such/folder/escalator.db'\n")
    proc = start_escalator(tmp_path, "work", "--config", str(config))
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 2 and "the folder of the SQLite file" in out and "waiting" not in out
