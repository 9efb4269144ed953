"""Helpers for tests that run Escalator's commands as real processes."""

from __future__ import annotations

import http.client
import json
import subprocess
import sys
import time
from typing import Any

import pytest


def wait_for_line(proc, text: str, timeout: float = 30.0) -> str:
    """The first line of `proc`'s (text) stdout containing `text`; fails the test with what was seen."""
    deadline = time.monotonic() + timeout
    seen = []
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        seen.append(line)
        if text in line:
            return line
    pytest.fail(f"never saw {text!r}; output:\n{''.join(seen)}")


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
