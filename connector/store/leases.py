"""A dead worker's leases, run out at once instead of when their time is up.

A worker leases what it works on: inbox rows (a delivery being decided), tickets (one delivery of a
ticket at a time) and outbox rows (a notification being sent). When the worker dies, the leases
run out after `worker.lease_seconds` and another worker takes the work again. When the worker's
death is known for certain — `escalator serve` saw its own worker process end — waiting is only
delay: a P1's escalation would sit five minutes behind a crash. `run_out` makes them expired now,
and everything else happens exactly as when they run out by themselves: the claim takes the rows
again and counts the expiry (`worker.max_lease_expiries` still stops a delivery that kills every
worker), a note that was in flight is looked for on the platform before it is sent again.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Engine, bindparam, update

from connector.store import inbox as deliveries
from connector.store import outbox as notifications
from connector.store.db import writing
from connector.store.prepared import Prepared
from connector.store.tables import inbox, outbox, tickets

# The claims compare `lease_until < now`: a lease that ended a second ago is expired for any clock
# that reads now or later, a test's frozen one too.
_ENDED = timedelta(seconds=1)


def _ending(table, *where) -> Prepared:
    mine = table.c.lease_owner == bindparam("b_owner")
    # Leases that would still run: one already over needs nothing, and keeps its end.
    running = table.c.lease_until >= bindparam("b_ended")
    return Prepared(update(table).where(mine, running, *where).values(lease_until=bindparam("b_ended")))


_DELIVERIES = _ending(inbox, inbox.c.status == deliveries.PROCESSING)
_TICKETS = _ending(tickets)
_NOTIFICATIONS = _ending(outbox, outbox.c.status == notifications.PENDING)


@dataclass(frozen=True)
class RunOut:
    """How many leases of each kind were run out."""

    deliveries: int
    tickets: int
    notifications: int

    def __bool__(self) -> bool:
        return bool(self.deliveries or self.tickets or self.notifications)

    def __str__(self) -> str:
        counts = [(self.deliveries, "delivery", "deliveries"), (self.tickets, "ticket", "tickets"),
                  (self.notifications, "notification", "notifications")]  # fmt: skip
        return ", ".join(f"{n} {one if n == 1 else many}" for n, one, many in counts)


def run_out(engine: Engine, owner: str, now: datetime) -> RunOut:
    """End now every lease `owner` holds, in one transaction. Only for an owner known to be dead:
    a live worker would find its work taken by another (safe — its record is refused — but wasted)."""
    params = {"b_owner": owner, "b_ended": now - _ENDED}
    with writing(engine) as conn:
        return RunOut(
            deliveries=_DELIVERIES.run(conn, params),
            tickets=_TICKETS.run(conn, params),
            notifications=_NOTIFICATIONS.run(conn, params),
        )
