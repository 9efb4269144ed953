"""Run the same function in several threads released at once, and surface what went wrong in any."""

from __future__ import annotations

import threading
from collections.abc import Callable


def run_together(target: Callable[[int], None], threads: int, *, timeout: float = 120) -> None:
    """Call target(0) … target(threads - 1), each in its own thread, all started by one barrier.

    Fails when a thread is still running after `timeout` seconds; re-raises the first
    exception a thread raised (an exception in a thread is otherwise lost).
    """
    start = threading.Barrier(threads)
    errors: list[BaseException] = []

    def run(k: int) -> None:
        try:
            start.wait()
            target(k)
        except BaseException as exc:
            errors.append(exc)

    workers = [threading.Thread(target=run, args=(k,)) for k in range(threads)]
    for t in workers:
        t.start()
    for t in workers:
        t.join(timeout)
    assert not any(t.is_alive() for t in workers), f"a thread was still running after {timeout:.0f}s"
    if errors:
        raise errors[0]
