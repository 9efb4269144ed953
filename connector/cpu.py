"""Turns at the CPU for the worker's deliveries.

A worker handles many deliveries at once (`worker.concurrency`) because most of a delivery's life
is waiting for its platform. The rest — reading the payload, judging, planning, hashing the audit
record, the writes — is CPU under one interpreter lock, and running dozens of those side by side
only makes each slower (and, on SQLite, holds the writer lock the webhooks need while the thread
that has it waits for the interpreter). So a delivery runs with a turn (`worker.threads` of them)
and gives it away while it waits: `with waiting():` around a platform request, a rate limiter's
pause, anything that blocks without computing.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

_local = threading.local()  # .turns: the CpuTurns this thread holds a turn of, if any


class CpuTurns:
    def __init__(self, size: int, on_away: Callable[[], None] | None = None):
        self.size = size
        self._slots = threading.Semaphore(size)
        # Deliveries inside `waiting()`: they want no turn until their wait ends. The worker claims
        # by it (those wanting the CPU are the claimed ones less these); `on_away` is called each time
        # one steps away, as a turn frees without a delivery ending.
        self.away = 0
        self._away_lock = threading.Lock()
        self._on_away = on_away

    @contextmanager
    def turn(self) -> Iterator[None]:
        """Run the block holding one turn (given away inside `waiting()`)."""
        self._slots.acquire()
        _local.turns = self
        try:
            yield
        finally:
            if getattr(_local, "turns", None) is self:
                _local.turns = None
                self._slots.release()

    def _step(self, away: int) -> None:
        with self._away_lock:
            self.away += away
        if away > 0 and self._on_away is not None:
            self._on_away()


@contextmanager
def waiting() -> Iterator[None]:
    """The block waits on something outside this process: its thread's turn is free meanwhile and
    taken back after. A no-op on a thread that holds no turn (the web process, the scheduler)."""
    turns: CpuTurns | None = getattr(_local, "turns", None)
    if turns is None:
        yield
        return
    _local.turns = None
    turns._step(+1)
    turns._slots.release()
    try:
        yield
    finally:
        turns._step(-1)
        turns._slots.acquire()
        _local.turns = turns
