"""The worker process `escalator serve` starts beside its webhook receiver, and keeps running.

A worker process that ends on its own (it crashed, the kernel killed it for memory, the database
could not be reached when it started) is started again: otherwise serve would go on acknowledging
webhooks, healthy by every probe, while nothing decided them. Starts that keep failing are spaced
out (1 s, doubling to 30 s); one that ran a while is followed at once by the next.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
import time

log = logging.getLogger("escalator")

FIRST_PAUSE, LONGEST_PAUSE = 1.0, 30.0
RAN_A_WHILE = 60.0  # seconds: a process that lived this long did not fail at its start


def worker_command(config_path: str | None) -> list[str]:
    command = [sys.executable, "-m", "connector", "work", "--parent-pid", str(os.getpid())]
    return command + (["--config", config_path] if config_path else [])


class WorkerProcess:
    """One `escalator work` child, started again when it ends unless `stop` ended it."""

    def __init__(self, command: list[str]):
        self._command = command
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self.restarts = 0
        self._process = subprocess.Popen(command)
        self._watcher = threading.Thread(target=self._watch, name="escalator-worker-watch", daemon=True)
        self._watcher.start()

    @property
    def pid(self) -> int:
        with self._lock:
            return self._process.pid

    def send_signal(self, signum: int) -> None:
        with self._lock:
            if self._process.poll() is None:
                self._process.send_signal(signum)

    def stop(self, timeout: float) -> None:
        """Terminate the worker and wait up to `timeout` seconds for it (then kill it): never left behind."""
        self._stopping.set()
        with self._lock:
            process = self._process
        process.terminate()
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)

    def _watch(self) -> None:
        pause = FIRST_PAUSE
        while True:
            with self._lock:
                process = self._process
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
            if self._stopping.wait(pause):
                return
            with self._lock:
                if self._stopping.is_set():
                    return
                self._process = subprocess.Popen(self._command)
                self.restarts += 1
            log.warning("worker process %s started in place of %s", self._process.pid, process.pid)
            pause = min(pause * 2, LONGEST_PAUSE)
