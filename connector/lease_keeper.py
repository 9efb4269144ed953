"""A worker process's leases, renewed while it works on what they hold.

Every delivery, ticket and notification a worker works on is leased to it. A lease must outlast
the slowest platform answer, or a live worker's work would be taken by another; and it must be short,
or a worker whose host went down holds its deliveries (and every later event of their tickets) for
that long. Renewal gives both: the leases are short (`worker.lease_seconds`,
`notifications.lease_seconds`), and this thread extends, every third of the shorter one, the leases
of what the process is working on right now (`Held`: the worker pool's deliveries in flight, the
outbox sender's messages being sent). A worker that dies stops renewing, and its work is taken again
within one lease. What the process no longer works on is not renewed (a delivery it skipped, one
the database failed under), nor is anything held longer than `RENEWED_AT_MOST` leases: a thread
stuck on it (a bug, a server that trickles its answer) must not hold its ticket for ever.

A worker that dies is also noticed sooner than its leases run out: `DeadOwners` looks every 2 s for
owners of running leases whose process is gone (connector/store/liveness.py) and hands back what
they held at once.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable
from datetime import datetime, timedelta

from sqlalchemy.exc import SQLAlchemyError

from connector.errors import first_line
from connector.runtime import Runtime
from connector.store import leases, liveness

log = logging.getLogger("escalator")

RENEWED_AT_MOST = 10  # leases' worth of time one delivery or message is kept by renewal


class Held:
    """The rows (by id) a process is working on: since when, and until when each one's lease runs."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._held: dict[int, tuple[float, datetime]] = {}

    def add(self, ids: Iterable[int], until: datetime) -> None:
        since = time.monotonic()
        with self._lock:
            for row_id in ids:
                self._held[row_id] = (since, until)

    def drop(self, ids: Iterable[int]) -> None:
        with self._lock:
            for row_id in ids:
                self._held.pop(row_id, None)

    def until(self, row_id: int) -> datetime | None:
        """When the lease on `row_id` runs out, as last taken or renewed; None when not held."""
        with self._lock:
            held = self._held.get(row_id)
        return held[1] if held is not None else None

    def to_renew(self, longest: float) -> list[int]:
        """The ids held for less than `longest` seconds."""
        now = time.monotonic()
        with self._lock:
            return [row_id for row_id, (since, _) in self._held.items() if now - since < longest]

    def renewed(self, ids: Iterable[int], until: datetime) -> None:
        with self._lock:
            for row_id in ids:
                held = self._held.get(row_id)
                if held is not None:
                    self._held[row_id] = (held[0], until)

    def __len__(self) -> int:
        with self._lock:
            return len(self._held)


class _EveryFewSeconds:
    """A daemon thread of its own that runs `step()` every `interval` seconds until stopped."""

    thread_name = "escalator-periodic"
    interval: float

    def __init__(self) -> None:
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name=self.thread_name, daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 1.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self.step()

    def step(self) -> object:
        raise NotImplementedError


class LeaseKeeper(_EveryFewSeconds):
    """Renews the leases of `deliveries` (the worker pool's) and `notifications` (the outbox
    sender's) from a thread of its own."""

    thread_name = "escalator-leases"

    def __init__(self, rt: Runtime, deliveries: Held, notifications: Held):
        super().__init__()
        self.rt = rt
        self.deliveries, self.notifications = deliveries, notifications
        self._delivery_lease = timedelta(seconds=rt.config.worker.lease_seconds)
        self._notification_lease = timedelta(seconds=rt.config.notifications.lease_seconds)
        self.interval = min(self._delivery_lease, self._notification_lease).total_seconds() / 3
        self._failing = False

    def step(self) -> bool:
        return self.renew()

    def renew(self) -> bool:
        """Extend the leases of what is held now; False (logged once until it works again) when the
        database refused: they keep their end, and are renewed at the next turn if still ours."""
        deliveries = self.deliveries.to_renew(RENEWED_AT_MOST * self._delivery_lease.total_seconds())
        notifications = self.notifications.to_renew(
            RENEWED_AT_MOST * self._notification_lease.total_seconds()
        )
        if not deliveries and not notifications:
            return True
        now = self.rt.clock()
        deliveries_until, notifications_until = now + self._delivery_lease, now + self._notification_lease
        try:
            leases.renew(
                self.rt.engine, self.rt.owner,
                deliveries=deliveries, deliveries_until=deliveries_until,
                notifications=notifications, notifications_until=notifications_until,
            )  # fmt: skip
        except (SQLAlchemyError, OSError) as exc:
            if not self._failing:
                log.warning("could not renew this worker's leases (%s): trying again in %.0f s; what it "
                            "holds is taken by another worker if that fails until they run out",
                            first_line(exc), self.interval)  # fmt: skip
            self._failing = True
            return False
        self.deliveries.renewed(deliveries, deliveries_until)
        self.notifications.renewed(notifications, notifications_until)
        if self._failing:
            log.info("this worker's leases are renewed again")
        self._failing = False
        return True


class DeadOwners(_EveryFewSeconds):
    """Looks every `interval` seconds for leases whose owner's process is gone (its liveness lock is
    free, connector/store/liveness.py) and runs them out at once, instead of leaving them to run out
    by themselves within a lease: a replica killed on another host, a worker killed with no serve
    watching it. `on_handed_back()` is called after any were (the worker pool looks for work then).

    It also keeps this process's own lock (`alive`), taking it again when the database lost it (a
    PostgreSQL restart ends every session). Others find an owner gone only when its lock was free at
    two of their looks, an interval apart, which leaves it the time to; should one still take its
    work, its records are refused (the lease fence), as after a lease ran out."""

    thread_name = "escalator-dead-owners"

    def __init__(self, rt: Runtime, alive: liveness.Alive, *, on_handed_back=None, interval: float = 2.0):
        super().__init__()
        self.rt, self.alive = rt, alive
        self.on_handed_back = on_handed_back or (lambda: None)
        self.interval = interval
        self._failing = False
        self._free_since: dict[str, float] = {}  # owners whose lock was free at the last look: since when

    def step(self) -> list[str]:
        return self.look()

    def look(self) -> list[str]:
        """One look: the owners found gone (their leases run out now).

        An owner is gone when its lock was free at two looks at least one interval apart: a database
        that restarted ended every worker's session, and each takes its lock again at its own next
        look. For the same reason a look that had to take this worker's own lock again hands back
        nothing: the others are most likely taking theirs again too."""
        try:
            if not self.alive.held():
                self.alive.hold()
                self._free_since.clear()
                log.warning("this worker's liveness lock was lost (did the database restart?); held again")
                return []
            owners = liveness.lease_owners(self.rt.engine, self.rt.clock()) - {self.rt.owner}
            found = self._still_free(liveness.gone(self.rt.engine, owners))
            for owner in found:
                ended = leases.run_out(self.rt.engine, owner, self.rt.clock())
                liveness.forget(self.rt.engine, owner)
                if ended:  # else serve (its parent) or another worker handed it back first
                    self.rt.metrics.workers_gone.inc()
                    log.warning("worker %s is gone (its process ended): handed back what it held: %s",
                                owner, ended)  # fmt: skip
            liveness.sweep(self.rt.engine, leasing=owners)
        except Exception as exc:  # the database away (the driver's own errors too): the next look tries again
            if not self._failing:
                log.warning("could not look for workers that are gone (%s): trying again in %.0f s",
                            first_line(exc), self.interval)  # fmt: skip
            self._failing = True
            self._free_since.clear()
            return []
        self._failing = False
        if found:
            self.on_handed_back()
        return found

    def _still_free(self, free: list[str]) -> list[str]:
        """Of the owners whose lock is free now, those found free a whole interval ago too."""
        now = time.monotonic()
        since = {owner: self._free_since.get(owner, now) for owner in free}
        self._free_since = since
        return [owner for owner, first in since.items() if now - first >= self.interval]
