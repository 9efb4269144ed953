"""What Escalator remembers per ticket between events: tier, pinned priority, the last
snapshot of the ticket (time events evaluate against it) and its SLA clocks."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, and_, bindparam, case, select, tuple_, update

from connector.codec import ticket_from_json, ticket_to_json
from connector.model import Reply, Ticket, TicketState
from connector.store.prepared import Prepared
from connector.store.tables import tickets


class Unchanged(enum.Enum):
    """A value save() leaves as it is stored."""

    UNCHANGED = enum.auto()


UNCHANGED = Unchanged.UNCHANGED


@dataclass(frozen=True)
class StoredTicket:
    state: TicketState
    requester_id: str | None
    snapshot: Ticket | None = None
    sla: dict[str, Any] | None = None  # policies.sla.SlaState.to_json()


# Built once, run with parameters: building a statement per call cost more than running it.
# Parameters named b_* select the row; the values written are passed under their column names.
_THIS_TICKET = and_(
    tickets.c.platform == bindparam("b_platform"), tickets.c.ticket_id == bindparam("b_ticket_id")
)
# What a decision reads of the ticket: load() reads it, and the worker's claim returns it with the
# ticket's lease (connector/store/inbox.py), saving a read per decision.
MEMORY = (
    tickets.c.tier,
    tickets.c.priority_pinned,
    tickets.c.requester_id,
    tickets.c.snapshot,
    tickets.c.sla,
    tickets.c.write_windows,
)
_LOAD = Prepared(select(*MEMORY).where(_THIS_TICKET))
_UPDATE_ROW = update(tickets).where(_THIS_TICKET)
_UPDATE = Prepared(_UPDATE_ROW)
# The same, also freeing the ticket's lease when `b_owner` holds it (as inbox's release does; each
# CASE reads the row as it was): the decision's record frees its ticket without a statement of its own.
_MINE = tickets.c.lease_owner == bindparam("b_owner")
_UPDATE_AND_RELEASE = Prepared(
    _UPDATE_ROW.values(
        lease_owner=case((_MINE, None), else_=tickets.c.lease_owner),
        lease_until=case((_MINE, None), else_=tickets.c.lease_until),
    )
)
# Keyset pages over the tickets that have SLA clocks, locked until the caller's transaction ends
# (FOR UPDATE on PostgreSQL; SQLite's writer lock already excludes every other writer).
_KEY = tuple_(tickets.c.platform, tickets.c.ticket_id)
_WITH_SLA = (
    select(tickets.c.platform, tickets.c.ticket_id, tickets.c.sla, tickets.c.tier, tickets.c.snapshot)
    .where(tickets.c.sla.is_not(None), _KEY > tuple_(bindparam("b_platform"), bindparam("b_ticket_id")))
    .order_by(tickets.c.platform, tickets.c.ticket_id)
    .limit(bindparam("b_limit"))
    .with_for_update()
)


def load(conn: Connection, platform: str, ticket_id: str) -> StoredTicket:
    return from_row(_LOAD.first(conn, {"b_platform": platform, "b_ticket_id": ticket_id}))


def from_row(row: Any) -> StoredTicket:
    """The StoredTicket of a row holding the MEMORY columns (None: a ticket never seen)."""
    if row is None:
        return StoredTicket(TicketState(), None)
    return StoredTicket(
        TicketState(
            tier=row.tier,
            priority_pinned=bool(row.priority_pinned),
            last_reply=Reply.from_json((row.sla or {}).get("last_reply")),
        ),
        row.requester_id,
        ticket_from_json(row.snapshot) if row.snapshot else None,
        row.sla or None,
    )


def save(
    conn: Connection,
    platform: str,
    ticket_id: str,
    *,
    key: str,
    state: TicketState,
    priority: str | None,
    requester_id: str | None,
    now: datetime,
    snapshot: Ticket | None = None,
    sla: dict[str, Any] | None = None,
    release_lease_of: str | None = None,
    write_windows: dict[str, Any] | None | Unchanged = UNCHANGED,
) -> None:
    """Update the row the claim created (the ticket lease guarantees it exists); with
    `release_lease_of`, also free the ticket's lease when that owner holds it; with `write_windows`,
    the ticket's own rate-limit windows as counted under its lease."""
    values: dict[str, Any] = dict(
        ticket_key=key,
        tier=state.tier,
        priority=priority,
        priority_pinned=state.priority_pinned,
        updated_at=now,
        sla=sla,
        sla_open=sla_open(sla),
    )
    if requester_id:
        values["requester_id"] = requester_id
    if snapshot is not None:
        values["snapshot"] = ticket_to_json(snapshot)
    if write_windows is not UNCHANGED:
        values["write_windows"] = write_windows
    if release_lease_of is not None:
        _update(conn, platform, ticket_id, {**values, "b_owner": release_lease_of}, _UPDATE_AND_RELEASE)
    else:
        _update(conn, platform, ticket_id, values)


def save_write_windows(
    conn: Connection, platform: str, ticket_id: str, windows: dict[str, Any] | None
) -> None:
    """The ticket's own rate-limit windows, counted under its lease, when nothing else of its memory
    is saved with the decision (a write that went out and is retried)."""
    _update(conn, platform, ticket_id, {"write_windows": windows})


def with_sla(
    conn: Connection, after: tuple[str, str], limit: int
) -> list[tuple[str, str, dict[str, Any] | None, str | None, Ticket | None]]:
    """(platform, ticket_id, sla, tier, snapshot) of up to `limit` tickets in key order after `after`
    (("", "") for the first page), locked until the caller's transaction ends. `sla` may still be None
    (a JSON null): the caller skips those, but pages on from the last key."""
    rows = conn.execute(_WITH_SLA, {"b_platform": after[0], "b_ticket_id": after[1], "b_limit": limit})
    return [
        (
            row.platform,
            row.ticket_id,
            row.sla,
            row.tier,
            ticket_from_json(row.snapshot) if row.snapshot else None,
        )
        for row in rows
    ]


def _snapshot(data: dict[str, Any] | None) -> Ticket | None:
    return ticket_from_json(data) if data else None


def save_sla(conn: Connection, platform: str, ticket_id: str, sla: dict[str, Any]) -> None:
    _update(conn, platform, ticket_id, dict(sla=sla, sla_open=sla_open(sla)))


def sla_open(sla: dict[str, Any] | None) -> bool | None:
    """The `sla_open` column for an SLA state: True while clocks run on an unresolved ticket, else NULL
    (only the open ones are indexed in effect: the SLA board reads them by it)."""
    return True if sla and sla.get("started_at") and not sla.get("resolved_at") else None


def save_snapshot(conn: Connection, platform: str, ticket_id: str, snapshot: Ticket, now: datetime) -> None:
    """Keep the newest view of a ticket without touching its state (e.g. from an echo of our write)."""
    _update(conn, platform, ticket_id, dict(snapshot=ticket_to_json(snapshot), updated_at=now))


def _update(
    conn: Connection, platform: str, ticket_id: str, values: dict[str, Any], statement: Prepared = _UPDATE
) -> None:
    # The SET clause follows the parameter names (a misspelt column is refused when compiled).
    statement.send(conn, {"b_platform": platform, "b_ticket_id": ticket_id, **values})
