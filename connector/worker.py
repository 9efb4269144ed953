"""Background workers: claim due inbox rows and run each through the pipeline.

A worker process handles many deliveries at once (`worker.concurrency`, each in its own thread,
most of them waiting for their platform) while only `worker.threads` of them compute at a time
(connector/cpu.py). One dispatcher claims work as slots free up; a ticket is leased to one
delivery at a time, its oldest first (connector/store/inbox.py), so however many are in flight,
each ticket's deliveries are handled one after the other, in order.

It learns of new work at once (connector/wakeup.py: NOTIFY on PostgreSQL, a datagram beside a
SQLite file, its own SLA tick) and polls every `worker.poll_seconds` in case a signal was lost.
A delivery that finishes sends the dispatcher looking again only when that can find something: a
successor of its ticket was signalled (the claim had to leave it: one delivery per ticket at a
time), it did not finish (a retry, a deferred write), or the dispatcher waits for a free slot.
Otherwise every delivery would cost a second, empty claim.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from collections import Counter
from datetime import datetime, timedelta
from typing import Any

from connector import cpu, wakeup
from connector.errors import first_line
from connector.lease_keeper import Held
from connector.pipeline import process
from connector.retry import Stranded
from connector.runtime import Runtime
from connector.store import inbox
from connector.store.db import database_unavailable, log_round_failed
from connector.store.inbox import InboxItem

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
        except Exception as exc:  # the database failed under it: its lease runs out and it is taken again
            _failed_under(rt, item, exc)
    return len(items)


def _failed_under(rt: Runtime, item: InboxItem, exc: Exception) -> None:
    """Log a delivery whose processing raised: the database going away is one line (it is taken
    again when the database answers), anything else a traceback."""
    if database_unavailable(rt.engine, exc):
        log.warning("the database failed under %s delivery %s (%s); it is taken again once it answers",
                    item.platform, item.delivery_id, first_line(exc))  # fmt: skip
    else:
        log.exception("processing %s delivery %s failed", item.platform, item.delivery_id)


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
    """One dispatcher that claims due deliveries while slots are free, `concurrency` threads that
    handle them, and a listener that wakes the dispatcher when new work is stored anywhere.

    `threads`: the deliveries that may compute at once (connector/cpu.py); `concurrency`: how many
    are handled at once, most of them waiting for their platform. `listen=False` (or
    `worker.listen: false`) leaves the pool to its poll.
    """

    def __init__(
        self,
        rt: Runtime,
        *,
        threads: int | None = None,
        concurrency: int | None = None,
        parent_pid: int | None = None,
        listen: bool = True,
    ):
        w = rt.config.worker
        self.rt = rt
        self.threads = max(1, threads if threads is not None else w.threads)
        self.concurrency = max(self.threads, concurrency if concurrency is not None else w.concurrency)
        self.parent_pid = parent_pid  # stop when the process that started us is gone
        self.listen = listen and w.listen
        self.turns = cpu.CpuTurns(self.threads, on_away=self._stepped_away)
        # Claimed deliveries that may want the CPU at once (not waiting for their platform): twice the
        # turns, so one is ready the moment a turn frees. Beyond that a claimed delivery only waits in
        # memory for a turn, sharing it round-robin with every other: when the CPU is what is short,
        # each delivery then took (deliveries in flight / decisions per second) however early it came
        # (64 in flight at 100/s: 640 ms), where in the inbox it waits its turn in order, P1 first.
        self._ready_at_most = 2 * self.threads
        self._short_of_cpu = False  # the last look found no room for another computing delivery
        self._short_of_room = False  # the last look claimed nothing for want of a slot or the CPU
        self._stop = threading.Event()
        self._wake = threading.Event()  # new work may be due: stored, fired, or a slot freed
        self._work: queue.SimpleQueue[tuple[InboxItem, int] | None] = queue.SimpleQueue()
        self._lock = threading.Lock()  # guards the counts below
        self._in_flight = 0
        self._flying: Counter[wakeup.Ticket] = Counter()  # the tickets of the deliveries in flight
        self._owed: Counter[wakeup.Ticket] = Counter()  # rows signalled that no claim of ours took yet
        self._owed_since: dict[wakeup.Ticket, int] = {}  # each owed ticket's latest signal (in _named)
        self._named = 0  # signals that named tickets, so far
        self._unnamed = 0  # signals that named no tickets, so far
        self._hears = False  # a listener tells us which tickets have work waiting (else: every end looks)
        # When the earliest delivery stored to wait (a retry, a rate-limited write) comes due, as last
        # read; read again only when that may have changed (see _idle_seconds), not after every claim.
        self._next_due: datetime | None = None
        self._next_due_known = False
        # Nearly full, wait for a few slots to free before claiming: one claim per freed slot cost
        # more CPU than the decisions' own transactions, and at that load work is waiting anyway.
        self._claim_at = max(1, min(w.batch, self.concurrency // 4))
        self._threads: list[threading.Thread] = []
        self._listener: wakeup.Listener | None = None
        self._stranded: Stranded[InboxItem] = Stranded()
        # The deliveries claimed and not ended yet, with their leases' ends: what the lease keeper renews.
        self.held = Held()

    def start(self) -> None:
        for installation in self.rt.installations.values():
            installation.wrap_client(_OffCpu)
        for n in range(self.concurrency):
            handler = threading.Thread(target=self._handle, name=f"escalator-worker-{n}", daemon=True)
            handler.start()
            self._threads.append(handler)
        dispatcher = threading.Thread(target=self._dispatch, name="escalator-dispatcher", daemon=True)
        dispatcher.start()
        self._threads.append(dispatcher)
        if self.listen:
            self._listener = wakeup.listener(self.rt.engine, self.wake)
            self._hears = self._listener is not None

    def request_stop(self) -> None:
        self._stop.set()
        self._wake.set()  # also ends the dispatcher's wait at once

    def wake(self, stored: wakeup.Stored = None) -> None:
        """Look for work now instead of at the next poll. `stored`: the tickets whose rows were
        stored, when the signal names them; a delivery of one of them in flight looks again when it
        ends (the claim leaves its successor). None: each delivery now in flight looks again."""
        with self._lock:
            if stored is None:
                self._unnamed += 1
                self._next_due_known = False  # the rate limiter's line, a fired timer: maybe later rows
            else:
                self._named += 1
                self._owed.update(stored)
                self._owed_since.update(dict.fromkeys(stored, self._named))
        self._wake.set()

    def wait(self) -> bool:
        """Block until stopped (by request_stop, or because the parent process died), then stop
        within `worker.shutdown_seconds`; True when every delivery in flight finished by then."""
        while not self._stop.wait(1.0):
            if self.parent_pid is not None and os.getppid() != self.parent_pid:
                log.warning("parent process %s is gone; stopping", self.parent_pid)
                self.request_stop()
        return self.close(self.rt.config.worker.shutdown_seconds)

    def close(self, timeout: float) -> bool:
        """Stop claiming, let the deliveries in flight finish for at most `timeout` seconds; True
        when they did. Those still running are left to their daemon threads: their leases run out
        and they are taken again (a note in flight is looked for on the ticket before it is resent)."""
        self.request_stop()
        deadline = time.monotonic() + timeout
        if self._listener is not None:
            self._listener.stop(timeout=min(1.0, timeout))
        dispatcher, handlers = self._threads[-1:], self._threads[:-1]
        for thread in dispatcher:  # first: what its last claim took is queued before the ends below
            thread.join(max(0.0, deadline - time.monotonic()))
        for _ in handlers:
            self._work.put(None)  # each handler ends when it reaches one
        for thread in handlers:
            thread.join(max(0.0, deadline - time.monotonic()))
        left = self._in_flight
        if left:
            log.warning("stopped with %d deliveries still in flight after %.0fs; they are taken again "
                        "when their lease runs out", left, timeout)  # fmt: skip
        return left == 0

    def _dispatch(self) -> None:
        w = self.rt.config.worker
        while not self._stop.is_set():
            self._wake.clear()  # a wake-up from here on makes the wait below return at once
            if self._stranded:
                self._give_back_stranded()
            # Before counting: a delivery stepping away, or ending, from now on wakes us.
            self._short_of_cpu = self._short_of_room = True
            free = self.concurrency - self._in_flight
            room = min(free, self._ready_at_most - (self._in_flight - self.turns.away))
            claimed = wanted = 0
            if room > 0 and (room >= min(self._claim_at, self.threads) or free == self.concurrency):
                self._short_of_cpu = self._short_of_room = False
                wanted = min(room, w.batch)
                try:
                    claimed = self._claim(wanted)
                except Exception as exc:  # the database may be briefly unavailable; never let the thread die
                    log_round_failed(log, self.rt.engine, exc, "claiming work failed; retrying in %.1fs",
                                     w.poll_seconds)  # fmt: skip
            if claimed and claimed == wanted:
                continue  # there may be more due, and slots for it
            if not wanted:  # no room: a delivery that ends wakes us
                self._wake.wait(w.poll_seconds)
                continue
            # All that was due is taken: a signal wakes us, or a delivery that leaves work behind
            # (a successor, a retry), or the next retry or rate-limited write coming due.
            if not self._wake.wait(self._idle_seconds(w.poll_seconds)):
                self._next_due_known = False  # a poll: what other workers left to wait is read again

    def _stepped_away(self) -> None:
        """A delivery began waiting for its platform: its turn is free for one more, if we held back."""
        if self._short_of_cpu:
            self._short_of_cpu = False
            self._wake.set()

    def _give_back_stranded(self) -> None:
        """Deliveries the database failed under (it restarted, say) go back to pending as soon as it
        answers again, instead of waiting out their lease (`worker.lease_seconds`, minutes)."""

        def back(items: list[InboxItem]) -> None:
            given = inbox.give_back(self.rt.engine, items, owner=self.rt.owner, now=self.rt.clock())
            for item in given:
                log.info("%s delivery %s given back to be taken again (the database failed under it)",
                         item.platform, item.delivery_id)  # fmt: skip

        try:
            self._stranded.give_back(back)
        except Exception:  # still unavailable: the next round tries again
            log.debug("could not give back %d deliveries yet", len(self._stranded), exc_info=True)

    def _idle_seconds(self, poll: float) -> float:
        """Until the next poll, or sooner when a retry or a rate-limited write comes due before it
        (nothing signals those: they were stored earlier, to wait). When that is, is read again only
        after a delivery here left work to wait, a signal naming no tickets, a poll, or once it came."""
        now = self.rt.clock()
        if not self._next_due_known or (self._next_due is not None and self._next_due <= now):
            self._next_due_known = True  # before the read: a change from here on makes us read again
            try:
                self._next_due = inbox.next_due(self.rt.engine, now=now)
            except Exception:  # the database may be briefly unavailable: the poll tries again
                log.debug("could not read when the next delivery comes due", exc_info=True)
                self._next_due_known = False
                return poll
        if self._next_due is None:
            return poll
        return max(0.0, min(poll, (self._next_due - self.rt.clock()).total_seconds()))

    def _claim(self, limit: int) -> int:
        w = self.rt.config.worker
        lease = timedelta(seconds=w.lease_seconds)
        now = self.rt.clock()
        with self._lock:  # signals from here on, and ends, may have come after the claim's snapshot
            unnamed, named, flying = self._unnamed, self._named, set(self._flying)
        items = inbox.claim(self.rt.engine, owner=self.rt.owner, now=now, lease=lease, limit=limit)
        self.held.add((item.id for item in items), self.rt.clock() + lease)
        with self._lock:
            self._in_flight += len(items)
            for item in items:
                if item.ticket_id is not None:
                    ticket = (item.platform, item.ticket_id)
                    self._flying[ticket] += 1
                    if self._owed[ticket] > 0:
                        self._owed[ticket] -= 1
            if len(items) < limit:
                self._forget_owed(named, flying)
        for item in items:
            self._work.put((item, unnamed))
        return len(items)

    def _forget_owed(self, named: int, flying: set[wakeup.Ticket]) -> None:
        """After a claim that took all it saw due (under the lock): a ticket owed rows, signalled before
        the claim began (`named` signals then), not in flight here when it began (`flying`) nor now,
        had its rows seen by the claim; not taken, they are another worker's. Every other ticket
        stays owed: a signal during the claim, or an end during it, came after the claim's snapshot."""
        for ticket in [t for t, since in self._owed_since.items() if since <= named]:
            if (ticket not in flying and ticket not in self._flying) or self._owed[ticket] <= 0:
                del self._owed_since[ticket]
                self._owed.pop(ticket, None)

    def _handle(self) -> None:
        while True:
            job = self._work.get()
            if job is None:
                return
            item, unnamed = job
            outcome = None
            try:
                until = self.held.until(item.id)  # as claimed, or as the lease keeper renewed it
                if until is None or self.rt.clock() >= until:
                    # Our lease ran out before it got a thread: another worker may hold it now.
                    # It is claimed again (with the expiry counted), never handled twice at once.
                    log.warning("lease on %s delivery %s ran out before it was handled",
                                item.platform, item.delivery_id)  # fmt: skip
                    continue
                with self.turns.turn():
                    outcome = process(self.rt, item)
            except Exception as exc:  # the database failed under it: given back once it answers again
                _failed_under(self.rt, item, exc)
                self._stranded.add(item)
            finally:
                if self._ended(item, unnamed, outcome):
                    self._wake.set()

    def _ended(self, item: InboxItem, unnamed: int, outcome: str | None) -> bool:
        """Count `item` out of the deliveries in flight; True when the dispatcher should look for work
        now: a successor of its ticket was waiting when it was claimed, or signalled while it was in
        flight (or a signal naming no tickets came), it left work behind (a retry, a deferred write,
        or it failed: `outcome` None), or the dispatcher waits for the slot it frees. Without a
        listener (`worker.listen: false`, an in-memory database) nothing names the tickets with work
        waiting: every end looks."""
        self.held.drop((item.id,))  # ended, skipped or stranded: not renewed any more
        ticket = (item.platform, item.ticket_id) if item.ticket_id is not None else None
        left_behind = outcome is None or outcome in LEFT_BEHIND
        with self._lock:
            self._in_flight -= 1
            owed = False
            if left_behind:
                self._next_due_known = False  # it waits to be taken again: maybe before what we know
            if ticket is not None:
                self._flying[ticket] -= 1
                if self._flying[ticket] <= 0:
                    del self._flying[ticket]
                owed = self._owed.get(ticket, 0) > 0
            return (
                owed
                or item.behind  # the claim saw later rows of its ticket: signalled to us or not
                or left_behind
                or not self._hears  # no signals to go by: a successor may wait, look
                or self._unnamed != unnamed
                or self._short_of_room
            )


# Outcomes (connector/pipeline.py) of a delivery that is taken again later: it comes due on its own,
# maybe before the dispatcher's wait ends.
LEFT_BEHIND = frozenset({"retrying", "deferred"})


class _OffCpu:
    """A platform client whose network calls give the delivery's CPU turn away while they wait."""

    def __init__(self, client: Any):
        self._client = client

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    def send(self, request: Any) -> Any:
        with cpu.waiting():
            return self._client.send(request)

    def fetch(self, ref: Any) -> Any:
        with cpu.waiting():
            return self._client.fetch(ref)

    def note_landed(self, ref: Any, mark: str) -> bool:
        with cpu.waiting():
            return self._client.note_landed(ref, mark)
