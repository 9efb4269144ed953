"""The pure core of the worker: one event and what Escalator remembers of the ticket → the
decision, the ticket's new memory and SLA clocks, and the plan of changes to make.

No I/O. The worker runs it between reading the ticket's memory and writing to the platform;
`escalator simulate` runs it on a payload file, so what it shows is what the worker would do.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, replace
from datetime import datetime

from connector.model import AssignTier, Decision, EventKind, Plan, Ticket, TicketEvent, TicketState
from connector.plan import labels_from_field, make_plan
from connector.store.tickets import StoredTicket
from platforms.base import CAP_LABELS
from policies import PlatformMapping, Policy, evaluate, handover, sla
from policies.scope import out_of_scope
from policies.sla import SlaState


@dataclass(frozen=True)
class Judgement:
    event: TicketEvent  # as the policy saw it: P-level, labels from a field, the requester remembered
    decision: Decision
    state: TicketState  # the ticket's memory after the decision (tier, pinned priority)
    clocks: SlaState  # its SLA clocks after the event
    plan: Plan  # the changes the platform does not show yet; empty when there is nothing to do
    out_of_scope: str | None = None  # why the policy does not govern the ticket (nothing decided, no clocks)


def judge(
    policy: Policy,
    mapping: PlatformMapping,
    capabilities: Collection[str],
    stored: StoredTicket,
    event: TicketEvent,
    now: datetime,
    *,
    advance_clocks: bool = True,
) -> Judgement:
    """`advance_clocks=False` keeps the stored SLA clocks (replay: no webhook decision reads them)."""
    event = enrich(event, mapping, stored.requester_id, capabilities)
    state = stored.state
    why_not = out_of_scope(policy, event)
    if why_not is not None:
        # Not governed: nothing is decided or written, and any clocks it had stop (timers cancelled).
        tier = state.tier or mapping.tier_of(event.ticket) or policy.tiers[0]
        kept = Decision(event.ticket.priority, event.ticket.priority, why_not, tier, tier, reasons=(why_not,))
        return Judgement(event, kept, state, SlaState(), Plan(event.ticket.ref), why_not)
    if state.tier is None:
        state = replace(state, tier=mapping.tier_of(event.ticket))
    if person_set_priority(event) and not state.priority_pinned:
        # A person chose this priority; raise_only leaves it alone from now on.
        state = replace(state, priority_pinned=True)
    decision = follow_the_sun_reason(evaluate(policy, event, state, now), mapping, now)
    if decision.tier_after and decision.tier_after != state.tier:
        state = replace(state, tier=decision.tier_after)
    priority = decision.priority_after or event.ticket.priority
    stored_clocks = SlaState.from_json(stored.sla)
    clocks = sla.advance(policy, stored_clocks, event, priority, now) if advance_clocks else stored_clocks
    if event.kind is EventKind.HANDOVER:
        decision = with_handover(policy, mapping, decision, event, clocks, now)
    plan = make_plan(decision, event.ticket, mapping, capabilities, now)
    return Judgement(event, decision, state, clocks, plan)


def follow_the_sun_reason(decision: Decision, mapping: PlatformMapping, now: datetime) -> Decision:
    """A move to a follow-the-sun tier says which team got the ticket and why (the audit keeps it)."""
    for action in decision.actions:
        target = mapping.tiers.get(action.tier) if isinstance(action, AssignTier) else None
        if target is not None and target.rota is not None:
            choice = target.rota.choose(now)
            why = f"{action.tier} follows the sun: to {choice.team.name}, {choice.why}"
            return replace(decision, reasons=(*decision.reasons, why))
    return decision


def with_handover(
    policy: Policy,
    mapping: PlatformMapping,
    decision: Decision,
    event: TicketEvent,
    clocks: SlaState,
    now: datetime,
) -> Decision:
    """A fired handover: the ticket goes to the team chosen now, with a summary note for it, in the same
    write as whatever `on: handover` rules asked. A rule that escalated it moves it to that tier instead."""
    tier = decision.tier_after
    if tier is None or tier != decision.tier_before:
        return decision
    found = handover.decide(policy, mapping, tier, event.ticket, clocks, event.occurred_at or now, now)
    if found is None:
        why = f"handover {tier}: the team that holds the ticket is the one chosen now; it stays"
        return replace(decision, reasons=(*decision.reasons, why))
    return replace(
        decision, actions=(*found.actions, *decision.actions), reasons=(*decision.reasons, found.reason)
    )


def person_set_priority(event: TicketEvent) -> bool:
    # A creation changelog lists every initial value; only a later edit is someone's choice.
    return event.kind is not EventKind.TICKET_CREATED and event.changed("priority") is not None


def enrich(
    event: TicketEvent, mapping: PlatformMapping, known_requester: str | None, capabilities: Collection[str]
) -> TicketEvent:
    """Fill what the payload leaves to the policy (P-level, labels kept in a field) or to memory
    (the requester)."""
    ticket: Ticket = event.ticket
    # replacing costs microseconds: only what changes is replaced.
    changes: dict[str, object] = {}
    priority = mapping.priority_of_ticket(ticket)
    if priority != ticket.priority:
        changes["priority"] = priority
    if mapping.labels_field and CAP_LABELS not in capabilities:
        labels = labels_from_field(ticket.fields.get(mapping.labels_field))
        if labels != ticket.labels:
            changes["labels"] = labels
    if changes:
        ticket = replace(ticket, **changes)
    comment = event.comment
    if ticket.requester is None and known_requester and comment is not None:
        comment = replace(comment, by_requester=comment.author.id == known_requester)
    if ticket is event.ticket and comment is event.comment:
        return event
    return replace(event, ticket=ticket, comment=comment)
