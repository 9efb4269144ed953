"""The leader/follower queue behind the store's group commits (the webhook intake, the worker's
records): threads queue their item; the first to find nobody writing leads — it writes one batch
(its own item first), finishes it and hands the lead to the first thread still waiting (`lead`) —
and the others wait for a leader to finish theirs, or to hand them the lead. A follower that stops
waiting leaves the queue, unless a leader took its item or handed it the lead.

A follower waits on a lock taken at birth and released by its leader: one C-level wait, where
threading.Event's Condition costs several Python-level locks.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Generic, TypeVar


class Queued:
    """One thread's item in the queue. Only a follower gets a latch: a leader writes its own item."""

    __slots__ = ("done", "error", "leads")

    def __init__(self) -> None:
        self.done: threading.Lock | None = None
        self.error: BaseException | None = None
        self.leads = False  # woken to lead (hand_on), not finished

    def wait(self, timeout: float = -1) -> bool:
        """For a follower's leader to finish it; False when `timeout` seconds passed first."""
        return self.done is None or self.done.acquire(timeout=timeout)

    def finish(self) -> None:
        if self.done is not None:
            self.done.release()


Q = TypeVar("Q", bound=Queued)


class LeaderQueue(Generic[Q]):
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._queue: list[Q] = []
        self._leading = False

    def join(self, item: Q) -> bool:
        """Queue `item`; True when the caller leads now (`lead`). False: a follower, which `wait`s until
        its leader finishes it or hands it the lead (`leads`), and then leads."""
        with self._lock:
            self._queue.append(item)
            if not self._leading:
                self._leading = True
                return True
            # Made under the lock, so the leader that takes this item sees the latch.
            item.done = threading.Lock()
            item.done.acquire()
            return False

    def lead(self, most: int, write: Callable[[list[Q]], None]) -> None:
        """The leader's turn: its batch (at most `most`, its own item first) to `write`, which sets each
        item's outcome (`error`, or its own fields); then every item of it is finished and the lead
        handed on. A leader that writes one batch and returns: none leads for as long as the load
        lasts. Stopped by an interrupt (KeyboardInterrupt, a server's SystemExit), it hands every item
        queued back with that error: nobody is left waiting behind a leader that is gone."""
        batch = self.take(most)
        try:
            write(batch)
        except BaseException as exc:
            for item in (*batch, *self.drop_all()):
                item.error = item.error or exc
                item.finish()
            raise
        for item in batch:
            item.finish()
        self.hand_on()

    def take(self, most: int) -> list[Q]:
        """The leader's batch: the first `most` items queued (its own is first)."""
        with self._lock:
            batch, self._queue = self._queue[:most], self._queue[most:]
            return batch

    def hand_on(self) -> None:
        """After a leader's batch: the first item still queued leads next (its thread is woken to
        `lead`, its own item first), or, nothing queued, the leading is over."""
        with self._lock:
            if not self._queue:
                self._leading = False
                return
            first = self._queue[0]
            first.leads = True
            latch, first.done = first.done, None  # its finish() after its batch is a no-op
        assert latch is not None, "a queued item behind a leader always has its latch"
        latch.release()

    def leave(self, item: Q) -> bool:
        """A follower that stops waiting (its caller gave up on it): True when it left the queue, never
        to be written nor handed the lead. False when it cannot leave: a leader took it into a batch
        (written, or being written), or handed it the lead at that moment, which it must then take."""
        with self._lock:
            if item.leads:
                return False
            for n, queued in enumerate(self._queue):
                if queued is item:
                    del self._queue[n]
                    return True
            return False

    def drop_all(self) -> list[Q]:
        """Everything queued, and the leading over: a leader stopped by an interrupt hands them back."""
        with self._lock:
            rest, self._queue, self._leading = self._queue, [], False
            return rest

    def __len__(self) -> int:
        return len(self._queue)
