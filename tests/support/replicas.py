"""A webhook receiver (`serve --no-worker`) and two `escalator work` replicas beside it, as real
processes sharing one database: what several hosts run, on one machine."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from subprocess import Popen

from tests.support.harness import SECRET
from tests.support.processes import start_escalator, wait_for_line


@dataclass
class Replicas:
    port: int  # the receiver's
    workers: dict[int, Popen] = field(default_factory=dict)  # by pid


@contextmanager
def receiver_and_two_workers(
    tmp_path: Path, database: str, jira_url: str, lease: float
) -> Iterator[Replicas]:
    """Started with leases of `lease` seconds and a Jira at `jira_url`; all stopped (SIGTERM to each
    process group still running) when the block ends."""
    config = tmp_path / "escalator.yaml"
    config.write_text(
        f"database: {database}\n"
        "dry_run: false\n"
        f"worker: {{poll_seconds: 0.1, nice: 0, lease_seconds: {lease}}}\n"
        f"notifications: {{lease_seconds: {lease}}}\n"
        "platforms:\n"
        f"  jira: {{url: '{jira_url}', email: bot@acme.test, api_token: t,\n"
        f"         webhook_secret: {SECRET}, account_id: escalator-bot}}\n"
    )
    procs = []
    try:
        serve = start_escalator(tmp_path, "serve", "--config", str(config), "--port", "0", "--no-worker",
                                own_group=True)  # fmt: skip
        procs.append(serve)
        replicas = Replicas(int(wait_for_line(serve, "Escalator listening on").rsplit(":", 1)[1]))
        for _ in range(2):
            work = start_escalator(tmp_path, "work", "--config", str(config), own_group=True)
            procs.append(work)
            wait_for_line(work, "worker started", timeout=60)
            replicas.workers[work.pid] = work
        yield replicas
    finally:
        for proc in procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
            proc.communicate(timeout=30)
