"""A worker's leases: renewed while it lives, run out at once when it is known dead.

A worker leases what it works on: inbox rows (a delivery being decided), tickets (one delivery of a
ticket at a time) and outbox rows (a notification being sent). While the worker runs it renews them
(`renew`, from connector/lease_keeper.py), however long a platform takes to answer; when it dies
they run out within `worker.lease_seconds` (`notifications.lease_seconds` for notifications) and
another worker takes the work again. When the worker's death is known for certain (`escalator
serve` saw its own worker process end), even that wait is only delay: `run_out` makes them expired
now, and everything else happens exactly as when they run out by themselves: the claim takes the
rows again and counts the expiry (`worker.max_lease_expiries` still stops a delivery that kills
every worker), a note that was in flight is looked for on the platform before it is sent again.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Engine, bindparam, select, tuple_, update

from connector.store import inbox as deliveries
from connector.store import outbox as notifications
from connector.store.db import one_statement
from connector.store.prepared import Prepared
from connector.store.tables import inbox, outbox, tickets

# _LOCK_ORDER: a decision's record locks its ticket's row, then its delivery's; a renewal (or a
# hand-back) in one transaction locked deliveries, then their tickets, and on PostgreSQL the two
# deadlocked under load. Each statement here runs alone (autocommit; one writer on SQLite anyway),
# so none holds one kind of row while it waits for the other.

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


# Renewing: the rows the worker says it works on, while they are still its own (one that ran out
# but was not taken again is still this live worker's work; one taken again has another owner). A
# ticket's lease is renewed through the delivery that holds it: tickets have no index on their owner.
def _still_mine(table, ids: str):
    return table.c.id.in_(bindparam(ids, expanding=True)), table.c.lease_owner == bindparam("b_owner")


_RENEW_DELIVERIES = (
    update(inbox)
    .where(inbox.c.status == deliveries.PROCESSING, *_still_mine(inbox, "b_deliveries"))
    .values(lease_until=bindparam("b_until"))
)
_HELD_TICKETS = select(inbox.c.platform, inbox.c.ticket_id).where(*_still_mine(inbox, "b_deliveries"))
_RENEW_TICKETS = (
    update(tickets)
    .where(
        tickets.c.lease_owner == bindparam("b_owner"),
        tuple_(tickets.c.platform, tickets.c.ticket_id).in_(_HELD_TICKETS),
    )
    .values(lease_until=bindparam("b_until"))
)
_RENEW_NOTIFICATIONS = (
    update(outbox)
    .where(outbox.c.status == notifications.PENDING, *_still_mine(outbox, "b_notifications"))
    .values(lease_until=bindparam("b_until"))
)


@dataclass(frozen=True)
class RunOut:
    """How many leases of each kind were run out (or renewed)."""

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
    """End now every lease `owner` holds. Only for an owner known to be dead:
    a live worker would find its work taken by another (safe — its record is refused — but wasted)."""
    params = {"b_owner": owner, "b_ended": now - _ENDED}
    with one_statement(engine) as conn:  # each statement alone: see _LOCK_ORDER
        return RunOut(
            deliveries=_DELIVERIES.run(conn, params),
            tickets=_TICKETS.run(conn, params),
            notifications=_NOTIFICATIONS.run(conn, params),
        )


def renew(
    engine: Engine,
    owner: str,
    *,
    deliveries: Collection[int] = (),
    deliveries_until: datetime,
    notifications: Collection[int] = (),
    notifications_until: datetime,
) -> RunOut:
    """Extend the leases `owner` still holds on the inbox rows `deliveries` and
    their tickets (to `deliveries_until`) and on the outbox rows `notifications` (to
    `notifications_until`); how many of each."""
    counts = {"deliveries": 0, "tickets": 0, "notifications": 0}
    with one_statement(engine) as conn:  # each statement alone: see _LOCK_ORDER
        if deliveries:
            held = {"b_owner": owner, "b_deliveries": list(deliveries), "b_until": deliveries_until}
            counts["deliveries"] = conn.execute(_RENEW_DELIVERIES, held).rowcount
            counts["tickets"] = conn.execute(_RENEW_TICKETS, held).rowcount
        if notifications:
            held = {"b_owner": owner, "b_notifications": list(notifications), "b_until": notifications_until}
            counts["notifications"] = conn.execute(_RENEW_NOTIFICATIONS, held).rowcount
    return RunOut(**counts)
