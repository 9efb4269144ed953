"""What an on-call engineer reads from a running Escalator: JSON logs naming the process, one line per
decision, a refused reload once per process with a metric and a readiness flag, and /metrics per process."""

from __future__ import annotations

import json
import os
import signal
import socket
import threading
import time
import urllib.request
from queue import Empty, Queue

from connector.config import EXAMPLE_POLICY
from connector.version import VERSION
from tests.support.fixtures import fixture_bytes
from tests.support.harness import sign
from tests.support.marks import ONE_AT_A_TIME
from tests.support.processes import start_escalator

pytestmark = ONE_AT_A_TIME

SECRET = "a-long-enough-webhook-secret"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Lines:
    """Every line a process writes, collected by a thread so a test can wait for one."""

    def __init__(self, proc):
        self.all: list[str] = []
        self._queue: Queue[str] = Queue()
        self._proc = proc
        self._reader = threading.Thread(target=self._read, args=(proc,), daemon=True)
        self._reader.start()

    def _read(self, proc) -> None:
        for line in proc.stdout:
            self._queue.put(line)

    def finish(self) -> str:
        """After the process ended: every line it wrote, each checked to be JSON."""
        self._reader.join(10)
        self._proc.stdout.close()
        while not self._queue.empty():
            self.all.append(self._queue.get_nowait())
        assert all(json.loads(line) for line in self.all)
        return "".join(self.all)

    def wait(self, predicate, timeout: float = 30) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self._queue.get(timeout=0.2)
            except Empty:
                continue
            self.all.append(line)
            entry = json.loads(line)  # every line is JSON
            if predicate(entry):
                return entry
        raise AssertionError("no such line; seen:\n" + "".join(self.all))


def _get(port: int, path: str) -> bytes:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as answer:
        return answer.read()


def test_json_logs_a_decision_line_and_a_refused_reload_once_per_process(tmp_path):
    policy = tmp_path / "policy.yaml"
    policy.write_text(EXAMPLE_POLICY.read_text())
    config = tmp_path / "escalator.yaml"
    worker_port = _free_port()
    config.write_text(
        "database: sqlite:///escalator.db\npolicy: policy.yaml\nlog_format: json\n"
        f"platforms:\n  jira:\n    url: http://127.0.0.1:9\n    webhook_secret: {SECRET}\n"
        f"worker: {{poll_seconds: 0.05, nice: 0, metrics_port: {worker_port}}}\n"
    )
    port = _free_port()
    proc = start_escalator(tmp_path, "serve", "--config", str(config), "--port", str(port))
    lines = Lines(proc)
    try:
        banner = lines.wait(lambda e: e["message"] == "Escalator listening")
        assert banner["process"] == "web" and banner["version"] == VERSION
        assert banner["url"] == f"http://127.0.0.1:{port}" and banner["mode"] == "dry_run"
        assert banner["database"].endswith(f"{tmp_path}/escalator.db")  # next to the config file
        lines.wait(lambda e: e["process"] == "worker" and e["message"].startswith("worker started"))

        body = fixture_bytes("jira", "issue_created__outage")
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/webhooks/jira", data=body, method="POST",
            headers={"X-Hub-Signature": sign(body, SECRET), "X-Atlassian-Webhook-Identifier": "d-1"},
        )  # fmt: skip
        urllib.request.urlopen(request, timeout=10).close()
        decision = lines.wait(lambda e: e["message"] == "decision")
        assert decision["process"] == "worker" and decision["level"] == "info"
        assert (decision["platform"], decision["ticket"], decision["outcome"]) == (
            "jira",
            "TES-42",
            "dry_run",
        )
        assert decision["rules"] and decision["requests"] == 0 and decision["planned"] >= 1
        assert isinstance(decision["ms"], float) and decision["event"] == "ticket.created"

        policy.write_text(EXAMPLE_POLICY.read_text() + "\nsurprise: 1\n")
        os.kill(proc.pid, signal.SIGHUP)
        refused = [lines.wait(lambda e: "policy reload refused" in e["message"]) for _ in range(2)]
        assert sorted(e["process"] for e in refused) == ["web", "worker"]
        assert all("surprise" in e["message"] and e["level"] == "error" for e in refused)

        ready = json.loads(_get(port, "/readyz"))
        assert ready["version"] == VERSION and ready["policy_in_force"]["version"] == 1
        assert "surprise" in ready["last_reload_error"]["error"]
        metrics = _get(port, "/metrics").decode()
        assert "escalator_policy_reload_failures_total 1.0" in metrics
        assert "escalator_webhooks_total" in metrics
        worker_only = ("escalator_decisions_total", "escalator_platform_requests_total",
                       "escalator_timers_fired_total", "escalator_event_processing_seconds",
                       "escalator_records_per_commit")  # fmt: skip
        assert not [family for family in worker_only if family in metrics]
        worker = _get(worker_port, "/metrics").decode()  # the worker's own port lists them, not webhooks
        assert 'escalator_decisions_total{outcome="dry_run",platform="jira"} 1.0' in worker
        assert "escalator_records_per_commit_count 1.0" in worker  # the decision's record, alone
        assert "escalator_policy_reload_failures_total 1.0" in worker
        assert "escalator_webhooks_total" not in worker

        policy.write_text(EXAMPLE_POLICY.read_text())
        os.kill(proc.pid, signal.SIGHUP)
        lines.wait(lambda e: e["process"] == "web" and e["message"].startswith("policy reloaded"))
        assert json.loads(_get(port, "/readyz"))["last_reload_error"] is None
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    output = lines.finish()  # the whole output is JSON lines
    assert SECRET not in output and "Checkout is down" not in output  # no secret, no body
