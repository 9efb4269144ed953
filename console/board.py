"""The SLA board: open clocks at risk (past the first warn_at share) or breached, soonest due first,
one page at a time.

The database does the finding, ordering and paging, so a page costs the same at a thousand open
tickets as at ten: open tickets come by their index (`tickets.sla_open`), a running clock's due
instant from its armed breach timer, a breach's from its clock (`Clock.due`, kept when it fired), and
"at risk" is a fired warning (`warned`) or a warning timer already due. Calendar arithmetic runs only
for a row shown whose instant the store does not keep (a breach in a state written before breaches
kept theirs); such rows, overdue by definition, sort first.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    TIMESTAMP,
    Engine,
    and_,
    case,
    cast,
    exists,
    func,
    literal,
    or_,
    select,
    union_all,
)

from connector.model import Priority
from connector.store.tables import tickets, timers
from console.clocks import _local, clock_states
from console.sla_json import SlaValues
from policies import Policy
from policies.sla import METRICS, SlaState

PAGE = 100
FILTERS = ("platform", "priority", "tier", "calendar")


def board(
    engine: Engine,
    policy: Policy,
    now: datetime,
    *,
    filters: Mapping[str, str | None] | None = None,
    limit: int = PAGE,
    offset: int = 0,
) -> list[dict[str, Any]]:
    """Up to `limit` board rows after the first `offset`, soonest due first."""
    filters = {k: v for k, v in (filters or {}).items() if v}
    if any("\x00" in v for v in filters.values()):
        return []  # no name holds a NUL (and PostgreSQL refuses one in a parameter)
    postgres = engine.dialect.name == "postgresql"
    paths: list[tuple[str, ...]] = [("priority",), ("calendar",), ("paused_since",)]
    paths += [
        ("clocks", m, f) for m in METRICS for f in ("started_at", "stopped_at", "breached", "warned", "due")
    ]
    sla = SlaValues(engine, paths)
    opened = select(
        tickets.c.platform, tickets.c.ticket_id, tickets.c.ticket_key, tickets.c.tier, tickets.c.priority,
        sla.column().label("state"),
    ).where(tickets.c.sla_open.is_(True))  # fmt: skip
    for column in ("platform", "tier"):
        if filters.get(column):
            opened = opened.where(tickets.c[column] == filters[column])
    src = opened.cte("open_states").prefix_with("MATERIALIZED")  # the array made once per ticket

    def value(*path: str) -> Any:
        return sla.read(src.c.state, *path)

    # Every value the branches read, out of the JSON once per open ticket (MATERIALIZED: the four
    # branches read the CTE, not the JSON again).
    fields = [
        src.c.platform, src.c.ticket_id, src.c.ticket_key, src.c.tier,
        func.coalesce(value("priority").as_string(), src.c.priority).label("priority"),
        func.coalesce(value("calendar").as_string(), literal(_default_calendar(policy))).label("chosen"),
        value("paused_since").as_string().label("paused_since"),
    ]  # fmt: skip
    for metric in METRICS:
        fields += [
            value("clocks", metric, "started_at").as_string().label(f"{metric}_started"),
            value("clocks", metric, "stopped_at").as_string().label(f"{metric}_stopped"),
            value("clocks", metric, "breached").as_boolean().label(f"{metric}_breached"),
            value("clocks", metric, "warned").as_string().label(f"{metric}_warned"),
            value("clocks", metric, "due").as_string().label(f"{metric}_due"),
        ]
    o = select(*fields).cte("opened").prefix_with("MATERIALIZED")
    priority = o.c.priority

    def instant(value: Any) -> Any:
        """A stored instant comparable with another (ISO text in JSON, a timestamp in a column)."""
        return cast(value, TIMESTAMP(timezone=True)) if postgres else func.julianday(value)

    branches = []
    for metric in METRICS:
        breach = timers.alias(f"breach_{metric}")
        warning = timers.alias(f"warning_{metric}")
        kept = o.c[f"{metric}_due"]
        warned = o.c[f"{metric}_warned"]
        flagged = o.c[f"{metric}_breached"].is_(True)
        warning_due = exists().where(
            warning.c.platform == o.c.platform, warning.c.ticket_id == o.c.ticket_id,
            warning.c.metric == metric, warning.c.percent < 100, warning.c.due_at <= now,
        )  # fmt: skip
        at_risk = and_(
            o.c.paused_since.is_(None),
            or_(and_(warned.is_not(None), warned != "[]"), warning_due),
        )
        calendar = _calendar_case(policy, metric, priority, o.c.chosen)
        branch = (
            select(
                o.c.platform,
                o.c.ticket_id,
                o.c.ticket_key,
                o.c.tier,
                priority.label("priority"),
                literal(metric).label("metric"),
                case((or_(flagged, breach.c.due_at <= now), "breached"), else_="at_risk").label("status"),
                kept.label("kept_due"),
                breach.c.due_at.label("timer_due"),
                func.coalesce(breach.c.calendar, calendar).label("calendar"),
                func.coalesce(instant(kept), instant(breach.c.due_at)).label("sort_due"),
            )  # fmt: skip
            .select_from(
                o.outerjoin(
                    breach,
                    and_(
                        breach.c.platform == o.c.platform,
                        breach.c.ticket_id == o.c.ticket_id,
                        breach.c.metric == metric,
                        breach.c.percent == 100,
                    ),
                )  # fmt: skip
            )
            .where(
                o.c[f"{metric}_started"].is_not(None),
                o.c[f"{metric}_stopped"].is_(None),
                or_(flagged, breach.c.due_at <= now, at_risk),
            )
        )
        if filters.get("priority"):
            branch = branch.where(priority == filters["priority"])
        if filters.get("calendar"):
            branch = branch.where(func.coalesce(breach.c.calendar, calendar) == filters["calendar"])
        branches.append(branch)
    rows = union_all(*branches).subquery("board")
    query = (
        select(rows)
        # An instant not kept is a breach (a running clock has its timer): it is overdue, so it goes first.
        .order_by(rows.c.sort_due.is_not(None), rows.c.sort_due, rows.c.platform, rows.c.ticket_key)
        .order_by(rows.c.metric)
        .limit(limit)
        .offset(offset)
    )
    with engine.connect() as conn:
        found = conn.execute(query).all()
    return [_row(engine, policy, r, now) for r in found]


def _row(engine: Engine, policy: Policy, r: Any, now: datetime) -> dict[str, Any]:
    due = _at(r.kept_due) or _utc(r.timer_due)
    if due is None:
        due = _computed(engine, policy, r.platform, r.ticket_id, r.metric, now)
    zone = policy.sla.calendar(r.calendar).timezone if policy.sla is not None and r.calendar else "UTC"
    return {
        "platform": r.platform,
        "ticket_id": r.ticket_id,
        "ticket_key": r.ticket_key or r.ticket_id,
        "priority": r.priority,
        "tier": r.tier,
        "metric": r.metric,
        "status": r.status,
        "calendar": r.calendar,
        "timezone": zone,
        "due_at": due,
        "due_local": _local(due, zone),
        "seconds_left": (due - now).total_seconds() if due else None,
    }


def _computed(engine: Engine, policy: Policy, platform: str, ticket_id: str, metric: str, now: datetime):
    """The due instant by the policy's calendar arithmetic: for a clock whose instant is not kept."""
    with engine.connect() as conn:
        state = conn.execute(
            select(tickets.c.sla).where(tickets.c.platform == platform, tickets.c.ticket_id == ticket_id)
        ).scalar_one_or_none()
    for clock in clock_states(policy, SlaState.from_json(state), now):
        if clock["metric"] == metric:
            return clock["due_at"]
    return None


def _calendar_case(policy: Policy, metric: str, priority: Any, chosen: Any) -> Any:
    """The calendar a clock runs on, as SQL: its priority's target's own calendar, else the ticket's."""
    sla = policy.sla
    own = []
    if sla is not None:
        for level in Priority:
            target = sla.target(level, metric)
            if target is not None and target.calendar:
                own.append((priority == level.value, literal(target.calendar)))
    return case(*own, else_=chosen) if own else chosen


def _default_calendar(policy: Policy) -> str:
    return policy.sla.default_calendar if policy.sla is not None else ""


def _at(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text).astimezone(UTC) if text else None


def _utc(at: datetime | None) -> datetime | None:
    return at.astimezone(UTC) if at is not None else None
