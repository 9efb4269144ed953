"""`connector.wsgi:application` under gunicorn, started as a real process, as deploy/ runs it."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from tests.support.fixtures import fixture_bytes
from tests.support.harness import sign
from tests.support.marks import ONE_AT_A_TIME

pytestmark = ONE_AT_A_TIME

GUNICORN = Path(sys.executable).parent / "gunicorn"
SECRET = "a-long-enough-webhook-secret"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _gunicorn(tmp_path, config: Path, port: int) -> subprocess.Popen:
    # A recent gunicorn binds a control socket in $XDG_RUNTIME_DIR or ~/.gunicorn: each test its own.
    home = {"HOME": str(tmp_path), "XDG_RUNTIME_DIR": str(tmp_path)}
    env = {**os.environ, "ESCALATOR_CONFIG": str(config), **home}
    return subprocess.Popen(
        [str(GUNICORN), "--workers", "2", "--bind", f"127.0.0.1:{port}", "connector.wsgi:application"],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip


def test_gunicorn_serves_webhooks_and_readiness_from_escalator_config(tmp_path):
    config = tmp_path / "etc" / "escalator.yaml"
    config.parent.mkdir()
    config.write_text(
        f"database: sqlite:///escalator.db\nplatforms:\n  jira:\n    url: http://127.0.0.1:9\n"
        f"    webhook_secret: {SECRET}\n"
    )
    port = _free_port()
    proc = _gunicorn(tmp_path, config, port)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as answer:
                    ready = json.load(answer)
                break
            except OSError:
                assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()[0]
                time.sleep(0.2)
        assert ready["status"] == "ready" and ready["platforms"] == ["jira"]
        body = fixture_bytes("jira", "issue_created__outage")
        results = []
        for delivery in ("g-1", "g-2", "g-1"):
            request = urllib.request.Request(
                f"http://127.0.0.1:{port}/webhooks/jira", data=body, method="POST",
                headers={"X-Hub-Signature": sign(body, SECRET), "X-Atlassian-Webhook-Identifier": delivery},
            )  # fmt: skip
            with urllib.request.urlopen(request, timeout=10) as answer:
                results.append((answer.status, json.load(answer)["result"]))
        # g-2 carries the same issue change as g-1 (issue id @ updated): a duplicate too, as its
        # reconciled copy would be.
        assert results == [(202, "accepted"), (200, "duplicate"), (200, "duplicate")]
        assert (tmp_path / "etc" / "escalator.db").exists()  # beside the config, not in gunicorn's cwd
    finally:
        proc.terminate()
        output, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, output


def test_gunicorn_stops_with_one_line_when_the_config_is_wrong(tmp_path):
    config = tmp_path / "escalator.yaml"
    config.write_text("databse: sqlite:///x.db\n")
    proc = _gunicorn(tmp_path, config, _free_port())
    output, _ = proc.communicate(timeout=60)
    assert proc.returncode != 0
    assert f"escalator: config error (ESCALATOR_CONFIG):\n{config}:1: databse: unknown key" in output
    # No traceback of ours. Under load gunicorn's arbiter may print its own HaltServer ("Worker failed
    # to boot") from inside a signal handler when the second worker fails while it halts for the first;
    # that traceback starts in gunicorn's own console script.
    frames = re.findall(r'File "([^"]+)"', output)
    assert all("/gunicorn/" in frame or frame == str(GUNICORN) for frame in frames), frames
