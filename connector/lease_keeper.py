"""A worker process's leases, renewed while it runs.

Every delivery, ticket and notification a worker works on is leased to it. A lease must outlast
the slowest platform answer, or a live worker's work would be taken by another; and it must be short,
or a worker whose host went down holds its deliveries (and every later event of their tickets) for
that long. Renewal gives both: the leases are short (`worker.lease_seconds`,
`notifications.lease_seconds`), and while the process lives this thread extends them every third of
the shorter one. A worker that dies stops renewing, and its work is taken again within one lease.
"""

from __future__ import annotations

import logging
import threading
from datetime import timedelta

from sqlalchemy.exc import SQLAlchemyError

from connector.runtime import Runtime
from connector.store import leases

log = logging.getLogger("escalator")


class LeaseKeeper:
    def __init__(self, rt: Runtime):
        self.rt = rt
        self._deliveries = timedelta(seconds=rt.config.worker.lease_seconds)
        self._notifications = timedelta(seconds=rt.config.notifications.lease_seconds)
        self.interval = min(self._deliveries, self._notifications).total_seconds() / 3
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._failing = False

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="escalator-leases", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 1.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self.renew()

    def renew(self) -> bool:
        """Extend this process's leases now; False (logged once until it works again) when the
        database refused: they keep their end, and are renewed at the next turn if still ours."""
        now = self.rt.clock()
        try:
            leases.renew(
                self.rt.engine, self.rt.owner,
                deliveries_until=now + self._deliveries, notifications_until=now + self._notifications,
            )  # fmt: skip
        except (SQLAlchemyError, OSError) as exc:
            if not self._failing:
                log.warning("could not renew this worker's leases (%s): trying again in %.0f s; what it "
                            "holds is taken by another worker if that fails until they run out",
                            str(exc).splitlines()[0], self.interval)  # fmt: skip
            self._failing = True
            return False
        if self._failing:
            log.info("this worker's leases are renewed again")
        self._failing = False
        return True
