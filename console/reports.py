"""The reports: escalation volume, SLA attainment, first response and resolution times, first contact
resolution, the rules and labels behind escalations, breaches by calendar and region.

Each report is a table (its CSV) with the query that produced it, so every figure can be traced back:
the audit-derived ones to `console_decisions` (one row per audit record, see console/facts.py), the
clock-derived ones to the SLA clock facts each ticket row keeps (`tickets.sla`).
"""

from __future__ import annotations

import csv
import io
import math
import statistics
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, desc, func, literal_column, select
from sqlalchemy.sql import Select

from connector.store.tables import (
    console_decisions,
    console_escalation_labels,
    console_rule_hits,
    tickets,
)
from console import charts
from policies import Policy
from policies.sla import SlaState

D = console_decisions
TOP = 15
CLOCKED = ("first_response", "next_response", "resolution")  # update_every is a reminder, not a target


@dataclass(frozen=True)
class Scope:
    """The slice a report covers: a time range (UTC) and optionally one platform."""

    since: datetime | None = None
    until: datetime | None = None
    platform: str | None = None


@dataclass
class Report:
    name: str
    title: str
    about: str
    columns: tuple[str, ...]
    rows: list[tuple[Any, ...]]
    query: str
    chart: str = ""
    notes: list[str] = field(default_factory=list)

    def csv(self) -> str:
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(self.columns)
        writer.writerows(self.rows)
        return out.getvalue()

    def as_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "title": self.title,
            "about": self.about,
            "columns": list(self.columns),
            "rows": [[_plain(v) for v in row] for row in self.rows],
            "query": self.query,
            "notes": self.notes,
        }


def _plain(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else value


def _sql(engine: Engine, stmt: Select) -> str:
    return str(stmt.compile(engine, compile_kwargs={"literal_binds": True}))


def _scoped(stmt: Select, scope: Scope, at: Any = D.c.at, platform: Any = D.c.platform) -> Select:
    if scope.since:
        stmt = stmt.where(at >= scope.since)
    if scope.until:
        stmt = stmt.where(at < scope.until)
    if scope.platform:
        stmt = stmt.where(platform == scope.platform)
    return stmt


def _week(engine: Engine) -> Any:
    """The Monday (UTC) of a decision's week, as YYYY-MM-DD, on either backend."""
    if engine.dialect.name == "sqlite":
        return func.date(D.c.at, "weekday 0", "-6 days")
    return func.to_char(func.date_trunc("week", func.timezone("UTC", D.c.at)), "YYYY-MM-DD")


# --- from the audit log ---------------------------------------------------------------------------


def escalations(engine: Engine, policy: Policy, scope: Scope, now: datetime) -> Report:
    week = _week(engine).label("week")
    stmt = _scoped(
        select(week, D.c.tier_to.label("tier"), D.c.platform, func.count().label("escalations"))
        .where(D.c.escalated.is_(True))
        .group_by(week, D.c.tier_to, D.c.platform)
        .order_by(week, D.c.tier_to, D.c.platform),
        scope,
    )
    with engine.connect() as conn:
        rows = [tuple(r) for r in conn.execute(stmt)]
    weeks = sorted({r[0] for r in rows})
    order = {t: i for i, t in enumerate(policy.tiers)}
    tiers = sorted({r[1] for r in rows}, key=lambda t: (order.get(t, len(order)), t))
    series = {t: [sum(r[3] for r in rows if r[0] == w and r[1] == t) for w in weeks] for t in tiers}
    return Report(
        "escalations",
        "Escalation volume by week, tier and platform",
        "Decisions that moved a ticket to another tier (applied, or decided in dry run), by the week "
        "(Monday, UTC) they were made, the tier reached and the platform. Bars stack the tiers.",
        ("week", "tier", "platform", "escalations"),
        rows,
        _sql(engine, stmt),
        charts.stacked_bars(weeks, series, unit="escalations"),
    )


def top_causes(engine: Engine, policy: Policy, scope: Scope, now: datetime) -> Report:
    rules = _scoped(
        select(console_rule_hits.c.rule, func.count().label("escalations"))
        .join(D, D.c.seq == console_rule_hits.c.seq)
        .where(D.c.escalated.is_(True))
        .group_by(console_rule_hits.c.rule)
        .order_by(desc("escalations"), console_rule_hits.c.rule)
        .limit(TOP),
        scope,
    )
    labels = _scoped(
        select(console_escalation_labels.c.label, func.count().label("escalations"))
        .join(D, D.c.seq == console_escalation_labels.c.seq)
        .group_by(console_escalation_labels.c.label)
        .order_by(desc("escalations"), console_escalation_labels.c.label)
        .limit(TOP),
        scope,
    )
    with engine.connect() as conn:
        by_rule = [("rule", r, n) for r, n in conn.execute(rules)]
        by_label = [("label", lab, n) for lab, n in conn.execute(labels)]
    chart = charts.hbars([f"rule {r}" for _, r, _ in by_rule], [n for *_, n in by_rule], unit="escalations")
    chart += charts.hbars(
        [f"label {lab}" for _, lab, _ in by_label], [n for *_, n in by_label], unit="escalations"
    )
    return Report(
        "causes",
        "Rules and labels behind escalations",
        f"The {TOP} rules that fired most often in escalating decisions, and the {TOP} labels the tickets "
        "carried when they were escalated: where recurring escalations come from.",
        ("kind", "name", "escalations"),
        by_rule + by_label,
        _sql(engine, rules) + ";\n\n" + _sql(engine, labels),
        chart,
    )


def breaches(engine: Engine, policy: Policy, scope: Scope, now: datetime) -> Report:
    calendar = func.coalesce(D.c.sla_calendar, literal_column("'(none)'")).label("calendar")
    region = func.coalesce(D.c.region, literal_column("'(unknown)'")).label("region")
    stmt = _scoped(
        select(calendar, region, D.c.sla_metric.label("metric"), func.count().label("breaches"))
        .where(D.c.trigger_kind == "sla.breached")
        .group_by(calendar, region, D.c.sla_metric)
        .order_by(desc("breaches"), calendar, region, D.c.sla_metric),
        scope,
    )
    with engine.connect() as conn:
        rows = [tuple(r) for r in conn.execute(stmt)]
    totals: Counter[str] = Counter()
    for cal, reg, _metric, n in rows:
        totals[f"{cal} / {reg}"] += n
    top = totals.most_common(TOP)
    return Report(
        "breaches",
        "SLA breaches by calendar and region",
        "Breach events the SLA timers raised (one per clock that ran out), by the ticket's calendar, the "
        "requester's region and the clock.",
        ("calendar", "region", "metric", "breaches"),
        rows,
        _sql(engine, stmt),
        charts.hbars([k for k, _ in top], [n for _, n in top], unit="breaches"),
    )


# --- from the SLA clock facts each ticket keeps ---------------------------------------------------


def _clock_rows(engine: Engine, scope: Scope) -> tuple[list[tuple[str, str, str | None, SlaState]], str]:
    stmt = select(tickets.c.platform, tickets.c.ticket_id, tickets.c.tier, tickets.c.sla).where(
        tickets.c.sla.is_not(None)
    )
    if scope.platform:
        stmt = stmt.where(tickets.c.platform == scope.platform)
    out = []
    with engine.connect() as conn:
        for platform, ticket_id, tier, sla in conn.execute(stmt):
            state = SlaState.from_json(sla)
            if state.started_at is None:
                continue
            if (
                scope.since
                and state.started_at < scope.since
                or scope.until
                and state.started_at >= scope.until
            ):
                continue
            out.append((platform, ticket_id, tier, state))
    return out, _sql(
        engine, stmt
    ) + "\n-- each row's clocks are read from the JSON; the time range is on its start"


def _priority(state: SlaState) -> str:
    return state.priority.value if state.priority else "(none)"


def attainment(engine: Engine, policy: Policy, scope: Scope, now: datetime) -> Report:
    states, query = _clock_rows(engine, scope)
    met: Counter[tuple[str, str]] = Counter()
    missed: Counter[tuple[str, str]] = Counter()
    for _, _, _, state in states:
        for metric, clock in state.clocks.items():
            if metric not in CLOCKED:
                continue
            key = (metric, _priority(state))
            if clock.breached:
                missed[key] += 1
            elif clock.stopped_at is not None:
                met[key] += 1
    keys = sorted(set(met) | set(missed), key=lambda k: (CLOCKED.index(k[0]), k[1]))
    rows = [
        (m, p, met[(m, p)], missed[(m, p)], _percent(met[(m, p)], met[(m, p)] + missed[(m, p)]))
        for m, p in keys
    ]
    return Report(
        "attainment",
        "SLA attainment by clock and priority",
        "Of the clocks that have finished (stopped before their target, or breached), the share that met "
        "the target. Clocks still running are not counted until they stop or breach.",
        ("metric", "priority", "met", "breached", "attainment_percent"),
        rows,
        query,
        charts.hbars([f"{m} {p}" for m, p, *_ in rows], [r[4] for r in rows], unit="%", maximum=100),
    )


def durations(engine: Engine, policy: Policy, scope: Scope, now: datetime) -> Report:
    """First response and resolution times (wall clock, start to stop), median and p90 per priority."""
    states, query = _clock_rows(engine, scope)
    samples: dict[tuple[str, str], list[float]] = defaultdict(list)
    for _, _, _, state in states:
        for metric in ("first_response", "resolution"):
            clock = state.clocks.get(metric)
            if clock is not None and clock.stopped_at is not None:
                hours = (clock.stopped_at - clock.started_at).total_seconds() / 3600
                samples[(metric, _priority(state))].append(hours)
    keys = sorted(samples, key=lambda k: (k[0] != "first_response", k[1]))
    rows = [
        (m, p, len(samples[(m, p)]), round(median(samples[(m, p)]), 3), round(p90(samples[(m, p)]), 3))
        for m, p in keys
    ]
    series = {
        "median": [r[3] for r in rows],
        "p90": [r[4] for r in rows],
    }
    return Report(
        "durations",
        "First response time and time to resolution",
        "Hours from a clock's start to its stop (wall clock, pauses included), for tickets whose first "
        "response was given or that were resolved. Median and 90th percentile (nearest rank).",
        ("metric", "priority", "tickets", "median_hours", "p90_hours"),
        rows,
        query,
        charts.grouped_hbars(
            [f"{'FRT' if m == 'first_response' else 'TTR'} {p}" for m, p, *_ in rows], series, unit="h"
        ),
    )


def fcr(engine: Engine, policy: Policy, scope: Scope, now: datetime) -> Report:
    states, query = _clock_rows(engine, scope)
    escalated_stmt = (
        select(D.c.platform, D.c.ticket_id)
        .where(D.c.escalated.is_(True))
        .group_by(D.c.platform, D.c.ticket_id)
    )
    with engine.connect() as conn:
        escalated = {(p, t) for p, t in conn.execute(escalated_stmt)}
    first = policy.tiers[0] if policy.tiers else None
    resolved: Counter[str] = Counter()
    first_tier: Counter[str] = Counter()
    for platform, ticket_id, tier, state in states:
        if state.resolved_at is None:
            continue
        resolved[platform] += 1
        if (platform, ticket_id) not in escalated and tier in (None, first):
            first_tier[platform] += 1
    rows = [(p, resolved[p], first_tier[p], _percent(first_tier[p], resolved[p])) for p in sorted(resolved)]
    if rows:
        total, kept = sum(resolved.values()), sum(first_tier.values())
        rows.append(("all", total, kept, _percent(kept, total)))
    return Report(
        "fcr",
        "First contact resolution",
        f"Resolved tickets that were never escalated out of the first tier ({first}), per platform.",
        ("platform", "resolved", "resolved_in_first_tier", "fcr_percent"),
        rows,
        query + ";\n\n" + _sql(engine, escalated_stmt),
        charts.hbars([r[0] for r in rows], [r[3] for r in rows], unit="%", maximum=100),
    )


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else 0.0


def p90(values: Sequence[float]) -> float:
    """Nearest-rank 90th percentile: the smallest value with at least 90 % of the sample at or below it."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[max(0, math.ceil(0.9 * len(ordered)) - 1)]


def _percent(part: int, whole: int) -> float:
    return round(100 * part / whole, 1) if whole else 0.0


REPORTS: dict[str, tuple[str, Callable[[Engine, Policy, Scope, datetime], Report]]] = {
    "escalations": ("Escalation volume", escalations),
    "attainment": ("SLA attainment", attainment),
    "durations": ("FRT and resolution time", durations),
    "fcr": ("First contact resolution", fcr),
    "causes": ("Rules and labels behind escalations", top_causes),
    "breaches": ("Breaches by calendar", breaches),
}
