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

from sqlalchemy import TIMESTAMP, Engine, and_, case, cast, desc, func, literal_column, or_, select, union_all
from sqlalchemy.sql import Select

from connector.spreadsheet import cell
from connector.store.tables import (
    console_decisions,
    console_escalation_labels,
    console_rule_hits,
)
from console import charts
from console.clocks import ClockRows, Scope
from policies import Policy

D = console_decisions
TOP = 15
CLOCKED = ("first_response", "next_response", "resolution")  # update_every is a reminder, not a target


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
        writer.writerows([cell(v) for v in row] for row in self.rows)
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
    # The escalations (a few % of the log, by their own index) drive: joining the other way round
    # walked every rule hit in the log (2 s at a million records, 0.1 s like this).
    escalations = _scoped(select(D.c.seq).where(D.c.escalated.is_(True)), scope)
    hits, labelled = console_rule_hits, console_escalation_labels
    rules = (
        select(hits.c.rule, func.count().label("escalations"))
        .where(hits.c.seq.in_(escalations))
        .group_by(hits.c.rule)
        .order_by(desc("escalations"), hits.c.rule)
        .limit(TOP)
    )
    labels = (
        select(labelled.c.label, func.count().label("escalations"))
        .where(labelled.c.seq.in_(escalations))
        .group_by(labelled.c.label)
        .order_by(desc("escalations"), labelled.c.label)
        .limit(TOP)
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


def attainment(engine: Engine, policy: Policy, scope: Scope, now: datetime) -> Report:
    c = ClockRows(engine)
    parts = []
    for metric in CLOCKED:  # one statement: the tickets' states are read once for all clocks
        breached = c.sla("clocks", metric, "breached").as_boolean()
        stopped = c.sla("clocks", metric, "stopped_at").as_string()
        priority = c.priority().label("priority")
        met = and_(stopped.is_not(None), breached.is_not(True))
        parts.append(
            c.scoped(
                select(
                    literal_column(f"'{metric}'").label("metric"),
                    priority,
                    func.sum(case((met, 1), else_=0)).label("met"),
                    func.sum(case((breached.is_(True), 1), else_=0)).label("breached"),
                )
                .where(c.sla("clocks", metric, "started_at").as_string().is_not(None))
                .group_by(priority),
                scope,
            )
        )
    found = [(m, p, int(met), int(missed)) for m, p, met, missed in _run(engine, parts) if met or missed]
    found.sort(key=lambda r: (CLOCKED.index(r[0]), r[1]))
    rows = [(m, p, met, missed, _percent(met, met + missed)) for m, p, met, missed in found]
    queries = [_shown(engine, parts)]
    return Report(
        "attainment",
        "SLA attainment by clock and priority",
        "Of the clocks that have finished (stopped before their target, or breached), the share that met "
        "the target. Clocks still running are not counted until they stop or breach.",
        ("metric", "priority", "met", "breached", "attainment_percent"),
        rows,
        ";\n\n".join(queries),
        charts.hbars([f"{m} {p}" for m, p, *_ in rows], [r[4] for r in rows], unit="%", maximum=100),
    )


def durations(engine: Engine, policy: Policy, scope: Scope, now: datetime) -> Report:
    """First response and resolution times (wall clock, start to stop), median and p90 per priority."""
    samples: dict[tuple[str, str], list[float]] = defaultdict(list)
    c = ClockRows(engine)
    parts = []
    for metric in ("first_response", "resolution"):  # one statement, the states read once
        started = c.sla("clocks", metric, "started_at").as_string()
        stopped = c.sla("clocks", metric, "stopped_at").as_string()
        parts.append(
            c.scoped(
                select(literal_column(f"'{metric}'").label("metric"), c.priority(),
                       _hours(engine, started, stopped)).where(stopped.is_not(None)),
                scope,
            )
        )  # fmt: skip
    queries = [_shown(engine, parts)]
    for metric, priority, hours in _run(engine, parts):  # the database subtracts: no parsing here
        samples[(metric, priority)].append(float(hours))
    keys = sorted(samples, key=lambda k: (k[0] != "first_response", k[1]))
    rows = [
        (m, p, len(samples[(m, p)]), round(median(samples[(m, p)]), 3), round(p90(samples[(m, p)]), 3))
        for m, p in keys
    ]
    series = {"median": [r[3] for r in rows], "p90": [r[4] for r in rows]}
    labels = [f"{'FRT' if m == 'first_response' else 'TTR'} {p}" for m, p, *_ in rows]
    return Report(
        "durations",
        "First response time and time to resolution",
        "Hours from a clock's start to its stop (wall clock, pauses included), for tickets whose first "
        "response was given or that were resolved. Median and 90th percentile (nearest rank).",
        ("metric", "priority", "tickets", "median_hours", "p90_hours"),
        rows,
        ";\n\n".join(queries),
        charts.grouped_hbars(labels, series, unit="h"),
    )


def _hours(engine: Engine, start: Any, stop: Any) -> Any:
    """Hours between two ISO-8601 instants, computed by the database."""
    if engine.dialect.name == "postgresql":
        span = cast(stop, TIMESTAMP(timezone=True)) - cast(start, TIMESTAMP(timezone=True))
        return (func.extract("epoch", span) / 3600).label("hours")
    return ((func.julianday(stop) - func.julianday(start)) * 24).label("hours")


def fcr(engine: Engine, policy: Policy, scope: Scope, now: datetime) -> Report:
    first = policy.tiers[0] if policy.tiers else None
    c = ClockRows(engine)
    t = c.t
    # The escalated tickets once (a few % of the log, by the escalated index), joined by hash: an
    # EXISTS per resolved ticket walked each one's decisions (2.6 s at a million on PostgreSQL).
    escalated = (
        select(D.c.platform, D.c.ticket_id)
        .where(D.c.escalated.is_(True), D.c.ticket_id.is_not(None))
        .group_by(D.c.platform, D.c.ticket_id)
        .subquery("escalated")
    )
    joined = t.outerjoin(
        escalated, and_(escalated.c.platform == t.c.platform, escalated.c.ticket_id == t.c.ticket_id)
    )
    kept = and_(or_(t.c.tier.is_(None), t.c.tier == first), escalated.c.ticket_id.is_(None))
    stmt = c.scoped(
        select(
            t.c.platform,
            func.count().label("resolved"),
            func.sum(case((kept, 1), else_=0)).label("resolved_in_first_tier"),
        )
        .where(c.sla("resolved_at").as_string().is_not(None))
        .group_by(t.c.platform)
        .order_by(t.c.platform),
        scope,
        source=joined,
    )
    with engine.connect() as conn:
        counted = [(p, int(n), int(k)) for p, n, k in conn.execute(stmt)]
    rows = [(p, n, k, _percent(k, n)) for p, n, k in counted]
    if rows:
        total, kept_total = sum(n for _, n, _ in counted), sum(k for _, _, k in counted)
        rows.append(("all", total, kept_total, _percent(kept_total, total)))
    return Report(
        "fcr",
        "First contact resolution",
        f"Resolved tickets that were never escalated out of the first tier ({first}), per platform.",
        ("platform", "resolved", "resolved_in_first_tier", "fcr_percent"),
        rows,
        _sql(engine, stmt),
        charts.hbars([r[0] for r in rows], [r[3] for r in rows], unit="%", maximum=100),
    )


def _run(engine: Engine, parts: list[Select]) -> list[tuple[Any, ...]]:
    """Rows of several statements over the clocked tickets. PostgreSQL runs them as one UNION ALL, so
    its materialized CTE reads the states once; SQLite would copy every state into a temporary table
    for a CTE used twice, so it runs them one by one (each reads the JSON text in place)."""
    with engine.connect() as conn:
        if engine.dialect.name == "postgresql":
            return [tuple(r) for r in conn.execute(union_all(*parts))]
        return [tuple(r) for part in parts for r in conn.execute(part)]


def _shown(engine: Engine, parts: list[Select]) -> str:
    if engine.dialect.name == "postgresql":
        return _sql(engine, union_all(*parts))
    return ";\n\n".join(_sql(engine, part) for part in parts)


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
