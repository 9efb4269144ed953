from __future__ import annotations

import http.client
import json
import os
import socket
import subprocess
import sys
import textwrap
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from connector.cli import main
from connector.config import EXAMPLE_POLICY
from tests.support.fixtures import fixture_bytes
from tests.support.harness import SECRET, sign
from tests.support.processes import start_escalator, wait_for_line

ROOT = Path(__file__).resolve().parents[2]


def test_policy_check_accepts_the_example(capsys):
    assert main(["policy", "check", str(EXAMPLE_POLICY)]) == 0
    out = capsys.readouterr().out.strip()
    assert out.startswith(f"{EXAMPLE_POLICY}: OK") and "\n" not in out


def test_policy_check_lists_every_problem_with_file_and_line(tmp_path, capsys):
    broken = tmp_path / "broken.yaml"
    broken.write_text(EXAMPLE_POLICY.read_text().replace("tiers: [", "teirs: [", 1) + "\nsurprise: 1\n")
    assert main(["policy", "check", str(broken)]) == 1
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) >= 2
    assert all(line.startswith(f"{broken}:") for line in lines)
    assert any("surprise" in line for line in lines)


def test_python_dash_m_connector_runs_the_cli():
    done = subprocess.run(
        [sys.executable, "-m", "connector", "policy", "check", str(EXAMPLE_POLICY)],
        capture_output=True, text=True, cwd=ROOT, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr


def test_config_error_exits_2_with_the_reason(tmp_path, capsys):
    config = tmp_path / "escalator.yaml"
    config.write_text("databse: sqlite:///x.db\n")
    assert main(["audit", "verify", "--config", str(config)]) == 2
    assert f"{config}:1: databse: unknown key 'databse'" in capsys.readouterr().err


def test_audit_verify_and_export_on_an_empty_log(tmp_path, capsys):
    config = tmp_path / "escalator.yaml"
    config.write_text(f"database: sqlite:///{tmp_path / 'a.db'}\n")
    assert main(["audit", "verify", "--config", str(config)]) == 0
    assert "intact: 0 records" in capsys.readouterr().out
    out = tmp_path / "audit.csv"
    assert main(["audit", "export", "--config", str(config), "--format", "csv", "-o", str(out)]) == 0
    assert out.read_text().startswith("seq,id,at,platform")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_ready(proc: subprocess.Popen, port: int) -> dict:
    deadline = time.monotonic() + 30
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as answer:
                return json.load(answer)
        except OSError:
            if time.monotonic() > deadline or proc.poll() is not None:
                pytest.fail(
                    f"serve did not come up:\n{proc.stdout.read() if proc.poll() is not None else ''}"
                )
            time.sleep(0.2)


def test_serve_comes_up_on_the_embedded_default(tmp_path):
    """What `make run` does on a fresh clone: no config, SQLite in the working directory, dry-run."""
    port = _free_port()
    proc = start_escalator(tmp_path, "serve", "--port", str(port))
    try:
        ready = _wait_ready(proc, port)
        assert ready["status"] == "ready" and ready["dry_run"] is True
        assert (tmp_path / "escalator.db").exists()
    finally:
        proc.terminate()
        output, _ = proc.communicate(timeout=15)
    assert "DRY-RUN" in output and f"http://127.0.0.1:{port}" in output


def test_the_webhook_receiver_under_the_real_server(tmp_path):
    """waitress, not a test client: its environ for plain and chunked bodies reaches the receiver."""
    port = _free_port()
    config = tmp_path / "escalator.yaml"
    config.write_text(
        f"database: sqlite:///{tmp_path / 'x.db'}\n"
        f"platforms:\n  jira:\n    url: http://127.0.0.1:9\n    webhook_secret: {SECRET}\n"
    )
    proc = start_escalator(tmp_path, "serve", "--config", str(config), "--port", str(port), "--no-worker")
    # A new comment is named by itself, whichever identifier header it came with.
    body = fixture_bytes("jira", "comment_created__basic")
    comment = json.loads(body)
    another = json.dumps({**comment, "comment": {**comment["comment"], "id": "10020"}}).encode()

    def post(delivery_id: str, *, chunked: bool = False, data: bytes = body) -> tuple[int, dict]:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        headers = {"X-Hub-Signature": sign(data), "X-Atlassian-Webhook-Identifier": delivery_id}
        payload = iter([data[:1000], data[1000:]]) if chunked else data
        conn.request("POST", "/webhooks/jira", body=payload, headers=headers, encode_chunked=chunked)
        try:
            answer = conn.getresponse()
            return answer.status, json.loads(answer.read())
        finally:
            conn.close()

    try:
        _wait_ready(proc, port)
        assert post("d-1") == (202, {"result": "accepted", "delivery_id": "10040/comment/10019"})
        assert post("d-1") == (200, {"result": "duplicate", "delivery_id": "10040/comment/10019"})
        assert len(another) > 1000  # the chunked post below sends it in two chunks
        answer = post("d-2", chunked=True, data=another)
        assert answer == (202, {"result": "accepted", "delivery_id": "10040/comment/10020"})
        too_big = b"{" + b" " * 1_048_576 + b"}"
        status, answer = post("d-3", chunked=True, data=too_big)
        assert status == 413 and answer["result"] == "too_large"
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/webhooks/jira", timeout=5)
        refused.value.close()
        assert refused.value.code == 405 and refused.value.headers["Allow"] == "POST"
    finally:
        proc.terminate()
        proc.communicate(timeout=15)


@pytest.mark.parametrize("nice", [7, 0])
def test_the_worker_process_runs_below_the_web_process_cpu_priority(tmp_path, nice):
    config = tmp_path / "escalator.yaml"
    config.write_text(f"database: sqlite:///{tmp_path / 'x.db'}\nworker: {{nice: {nice}}}\n")
    proc = start_escalator(tmp_path, "work", "--config", str(config))
    try:
        started = wait_for_line(proc, "worker started")
        ours = os.nice(0)
        assert os.getpriority(os.PRIO_PROCESS, proc.pid) == min(ours + nice, 19)
        assert f"nice {min(ours + nice, 19):+d}" in started
    finally:
        proc.terminate()
        proc.communicate(timeout=30)


def test_serve_refuses_a_broken_policy_with_file_and_line(tmp_path):
    policy = tmp_path / "p.yaml"
    policy.write_text(EXAMPLE_POLICY.read_text() + "\nsurprise: 1\n")
    config = tmp_path / "escalator.yaml"
    config.write_text(textwrap.dedent(f"database: sqlite:///{tmp_path / 'x.db'}\npolicy: {policy}\n"))
    done = subprocess.run(
        [sys.executable, "-m", "connector", "serve", "--config", str(config)],
        capture_output=True, text=True, cwd=tmp_path, timeout=60,
    )  # fmt: skip
    assert done.returncode == 2
    assert f"{policy}:" in done.stderr and "surprise" in done.stderr
