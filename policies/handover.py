"""Handover, pure: when a follow-the-sun team's calendar closes, its open tickets at that tier go to the team
chosen at that instant, with an internal note that tells the receiving team where the ticket stands.

`timer` says which handover timer a ticket should have armed (none when it is resolved, paused, not at a
follow-the-sun tier, or with no team of it); `decide` turns a fired handover into the actions of one write.
SLA clocks are not touched: they keep running on their own calendars.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from connector.model import Action, AddNote, EventKind, HandOver, Status, Ticket

from .calendars import zone
from .durations import format_duration
from .follow_the_sun import Rota, Team, handover_due
from .mapping import PlatformMapping
from .policy import METRICS, Policy
from .sla import SlaState, timers

KEY = "handover"
_FINAL = (Status.RESOLVED, Status.CLOSED)


@dataclass(frozen=True)
class HandoverTimer:
    """The handover timer of one ticket (what the timers store needs of a timer: see ArmedTimer)."""

    tier: str
    team: str  # the holder
    due: datetime
    calendar: str  # the holder's calendar

    key = KEY
    kind = EventKind.HANDOVER
    metric = KEY
    percent = 100
    target = timedelta()


def rota_of(mapping: PlatformMapping | None, tier: str | None) -> Rota | None:
    target = mapping.tiers.get(tier) if mapping is not None and tier else None
    return target.rota if target is not None else None


def timer(
    policy: Policy, platform: str, tier: str | None, ticket: Ticket | None, clocks: SlaState, now: datetime
) -> HandoverTimer | None:
    """The handover timer a ticket should have at `now`, or None: not at a follow-the-sun tier, with
    none of its teams (a person gave it to someone else), resolved, or paused."""
    rota = rota_of(policy.platforms.get(platform), tier)
    if rota is None or ticket is None or tier is None:
        return None
    if ticket.status in _FINAL or clocks.paused or clocks.started_at is None:
        return None  # (no clocks: the policy's scope leaves the ticket alone)
    holder = rota.holder(ticket)
    if holder is None:
        return None
    due = handover_due(rota, holder, now)
    if due is None:
        return None
    return HandoverTimer(tier, holder.name, due, holder.calendar.name)


@dataclass(frozen=True)
class Handover:
    """A fired handover's outcome: the actions of its one write and the reason the audit keeps."""

    actions: tuple[Action, ...]
    reason: str


def decide(
    policy: Policy,
    mapping: PlatformMapping,
    tier: str,
    ticket: Ticket,
    clocks: SlaState,
    closed_at: datetime,
    now: datetime,
) -> Handover | None:
    """What a handover timer that fired at `now` (its holder's close: `closed_at`) asks of the ticket;
    None when the holder is the right team again (the connector was down until it reopened)."""
    rota = rota_of(mapping, tier)
    holder = rota.holder(ticket) if rota is not None else None
    if rota is None or holder is None:
        return None
    choice = rota.choose(now)
    if choice.team == holder:
        return None
    to = choice.team
    reason = f"handover {tier}: {holder.name} closed at {_utc(closed_at)}; to {to.name}, {choice.why}"
    note = summary(policy, tier, ticket, clocks, holder, to, closed_at, now)
    return Handover((HandOver(tier, to.name, holder.name), AddNote(note, internal=True)), reason)


def summary(
    policy: Policy,
    tier: str,
    ticket: Ticket,
    clocks: SlaState,
    holder: Team,
    to: Team,
    closed_at: datetime,
    now: datetime,
) -> str:
    """The internal note for the receiving team: priority, tier, SLA clocks and what is due next, and the
    last public reply."""
    tz = zone(to.calendar.timezone)
    lines = [
        f"Escalator handover: {holder.name} → {to.name}. {holder.name}'s day ended at "
        f"{_local(closed_at, zone(holder.calendar.timezone))} ({_utc(closed_at)}); {to.name} works this "
        f"{tier} ticket now.",
        "",
        f"Priority {ticket.priority.value if ticket.priority else 'unknown'}, tier {tier}, "
        f"status {ticket.status.value}.",
    ]
    lines += _clock_lines(policy, clocks, now, tz)
    reply = clocks.last_reply
    if reply is None:
        lines.append("Last public reply: none yet.")
    else:
        who = (
            "the requester"
            if reply.by_requester
            else (f"agent {reply.author}" if reply.author else "an agent")
        )
        lines.append(f"Last public reply: {_local(reply.at, tz)}, by {who}: “{reply.excerpt}”")
    lines += ["", f"Why: policy {policy.name} v{policy.version}, {tier} follows the sun."]
    return "\n".join(lines)


def _clock_lines(policy: Policy, clocks: SlaState, now: datetime, tz) -> list[str]:
    sla = policy.sla
    if sla is None or clocks.started_at is None:
        return ["SLA: no clocks."]
    armed = timers(policy, clocks)
    out = [f"SLA clocks (calendar {clocks.calendar}; a handover does not reset them):"]
    for metric in METRICS:
        clock = clocks.clocks.get(metric)
        target = sla.target(clocks.priority, metric)
        if clock is None or target is None:
            continue
        name = metric.replace("_", " ")
        goal = format_duration(target.duration)
        if clock.breached:
            state = "breached"
        elif clock.stopped_at is not None:
            state = f"met at {_local(clock.stopped_at, tz)}"
        else:
            due = next((t.due for t in armed if t.metric == metric and t.percent == 100), None)
            state = f"due {_local(due, tz)}" if due is not None else "paused"
        out.append(f"- {name} ({goal}): {state}")
    upcoming = [t for t in armed if t.due >= now] or list(armed)
    if upcoming:
        first = upcoming[0]
        what = {100: "breach"} if first.metric != "update_every" else {100: "update reminder"}
        event = what.get(first.percent, f"{first.percent} % warning")
        out.append(f"Due next: {first.metric.replace('_', ' ')} {event} at {_local(first.due, tz)}.")
    return out


def _local(at: datetime, tz) -> str:
    local = at.astimezone(tz)
    return f"{local:%a %d %b %H:%M} {local.tzname()}"


def _utc(at: datetime) -> str:
    return f"{at.astimezone(UTC):%Y-%m-%d %H:%M} UTC"
