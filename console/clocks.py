"""SLA clocks as people read them: running / paused / met / breached, with the warning and breach
instants (UTC and in the calendar's own zone), computed by the policy's own calendar arithmetic."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Engine, select

from connector.store.tables import tickets
from policies import Policy
from policies.calendars import due_at
from policies.sla import METRICS, SlaState, share

STATUSES = ("running", "paused", "met", "breached")


def clock_states(policy: Policy, state: SlaState, now: datetime) -> list[dict[str, Any]]:
    """One entry per clock the ticket has, in METRICS order."""
    sla = policy.sla
    if sla is None or state.started_at is None:
        return []
    pauses = state.all_pauses()
    out = []
    for metric in sorted(state.clocks, key=lambda m: METRICS.index(m) if m in METRICS else len(METRICS)):
        clock = state.clocks[metric]
        target = sla.target(state.priority, metric)
        calendar = sla.calendar_of(target, state.calendar) if target else None
        breach = warn = None
        if target is not None and calendar is not None:
            breach = due_at(calendar, clock.started_at, target.duration, pauses)
            shares = [p for p in sla.warn_at if p < 100] if metric != "update_every" else []
            if shares:
                warn = due_at(calendar, clock.started_at, share(target.duration, min(shares)), pauses)
        if clock.breached or (clock.stopped_at is None and breach is not None and now >= breach):
            status = "breached"
        elif clock.stopped_at is not None:
            status = "met"
        elif state.paused or breach is None and target is not None:
            status = "paused"
        else:
            status = "running"
        zone = calendar.timezone if calendar else "UTC"
        out.append(
            {
                "metric": metric,
                "status": status,
                "open": clock.stopped_at is None and state.resolved_at is None,
                "at_risk": status == "running" and (bool(clock.warned) or (warn is not None and now >= warn)),
                "started_at": clock.started_at,
                "stopped_at": clock.stopped_at,
                "target_seconds": target.duration.total_seconds() if target else None,
                "calendar": calendar.name if calendar else None,
                "timezone": zone,
                "warn_at": warn,
                "due_at": breach,
                "due_local": _local(breach, zone),
                "warned": sorted(clock.warned),
            }
        )
    return out


def _local(at: datetime | None, zone: str) -> str | None:
    if at is None:
        return None
    return at.astimezone(ZoneInfo(zone)).strftime("%Y-%m-%d %H:%M %Z")


def open_ticket_states(engine: Engine) -> Iterator[Mapping[str, Any]]:
    """Tickets with SLA clocks that are not resolved (the board's candidates)."""
    query = select(
        tickets.c.platform,
        tickets.c.ticket_id,
        tickets.c.ticket_key,
        tickets.c.tier,
        tickets.c.priority,
        tickets.c.sla,
    ).where(tickets.c.sla.is_not(None))
    with engine.connect() as conn:
        for row in conn.execute(query):
            if row.sla and not row.sla.get("resolved_at"):
                yield row._mapping


def board(
    engine: Engine, policy: Policy, now: datetime, *, filters: Mapping[str, str | None] | None = None
) -> list[dict[str, Any]]:
    """Open clocks at risk (past the first warn_at share) or breached, soonest due first."""
    filters = {k: v for k, v in (filters or {}).items() if v}
    out = []
    for row in open_ticket_states(engine):
        state = SlaState.from_json(row["sla"])
        if filters.get("platform") and row["platform"] != filters["platform"]:
            continue
        priority = state.priority.value if state.priority else row["priority"]
        if filters.get("priority") and priority != filters["priority"]:
            continue
        if filters.get("tier") and row["tier"] != filters["tier"]:
            continue
        for clock in clock_states(policy, state, now):
            if not clock["open"] or not (clock["at_risk"] or clock["status"] == "breached"):
                continue
            if filters.get("calendar") and clock["calendar"] != filters["calendar"]:
                continue
            out.append(
                {
                    "platform": row["platform"],
                    "ticket_id": row["ticket_id"],
                    "ticket_key": row["ticket_key"] or row["ticket_id"],
                    "priority": priority,
                    "tier": row["tier"],
                    "metric": clock["metric"],
                    "status": "breached" if clock["status"] == "breached" else "at_risk",
                    "calendar": clock["calendar"],
                    "timezone": clock["timezone"],
                    "due_at": clock["due_at"],
                    "due_local": clock["due_local"],
                    "seconds_left": (clock["due_at"] - now).total_seconds() if clock["due_at"] else None,
                }
            )
    far = datetime.max.replace(tzinfo=now.tzinfo)
    out.sort(key=lambda r: (r["due_at"] or far, r["platform"], r["ticket_key"], r["metric"]))
    return out
