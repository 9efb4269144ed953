"""Decision minus what the ticket already shows = the plan. Pure; no I/O.

An empty plan means no request at all, which is what makes Escalator convergent:
re-evaluating a ticket it already changed finds nothing left to do.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Collection
from datetime import datetime
from typing import Any

from connector.model import (
    AddLabel,
    AddNote,
    AssignGroup,
    AssignTier,
    AssignUser,
    Decision,
    HandOver,
    Note,
    Plan,
    RemoveLabel,
    SetPriority,
    Ticket,
)
from platforms.base import CAP_ASSIGNEE, CAP_GROUP, CAP_LABELS, CAP_PRIORITY
from policies import PlatformMapping


def make_plan(
    decision: Decision,
    ticket: Ticket,
    mapping: PlatformMapping,
    capabilities: Collection[str],
    now: datetime | None = None,
) -> Plan:
    """Resolve the decision's actions through the platform mapping, then drop what is already true.
    `now` picks the team of a follow-the-sun tier (required when the decision moves a ticket to one)."""
    priority: str | None = None
    assignee: str | None = None
    group: str | None = None
    fields: dict[str, Any] = {}
    add: set[str] = set()
    remove: set[str] = set()
    notes: list[AddNote] = []

    for action in decision.actions:
        if isinstance(action, SetPriority) and CAP_PRIORITY in capabilities:
            value = mapping.priorities[action.priority]
            if isinstance(value, str):
                priority = value
            else:  # e.g. ServiceNow: priority is derived from impact + urgency fields
                fields.update(value)
        elif isinstance(action, AssignTier):
            target = mapping.tiers.get(action.tier)
            if target is not None and target.rota is not None:
                if now is None:
                    raise ValueError(f"tier '{action.tier}' follows the sun: its team depends on the time")
                target = target.rota.choose(now).team.target
            if target is not None:
                assignee = target.assignee or assignee
                group = target.group or group
                fields.update(target.fields)
        elif isinstance(action, HandOver):
            team = _team(mapping, action)
            assignee = team.assignee or assignee
            group = team.group or group
            fields.update(team.fields)
        elif isinstance(action, AssignUser):
            assignee = action.user
        elif isinstance(action, AssignGroup):
            group = action.group
        elif isinstance(action, AddLabel):
            add.add(action.label)
            remove.discard(action.label)
        elif isinstance(action, RemoveLabel):
            remove.add(action.label)
            add.discard(action.label)
        elif isinstance(action, AddNote):
            notes.append(action)

    if priority is not None and ticket.platform_priority is not None:
        if priority.casefold() == ticket.platform_priority.casefold():
            priority = None
    if assignee is not None and (CAP_ASSIGNEE not in capabilities or assignee == ticket.assignee):
        assignee = None
    if group is not None and (CAP_GROUP not in capabilities or group == ticket.group):
        group = None
    if CAP_LABELS in capabilities:
        add -= ticket.labels
        remove &= ticket.labels
    else:
        after = (ticket.labels | add) - remove
        if mapping.labels_field and after != ticket.labels:
            # No labels on this platform (ServiceNow incident): the policy keeps them in a field.
            fields[mapping.labels_field] = labels_to_field(after)
        add, remove = set(), set()
    fields = {k: v for k, v in fields.items() if not _same_value(ticket.fields.get(k), v)}
    note = None
    if notes:
        # Several rules may each explain themselves; agents get one note. Internal wins:
        # a note meant for agents must never reach the requester because another was public.
        note = Note("\n\n".join(n.text for n in notes), internal=any(n.internal for n in notes))

    return Plan(
        ticket=ticket.ref,
        priority=priority,
        assignee=assignee,
        group=group,
        fields=fields,
        labels_add=frozenset(add),
        labels_remove=frozenset(remove),
        labels_current=ticket.labels,
        note=note,
        ticket_version=ticket.version,
    )


def _team(mapping: PlatformMapping, action: HandOver):
    target = mapping.tiers.get(action.tier)
    team = target.rota.team(action.team) if target is not None and target.rota is not None else None
    if team is None:
        raise ValueError(
            f"tier '{action.tier}' has no follow-the-sun team '{action.team}' on {mapping.platform}"
        )
    return team.target


def labels_to_field(labels: Collection[str]) -> str:
    """Labels kept in a text field: sorted, comma-separated."""
    return ",".join(sorted(labels))


def labels_from_field(value: Any) -> frozenset[str]:
    """The inverse of `labels_to_field`; empty or missing gives no labels."""
    if not isinstance(value, str):
        return frozenset()
    return frozenset(part.strip() for part in value.split(",") if part.strip())


def _same_value(current: Any, wanted: Any) -> bool:
    """Platform fields often read back as strings ("1") where the policy wrote numbers (1)."""
    if current == wanted:
        return True
    scalar = (str, int, float)
    return (
        isinstance(current, scalar)
        and isinstance(wanted, scalar)
        and not isinstance(current, bool)
        and not isinstance(wanted, bool)
        and str(current) == str(wanted)
    )


def note_mark(platform: str, delivery_id: str) -> str:
    """The mark a note carries: which delivery's decision it belongs to, the same on every retry
    (after a crash the worker looks for it on the ticket before sending the note again)."""
    digest = hashlib.sha256(f"{platform}\n{delivery_id}".encode()).hexdigest()[:20]
    return f"escalator:{digest}"


def with_note_mark(plan: Plan, platform: str, delivery_id: str) -> Plan:
    """`plan` with its note (if any) marked as the decision of delivery `delivery_id`."""
    if plan.note is None:
        return plan
    return dataclasses.replace(
        plan, note=dataclasses.replace(plan.note, mark=note_mark(platform, delivery_id))
    )
