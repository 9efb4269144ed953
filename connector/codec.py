"""Canonical tickets to JSON and back, for the store's ticket snapshots.

Time events (SLA warnings, breaches, update reminders) carry no platform payload: the worker
evaluates them against the ticket as Escalator last saw it, so that view is kept per ticket.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime
from typing import Any, TypeVar

from connector.model import Plan, Requester, Status, Ticket, TicketRef


def ticket_to_json(ticket: Ticket) -> dict[str, Any]:
    """A JSON-ready form of `ticket`. The policy priority is not kept: it is derived again on use."""
    requester = ticket.requester
    return {
        "ref": _flat(ticket.ref),
        "title": ticket.title,
        "status": ticket.status.value,
        "platform_priority": ticket.platform_priority,
        "labels": sorted(ticket.labels),
        "assignee": ticket.assignee,
        "group": ticket.group,
        "requester": _flat(requester) if requester is not None else None,
        "fields": dict(ticket.fields),
        "created_at": _instant(ticket.created_at),
        "updated_at": _instant(ticket.updated_at),
        "version": ticket.version,
    }


def _flat(value: TicketRef | Requester) -> dict[str, Any]:
    """A flat dataclass's fields (strings only) as a dict: what dataclasses.asdict gives, without its
    deep copy, which cost more than the rest of the ticket's JSON (once per decision)."""
    return dict(vars(value))


def ticket_from_json(data: dict[str, Any]) -> Ticket:
    """The inverse of `ticket_to_json`."""
    requester = data.get("requester")
    return Ticket(
        ref=_known(TicketRef, data["ref"]),
        title=data.get("title", ""),
        status=Status(data.get("status", Status.OPEN.value)),
        platform_priority=data.get("platform_priority"),
        labels=frozenset(data.get("labels", ())),
        assignee=data.get("assignee"),
        group=data.get("group"),
        requester=_known(Requester, requester) if requester else None,
        fields=dict(data.get("fields") or {}),
        created_at=_parse(data.get("created_at")),
        updated_at=_parse(data.get("updated_at")),
        version=data.get("version"),
    )


_T = TypeVar("_T")


def _known(cls: type[_T], data: dict[str, Any]) -> _T:
    """`cls(**data)` with the fields this version knows: a snapshot a newer replica wrote (a rolling
    upgrade) may carry more, and reading it must not fail the delivery."""
    return cls(**{f.name: data[f.name] for f in dataclasses.fields(cls) if f.name in data})


def after_plan(ticket: Ticket, plan: Plan, *, labels: bool) -> Ticket:
    """What the ticket shows once the platform took `plan` (our writes' echoes may never come back).

    `labels` is False on a platform without a labels capability. The version is left as it was:
    the platform's new token is unknown, and a stale one only costs a re-read (a 409 on Zendesk).
    """
    fields = {**ticket.fields, **plan.fields}
    return Ticket(
        ref=ticket.ref,
        title=ticket.title,
        status=ticket.status,
        priority=ticket.priority,
        platform_priority=plan.priority if plan.priority is not None else ticket.platform_priority,
        labels=plan.labels_after if labels else ticket.labels,
        assignee=plan.assignee if plan.assignee is not None else ticket.assignee,
        group=plan.group if plan.group is not None else ticket.group,
        requester=ticket.requester,
        fields=fields,
        created_at=ticket.created_at,
        updated_at=ticket.updated_at,
        version=ticket.version,
    )


def _instant(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _parse(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None
