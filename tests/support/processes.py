"""Helpers for tests that run Escalator's commands as real processes."""

from __future__ import annotations

import http.client
import json
import queue
import subprocess
import sys
import threading
import time
from typing import Any

import pytest


def wait_for_line(proc, text: str, timeout: float = 30.0) -> str:
    """The first line of `proc`'s (text) stdout containing `text`; fails the test with what was seen
    once `timeout` seconds have passed, even while the process prints nothing (each line is read in a
    thread, so a silent process cannot hold the test past its timeout)."""
    deadline = time.monotonic() + timeout
    seen = []
    while (left := deadline - time.monotonic()) > 0:
        line = _next_line(proc, left)
        if not line:  # the process ended, or printed nothing more in time
            break
        seen.append(line)
        if text in line:
            return line
    pytest.fail(f"never saw {text!r} within {timeout:.0f} s; output:\n{''.join(seen)}")


def wait_until(condition, timeout: float, what: str) -> None:
    """Poll `condition` until it holds; fail the test saying `what` did not happen in time."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"{what} within {timeout:.0f} s")
        time.sleep(0.05)


def _next_line(proc, timeout: float) -> str | None:
    lines: queue.SimpleQueue[str] = queue.SimpleQueue()
    threading.Thread(target=lambda: lines.put(proc.stdout.readline()), daemon=True).start()
    try:
        return lines.get(timeout=timeout)
    except queue.Empty:
        return None


def start_escalator(cwd, *args: str, own_group: bool = False) -> subprocess.Popen:
    """`python -m connector ARGS…` in `cwd`, its stdout and stderr as one text stream.
    `own_group`: in a process group of its own, so a test can kill it with all its children."""
    return subprocess.Popen(
        [sys.executable, "-m", "connector", *args],
        cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=own_group,
    )  # fmt: skip


def post_jira(port: int, payload: dict[str, Any], delivery_id: str) -> int:
    """POST `payload` as a signed Jira webhook to an Escalator listening on `port`; the HTTP status."""
    from tests.support.harness import sign

    body = json.dumps(payload).encode()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    headers = {"X-Hub-Signature": sign(body), "X-Atlassian-Webhook-Identifier": delivery_id}
    try:
        conn.request("POST", "/webhooks/jira", body=body, headers=headers)
        return conn.getresponse().status
    finally:
        conn.close()
