"""What Escalator remembers per ticket between events."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, select, update

from connector.model import TicketState
from connector.store.tables import tickets


@dataclass(frozen=True)
class StoredTicket:
    state: TicketState
    requester_id: str | None


def load(conn: Connection, platform: str, ticket_id: str) -> StoredTicket:
    row = conn.execute(
        select(tickets.c.tier, tickets.c.priority_pinned, tickets.c.requester_id).where(
            tickets.c.platform == platform, tickets.c.ticket_id == ticket_id
        )
    ).first()
    if row is None:
        return StoredTicket(TicketState(), None)
    return StoredTicket(
        TicketState(tier=row.tier, priority_pinned=bool(row.priority_pinned)), row.requester_id
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
) -> None:
    """Update the row the claim created (the ticket lease guarantees it exists)."""
    values: dict[str, Any] = dict(
        ticket_key=key,
        tier=state.tier,
        priority=priority,
        priority_pinned=state.priority_pinned,
        updated_at=now,
    )
    if requester_id:
        values["requester_id"] = requester_id
    conn.execute(
        update(tickets)
        .where(tickets.c.platform == platform, tickets.c.ticket_id == ticket_id)
        .values(**values)
    )
