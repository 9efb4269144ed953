"""The worker process `escalator serve` starts beside its webhook receiver, and keeps running.

A worker process that ends on its own (it crashed, the kernel killed it for memory, the database
could not be reached when it started) is started again: otherwise serve would go on acknowledging
webhooks, healthy by every probe, while nothing decided them. Starts that keep failing are spaced
out (1 s, doubling to 30 s); one that ran a while is followed at once by the next.

What a worker that ended held (deliveries being decided, their tickets, notifications being sent) is
handed back at once through `on_end`, rather than after its leases' `worker.lease_seconds`: the
process is known dead, its owner name known, since serve gave the worker its tag.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable

from connector.runtime import owner_name
from connector.store import liveness

log = logging.getLogger("escalator")

FIRST_PAUSE, LONGEST_PAUSE = 1.0, 30.0
RAN_A_WHILE = 60.0  # seconds: a process that lived this long did not fail at its start


def worker_command(config_path: str | None) -> list[str]:
    command = [sys.executable, "-m", "connector", "work", "--parent-pid", str(os.getpid())]
    return command + (["--config", config_path] if config_path else [])


class WorkerProcess:
    """One `escalator work` child, started again when it ends unless `stop` ended it.

    With `on_end`, each child is started with `--owner-tag` and `on_end(owner)` is called with the
    lease owner name of a child that ended without finishing its work (crashed, killed, or killed by
    `stop` after its time to finish): what that owner held can be handed back at once. The tag says
    whether the child holds a liveness lock (`liveness_lock`, the config's worker.liveness)."""

    def __init__(
        self, command: list[str], *, on_end: Callable[[str], None] | None = None, liveness_lock: bool = True
    ):
        self._command = command
        self._on_end = on_end
        self._liveness_lock = liveness_lock  # worker.liveness: the tag says whether it holds one
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self.restarts = 0
        self._process, self._owner = self._start()
        self._watcher = threading.Thread(target=self._watch, name="escalator-worker-watch", daemon=True)
        self._watcher.start()

    @property
    def pid(self) -> int:
        with self._lock:
            return self._process.pid

    def _start(self) -> tuple[subprocess.Popen, str | None]:
        if self._on_end is None:
            return subprocess.Popen(self._command), None
        tag = liveness.new_tag(lock=self._liveness_lock)
        process = subprocess.Popen([*self._command, "--owner-tag", tag])
        return process, owner_name(process.pid, tag)

    def _ended(self, owner: str | None) -> None:
        if owner is None or self._on_end is None:
            return
        try:
            self._on_end(owner)
        except Exception as exc:  # the database is down, say: the leases still run out by themselves
            log.warning("could not hand back what the worker %s held (%s): it waits for its leases to "
                        "run out (worker.lease_seconds)", owner, exc)  # fmt: skip

    def send_signal(self, signum: int) -> None:
        with self._lock:
            if self._process.poll() is None:
                self._process.send_signal(signum)

    def stop(self, timeout: float) -> None:
        """Terminate the worker and wait up to `timeout` seconds for it (then kill it): never left behind."""
        self._stopping.set()
        with self._lock:
            process, owner = self._process, self._owner
        process.terminate()
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)
            self._ended(owner)  # killed mid-work: another replica may take it over now

    def _watch(self) -> None:
        pause = FIRST_PAUSE
        while True:
            with self._lock:
                process, owner = self._process, self._owner
            started = time.monotonic()
            code = process.wait()
            if self._stopping.is_set():
                return
            if time.monotonic() - started >= RAN_A_WHILE:
                pause = FIRST_PAUSE
            log.error(
                "the worker process %s ended (exit code %s): nothing is decided until it runs again; "
                "starting another in %.0f s",
                process.pid, code, pause,
            )  # fmt: skip
            self._ended(owner)
            if self._stopping.wait(pause):
                return
            with self._lock:
                if self._stopping.is_set():
                    return
                self._process, self._owner = self._start()
                self.restarts += 1
            log.warning("worker process %s started in place of %s", self._process.pid, process.pid)
            pause = min(pause * 2, LONGEST_PAUSE)
