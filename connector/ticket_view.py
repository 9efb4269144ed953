"""One ticket as Escalator knows it: its tier and priority, its SLA clocks with their due instants in
the calendar's zone, the timers armed for it, its last decisions and the events still waiting.

`ticket_view` returns plain data: `escalator ticket show` prints it, the console's ticket page and
API (console/tickets.py) show it: one source of truth for a ticket's clocks and timers.
It reads the store and computes the clocks under the policy given; it never writes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Engine, func, or_, select

from connector.codec import ticket_from_json
from connector.events import EventSummary, list_events
from connector.store.tables import audit_log, tickets, timers
from policies import Policy, SlaState
from policies import sla as sla_rules
from policies.calendars import due_at, elapsed

LAST_DECISIONS = 10


class TicketNotFound(LookupError):
    """No ticket with that key or id on that platform; the message says what Escalator does know."""


@dataclass(frozen=True)
class ClockView:
    """One SLA clock: its state and, while it runs, when it breaches (or reminds) and warns."""

    metric: str
    state: str  # running | overdue (breach due, not fired yet) | paused | stopped | breached | no_target
    started_at: datetime
    stopped_at: datetime | None
    target: timedelta | None
    calendar: str
    zone: str
    elapsed: timedelta | None  # open time run so far, pauses not counted (None: unknown, no target)
    due: datetime | None  # in the calendar's zone; None when stopped, paused, breached or without target
    warnings: tuple[tuple[int, datetime], ...]  # (percent, due) still to come, in the calendar's zone
    warned: tuple[int, ...] = ()  # warn_at percentages already fired
    breached_at: datetime | None = None  # a breached clock: when it breached, in the calendar's zone


@dataclass(frozen=True)
class TimerView:
    """One timer row in the database (what the SLA tick will fire)."""

    key: str
    kind: str
    metric: str
    percent: int
    due: datetime  # in its calendar's zone
    zone: str
    fired_at: datetime | None  # fired, waiting for a worker


@dataclass(frozen=True)
class DecisionView:
    """One audit record of the ticket, as far as an operator reads it at a glance."""

    seq: int
    at: datetime
    outcome: str
    trigger: str  # event kind, or operator / the platform's event type
    rules: tuple[str, ...]
    priority_from: str | None
    priority_to: str | None
    tier_from: str | None
    tier_to: str | None
    requests: int  # requests sent to the platform (planned, for a dry run)
    detail: str | None


@dataclass(frozen=True)
class TicketView:
    platform: str
    id: str
    key: str | None
    url: str | None
    title: str | None
    status: str | None
    platform_priority: str | None
    labels: tuple[str, ...]
    tier: str | None
    priority: str | None
    priority_pinned: bool
    updated_at: datetime | None
    sla_priority: str | None  # the priority the clocks are measured against
    calendar: str | None
    zone: str
    paused_since: datetime | None
    resolved_at: datetime | None
    clocks: tuple[ClockView, ...]
    timers: tuple[TimerView, ...]
    decisions: tuple[DecisionView, ...]  # newest first
    open_events: tuple[EventSummary, ...]  # failed, retrying, pending or processing; newest first
    policy: str  # the policy the clocks were computed under

    def to_json(self) -> dict[str, Any]:
        return _jsonable(self)


def ticket_view(
    engine: Engine,
    policy: Policy,
    platform: str,
    key_or_id: str,
    *,
    now: datetime | None = None,
    decisions: int = LAST_DECISIONS,
) -> TicketView:
    """The ticket of `platform` whose id or key is `key_or_id` (a key matches case-insensitively)."""
    now = now or datetime.now(UTC)
    with engine.connect() as conn:
        row, key = _find(conn, platform, key_or_id)
        timer_rows = conn.execute(
            select(timers)
            .where(timers.c.platform == platform, timers.c.ticket_id == row.ticket_id)
            .order_by(timers.c.due_at, timers.c.key)
        ).all()
        audit_rows = conn.execute(
            select(audit_log.c.seq, audit_log.c.record)
            .where(audit_log.c.platform == platform, audit_log.c.ticket_id == row.ticket_id)
            .order_by(audit_log.c.seq.desc())
            .limit(max(0, decisions))
        ).all()
    snapshot = ticket_from_json(row.snapshot) if row.snapshot else None
    state = SlaState.from_json(row.sla)
    zone = _zone_of(policy, state.calendar)
    return TicketView(
        platform=platform,
        id=row.ticket_id,
        key=key,
        url=snapshot.ref.url if snapshot else None,
        title=snapshot.title if snapshot else None,
        status=snapshot.status.value if snapshot else None,
        platform_priority=snapshot.platform_priority if snapshot else None,
        labels=tuple(sorted(snapshot.labels)) if snapshot else (),
        tier=row.tier,
        priority=row.priority,
        priority_pinned=bool(row.priority_pinned),
        updated_at=row.updated_at,
        sla_priority=state.priority.value if state.priority else None,
        calendar=state.calendar or None,
        zone=zone,
        paused_since=_local(state.paused_since, zone),
        resolved_at=_local(state.resolved_at, zone),
        clocks=_clocks(policy, state, now),
        timers=tuple(_timer(policy, r) for r in timer_rows),
        decisions=tuple(_decision(r.seq, json.loads(r.record)) for r in audit_rows),
        open_events=tuple(list_events(engine, platform=platform, ticket_id=row.ticket_id)),
        policy=f"{policy.name} v{policy.version}",
    )


def _find(conn, platform: str, key_or_id: str):
    base = select(tickets).where(tickets.c.platform == platform)
    row = conn.execute(base.where(tickets.c.ticket_id == key_or_id)).first()
    if row is None:
        rows = conn.execute(
            base.where(
                or_(tickets.c.ticket_key == key_or_id, func.lower(tickets.c.ticket_key) == key_or_id.lower())
            ).limit(2)
        ).all()
        exact = [r for r in rows if r.ticket_key == key_or_id]
        row = exact[0] if exact else (rows[0] if len(rows) == 1 else None)
    if row is not None:
        return row, row.ticket_key
    found = _find_keyless(conn, platform, key_or_id)
    if found is None:
        known = conn.execute(select(func.count()).select_from(tickets).where(tickets.c.platform == platform))
        raise TicketNotFound(
            f"Escalator has no {platform} ticket with key or id {key_or_id!r} "
            f"({known.scalar()} {platform} tickets known): it has not received an event for it yet, "
            "or the key is another platform's"
        )
    return found


def _find_keyless(conn, platform: str, key: str):
    """A ticket whose events all failed has no key in its memory; its audit records name it."""
    keyless = conn.execute(
        select(tickets).where(tickets.c.platform == platform, tickets.c.ticket_key.is_(None)).limit(1000)
    ).all()
    for row in keyless:
        records = conn.execute(
            select(audit_log.c.record)
            .where(audit_log.c.platform == platform, audit_log.c.ticket_id == row.ticket_id)
            .order_by(audit_log.c.seq.desc())
            .limit(5)
        ).scalars()
        for record in records:
            named = (json.loads(record).get("ticket") or {}).get("key")
            if named and named.lower() == key.lower():
                return row, named
    return None


def _zone_of(policy: Policy, calendar: str | None) -> str:
    if policy.sla is None:
        return "UTC"
    return policy.sla.calendar(calendar or policy.sla.default_calendar).timezone


def _local(at: datetime | None, zone: str) -> datetime | None:
    return at.astimezone(ZoneInfo(zone)) if at is not None else None


def _clocks(policy: Policy, state: SlaState, now: datetime) -> tuple[ClockView, ...]:
    sla = policy.sla
    if sla is None or state.started_at is None:
        return ()
    wanted = sla_rules.timers(policy, state)
    pauses = state.all_pauses()
    out = []
    for metric, clock in state.clocks.items():
        target = sla.target(state.priority, metric)
        calendar = sla.calendar_of(target, state.calendar) if target else sla.calendar(state.calendar)
        zone = calendar.timezone
        mine = [t for t in wanted if t.metric == metric]
        due = next((t.due for t in mine if t.percent == sla_rules.BREACH), None)
        if target is None:
            status = "no_target"
        elif clock.breached:
            status = "breached"
        elif clock.stopped_at is not None:
            status = "stopped"
        elif state.paused:
            status = "paused"
        else:
            status = "overdue" if due is not None and due <= now else "running"
        until = clock.stopped_at or now
        breached_at = None
        if clock.breached and target is not None:  # kept when the breach fired; older states: computed
            breached_at = clock.due or due_at(calendar, clock.started_at, target.duration, pauses)
        out.append(
            ClockView(
                metric=metric,
                state=status,
                started_at=_local(clock.started_at, zone),
                stopped_at=_local(clock.stopped_at, zone),
                target=target.duration if target else None,
                calendar=calendar.name,
                zone=zone,
                elapsed=elapsed(calendar, clock.started_at, until, pauses) if target else None,
                due=_local(due, zone),
                warnings=tuple(
                    (t.percent, _local(t.due, zone)) for t in mine if t.percent != sla_rules.BREACH
                ),
                warned=tuple(sorted(clock.warned)),
                breached_at=_local(breached_at, zone),
            )
        )
    return tuple(out)


def _timer(policy: Policy, row) -> TimerView:
    zone = policy.sla.calendar(row.calendar).timezone if policy.sla is not None else "UTC"
    return TimerView(
        key=row.key,
        kind=row.kind,
        metric=row.metric,
        percent=row.percent,
        due=_local(row.due_at, zone),
        zone=zone,
        fired_at=row.fired_at,
    )


def _decision(seq: int, record: dict[str, Any]) -> DecisionView:
    trigger = record.get("trigger") or {}
    priority = record.get("priority") or {}
    tier = record.get("tier") or {}
    sent = record.get("actions_applied") or []
    return DecisionView(
        seq=seq,
        at=datetime.fromisoformat(record["at"]),
        outcome=record.get("outcome", ""),
        trigger=trigger.get("kind") or trigger.get("event_type") or "",
        rules=tuple(record.get("rules") or ()),
        priority_from=priority.get("from"),
        priority_to=priority.get("to"),
        tier_from=tier.get("from"),
        tier_to=tier.get("to"),
        requests=len(sent) if sent else len(record.get("requests") or ()),
        detail=record.get("detail"),
    )


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, EventSummary):
        return value.to_json()
    if hasattr(value, "__dataclass_fields__"):
        return {name: _jsonable(getattr(value, name)) for name in value.__dataclass_fields__}
    if isinstance(value, tuple | list):
        return [_jsonable(v) for v in value]
    return value
