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

from tests.support.fake_http import SlowJira
from tests.support.fixtures import load_fixture
from tests.support.harness import SECRET
from tests.support.processes import post_jira, start_escalator, wait_for_line


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


@contextmanager
def an_edit_held_by_a_worker(
    tmp_path: Path, database: str, jira: SlowJira, lease: float, *, issue_id: str, key: str
) -> Iterator[Replicas]:
    """The receiver and two workers, a new outage on `key` sent to the receiver, and the block entered
    once a worker sent its edit, which `jira` holds (SlowJira). Jira answers before the workers are
    stopped, and is closed after."""
    try:
        with receiver_and_two_workers(tmp_path, database, jira.url, lease) as replicas:
            payload = load_fixture("jira", "issue_created__outage")
            payload["issue"]["id"], payload["issue"]["key"] = issue_id, key
            assert post_jira(replicas.port, payload, f"{key.lower()}-delivery") == 202
            try:
                assert jira.taken.wait(30), "no worker sent the edit"
                yield replicas
            finally:
                jira.release.set()
    finally:
        jira.close()
