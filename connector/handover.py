"""Follow-the-sun handovers in the worker: the handover timer each ticket should have, and the time event
a fired one stands for. The timer lives in the timers table beside the SLA timers (fired by the same
scheduler tick, exactly once across replicas); the worker handles the event like any other, so a
handover is one write and one audit record (`policies/handover.py` decides what it is)."""

from __future__ import annotations

import json
from datetime import datetime

from connector.model import EventKind, Ticket, TicketEvent
from connector.store.inbox import InboxItem
from connector.store.tickets import StoredTicket
from connector.store.timers import FiredTimer
from policies import Policy, handover
from policies.handover import HandoverTimer
from policies.sla import SlaState


def wanted(
    policy: Policy, platform: str, tier: str | None, ticket: Ticket | None, clocks: SlaState, now: datetime
) -> tuple[HandoverTimer, ...]:
    """The handover timer to arm beside the ticket's SLA timers: none, or one."""
    found = handover.timer(policy, platform, tier, ticket, clocks, now)
    return (found,) if found is not None else ()


def is_handover(item: InboxItem) -> bool:
    return item.event_type == EventKind.HANDOVER.value


def handover_event(
    item: InboxItem, stored: StoredTicket | None, policy: Policy
) -> tuple[TicketEvent | None, str]:
    """The handover a fired timer stands for, or None (and why) when the ticket's holder, tier, pause or
    the rota changed since it was armed (a reload re-arms it; an event before it did already)."""
    fired = FiredTimer.from_json(item.platform, item.ticket_id or "", json.loads(item.body)["timer"])
    if stored is None or stored.snapshot is None:
        return None, "handover timer fired for a ticket Escalator has no snapshot of"
    clocks = SlaState.from_json(stored.sla)
    current = handover.timer(
        policy, item.platform, stored.state.tier, stored.snapshot, clocks, fired.fired_at
    )
    if current is None or current.due != fired.due:
        return None, (
            f"handover timer due {fired.due.isoformat()} is no longer armed (the ticket was resolved, paused "
            "or moved, or its team's hours changed)"
        )
    # The handover happened at the close: that is the event's instant (the clocks are not touched by it).
    return TicketEvent(
        EventKind.HANDOVER, stored.snapshot, delivery_id=item.delivery_id, occurred_at=fired.due
    ), ""
