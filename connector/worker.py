"""Background workers: claim due inbox rows and run each through the pipeline."""

from __future__ import annotations

import logging
import os
import threading
from datetime import timedelta

from connector.pipeline import process
from connector.runtime import Runtime
from connector.store import inbox

log = logging.getLogger("escalator.worker")


def run_once(rt: Runtime, *, limit: int | None = None) -> int:
    """Claim one batch of due events and process it; returns how many were handled."""
    w = rt.config.worker
    items = inbox.claim(
        rt.engine,
        owner=rt.owner,
        now=rt.clock(),
        lease=timedelta(seconds=w.lease_seconds),
        limit=limit or w.batch,
    )
    # Each item alone: one that cannot be processed (or recorded) never holds up its batch-mates.
    taken_until = rt.clock() + timedelta(seconds=w.lease_seconds)
    for item in items:
        if rt.clock() >= taken_until:
            # Our lease on the rest ran out while earlier ones were slow: another worker may hold
            # them now. They are claimed again (with the expiry counted), never handled twice at once.
            log.warning("lease ran out before %d claimed events were processed", len(items))
            break
        try:
            process(rt, item)
        except Exception:  # the database failed under it: its lease runs out and it is taken again
            log.exception("processing %s delivery %s failed", item.platform, item.delivery_id)
    return len(items)


def drain(rt: Runtime, *, max_rounds: int = 1000) -> int:
    """Process until nothing is due now (tests and benchmarks)."""
    total = 0
    for _ in range(max_rounds):
        handled = run_once(rt)
        total += handled
        if not handled:
            break
    return total


class WorkerPool:
    """N threads that each claim and process, polling every worker.poll_seconds when idle.

    Webhooks arrive in another process (serve), so polling is the signal; it is one indexed
    read, and the poll interval bounds how long a new event waits.
    """

    def __init__(self, rt: Runtime, *, threads: int | None = None, parent_pid: int | None = None):
        self.rt = rt
        self.threads = threads if threads is not None else rt.config.worker.threads
        self.parent_pid = parent_pid  # stop when the process that started us is gone
        self._stop = threading.Event()
        self._wake = threading.Event()  # new work was queued here (the SLA tick fired timers)
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        for n in range(self.threads):
            thread = threading.Thread(target=self._loop, name=f"escalator-worker-{n}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def request_stop(self) -> None:
        self._stop.set()
        self._wake.set()  # also ends an idle thread's wait at once

    def wake(self) -> None:
        """Look for work now instead of at the next poll."""
        self._wake.set()

    def wait(self) -> None:
        """Block until stopped (by request_stop, or because the parent process died)."""
        while not self._stop.wait(1.0):
            if self.parent_pid is not None and os.getppid() != self.parent_pid:
                log.warning("parent process %s is gone; stopping", self.parent_pid)
                self.request_stop()
        for thread in self._threads:
            thread.join(30)

    def _loop(self) -> None:
        poll = self.rt.config.worker.poll_seconds
        while not self._stop.is_set():
            try:
                handled = run_once(self.rt)
            except Exception:  # the database may be briefly unavailable; never let the thread die
                log.exception("worker round failed; retrying in %.1fs", poll)
                handled = 0
            if not handled:
                self._wake.wait(poll)
                self._wake.clear()
