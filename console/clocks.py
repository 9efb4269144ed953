"""SLA clocks as people read them: running / paused / met / breached, with the warning and breach
instants (UTC and in the calendar's own zone), computed by the policy's own calendar arithmetic."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Engine, func, literal_column, select
from sqlalchemy.sql import Select

from connector.store.tables import tickets
from console.sla_json import SlaValues
from policies import Policy
from policies.calendars import due_at
from policies.sla import METRICS, SlaState, share

STATUSES = ("running", "paused", "met", "breached")


@dataclass(frozen=True)
class Scope:
    """The slice a report covers: a time range (UTC) and optionally one platform."""

    since: datetime | None = None
    until: datetime | None = None
    platform: str | None = None


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


class ClockRows:
    """The tickets with SLA state, as one row source for the clock reports: each ticket's state read
    once per report (console/sla_json.py), in a materialized CTE."""

    PATHS: tuple[tuple[str, ...], ...] = (
        ("started_at",), ("resolved_at",), ("priority",), ("calendar",),
        *(("clocks", m, field) for m in METRICS for field in ("started_at", "stopped_at", "breached")),
    )  # fmt: skip

    def __init__(self, engine: Engine):
        self.values = SlaValues(engine, self.PATHS)
        state = self.values.column().label("state")
        cte = (
            select(tickets.c.platform, tickets.c.ticket_id, tickets.c.tier, state)
            .where(tickets.c.sla.is_not(None))
            .cte("clocked")
        )
        self.t = cte.prefix_with("MATERIALIZED")

    def sla(self, *path: str) -> Any:
        """A value inside the SLA state's JSON, read by the database itself."""
        return self.values.read(self.t.c.state, *path)

    def scoped(self, stmt: Select, scope: Scope, *, source: Any = None) -> Select:
        """Started within the scope (instants compare as ISO-8601 UTC text), on the scope's platform."""
        started = self.sla("started_at").as_string()
        stmt = stmt.select_from(self.t if source is None else source).where(started.is_not(None))
        if scope.since:
            stmt = stmt.where(started >= scope.since.astimezone(UTC).isoformat())
        if scope.until:
            stmt = stmt.where(started < scope.until.astimezone(UTC).isoformat())
        if scope.platform:
            stmt = stmt.where(self.t.c.platform == scope.platform)
        return stmt

    def priority(self) -> Any:
        return func.coalesce(self.sla("priority").as_string(), literal_column("'(none)'"))
