"""The post-incident report of one ticket, built from the audit log (what happened, when, why) and
the ticket's SLA clocks (time to first response and to resolution, against the policy's targets).

    escalator report incident jira ESC-42 --format md
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from babel.dates import format_datetime
from sqlalchemy import Engine, or_, select

from connector import audit
from connector.store.tables import tickets as tickets_table
from policies import Policy
from policies.calendars import elapsed
from policies.durations import format_duration
from policies.sla import SlaState

_WORDS = {
    "en": {
        "title": "Post-incident report",
        "timeline": "Timeline",
        "figures": "Response and resolution",
        "rules": "Rules that fired",
        "first_response": "Time to first response",
        "resolution": "Time to resolution",
        "target": "target",
        "met": "met",
        "missed": "MISSED",
        "open": "not yet",
        "none": "none",
        "priority": "Priority",
        "calendar": "calendar",
    },
    "id": {
        "title": "Laporan pasca-insiden",
        "timeline": "Kronologi",
        "figures": "Respons dan penyelesaian",
        "rules": "Aturan yang berlaku",
        "first_response": "Waktu respons pertama",
        "resolution": "Waktu penyelesaian",
        "target": "target",
        "met": "tercapai",
        "missed": "TERLEWAT",
        "open": "belum",
        "none": "tidak ada",
        "priority": "Prioritas",
        "calendar": "kalender",
    },
}


class TicketNotFound(LookupError):
    """No audit record names the ticket."""


@dataclass(frozen=True)
class Entry:
    at: str  # UTC ISO-8601
    what: str


@dataclass(frozen=True)
class Figure:
    metric: str
    seconds: float | None  # None: the clock has not stopped yet
    target_seconds: float | None
    met: bool | None


@dataclass(frozen=True)
class IncidentReport:
    platform: str
    ticket_id: str
    ticket_key: str
    url: str | None
    priority: str | None
    calendar: str
    timezone: str
    timeline: list[Entry] = field(default_factory=list)
    figures: list[Figure] = field(default_factory=list)
    rules: dict[str, int] = field(default_factory=dict)
    language: str = "en"

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["timeline"] = [asdict(e) for e in self.timeline]
        data["figures"] = [asdict(f) for f in self.figures]
        return data

    def to_markdown(self) -> str:
        w = _WORDS.get(self.language.split("_")[0], _WORDS["en"])
        head = f"# {w['title']}: {self.ticket_key}"
        lines = [head, "", f"{w['priority']}: {self.priority or '—'} · {w['calendar']} {self.calendar}", ""]
        lines += [f"## {w['figures']}", ""]
        lines += [f"- {self._figure(f, w)}" for f in self.figures] or [f"- {w['none']}"]
        lines += ["", f"## {w['timeline']}", ""]
        lines += [f"- {self._when(e.at)} — {e.what}" for e in self.timeline]
        lines += ["", f"## {w['rules']}", ""]
        lines += [f"- {name} ×{n}" for name, n in self.rules.items()] or [f"- {w['none']}"]
        return "\n".join(lines) + "\n"

    def to_text(self) -> str:
        """Plain text for notes and chat: the markdown without its heading marks."""
        return "\n".join(
            line.lstrip("# ") if line.startswith("#") else line for line in self.to_markdown().splitlines()
        )

    def _figure(self, f: Figure, w: dict[str, str]) -> str:
        label = w.get(f.metric, f.metric)
        took = format_duration(timedelta(seconds=round(f.seconds))) if f.seconds is not None else w["open"]
        if f.target_seconds is None:
            return f"{label}: {took}"
        target = format_duration(timedelta(seconds=f.target_seconds))
        verdict = "" if f.met is None else f" — {w['met'] if f.met else w['missed']}"
        return f"{label}: {took} ({w['target']} {target}){verdict}"

    def _when(self, at: str) -> str:
        instant = datetime.fromisoformat(at)
        return format_datetime(instant, "medium", tzinfo=ZoneInfo(self.timezone), locale=self.language)


def find_ticket(engine: Engine, platform: str, ticket: str) -> str:
    """The ticket id for an id or a key (ESC-42)."""
    with engine.connect() as conn:
        row = conn.execute(
            select(tickets_table.c.ticket_id).where(
                tickets_table.c.platform == platform,
                or_(tickets_table.c.ticket_id == ticket, tickets_table.c.ticket_key == ticket),
            )
        ).first()
    if row is None:
        raise TicketNotFound(f"Escalator has no record of {platform} ticket '{ticket}'")
    return row.ticket_id


def incident_report(
    engine: Engine,
    policy: Policy,
    platform: str,
    ticket_id: str,
    *,
    language: str | None = None,
    leave_out_sends_of: str | None = None,
) -> IncidentReport:
    """`leave_out_sends_of`: a decision's id whose notifications are not listed (the report's own)."""
    records = list(audit.records(engine, platform=platform, ticket=ticket_id))
    if leave_out_sends_of is not None:
        records = [r for r in records if (r.get("notification") or {}).get("decision") != leave_out_sends_of]
    if not records:
        raise TicketNotFound(f"no audit record names {platform} ticket '{ticket_id}'")
    with engine.connect() as conn:
        row = conn.execute(
            select(tickets_table.c.sla, tickets_table.c.ticket_key).where(
                tickets_table.c.platform == platform, tickets_table.c.ticket_id == ticket_id
            )
        ).first()
    clocks = SlaState.from_json(row.sla if row is not None else None)
    key = next((r["ticket"].get("key") for r in records if r["ticket"].get("key")), None) or ticket_id
    url = next((r["ticket"].get("url") for r in records if r["ticket"].get("url")), None)
    calendar_name = _calendar(policy, clocks)
    timezone = policy.sla.calendar(calendar_name).timezone if policy.sla and calendar_name else "UTC"
    rules: Counter[str] = Counter()
    for record in records:
        rules.update(record.get("rules") or ())
    return IncidentReport(
        platform=platform,
        ticket_id=ticket_id,
        ticket_key=key,
        url=url,
        priority=clocks.priority.value if clocks.priority else _last_priority(records),
        calendar=calendar_name or "—",
        timezone=timezone,
        timeline=_timeline(records),
        figures=_figures(policy, clocks),
        rules=dict(rules),
        language=language or policy.default_language,
    )


def _timeline(records: list[dict[str, Any]]) -> list[Entry]:
    out: list[Entry] = []
    resolved = responded = False
    for i, r in enumerate(records):
        at, trigger, outcome = r["at"], r.get("trigger") or {}, r.get("outcome")
        kind = trigger.get("kind")
        if kind == "notification":
            n = r.get("notification") or {}
            target = (
                "internal note" if n.get("channel") == "note" else f"{n.get('channel')} ({n.get('type')})"
            )
            if outcome == "applied":
                where = " in its thread" if n.get("in_thread") else ""
                out.append(Entry(at, f"{n.get('kind')} sent to {target}{where}"))
            elif outcome == "failed":
                out.append(Entry(at, f"{n.get('kind')} to {target} failed: {n.get('answer')}"))
            continue
        if i == 0:
            out.append(Entry(at, "created" if kind == "ticket.created" else f"first seen ({kind})"))
        if outcome not in ("applied", "dry_run", "no_change"):
            continue
        prio = r.get("priority") or {}
        if prio.get("to") and prio.get("to") != prio.get("from"):
            out.append(Entry(at, f"priority {prio.get('from') or '—'} → {prio['to']}: {prio.get('why')}"))
        tier = r.get("tier") or {}
        if tier.get("to") and tier.get("to") != tier.get("from"):
            because = ", ".join(r.get("rules") or ()) or "policy"
            out.append(Entry(at, f"tier {tier.get('from')} → {tier['to']} (rules fired: {because})"))
        sla = r.get("sla")
        if sla and kind in ("sla.warning", "sla.breached"):
            what = "breached" if kind == "sla.breached" else f"{sla.get('percent')} % used"
            target = format_duration(timedelta(seconds=sla.get("target_seconds") or 0))
            out.append(Entry(at, f"SLA {sla.get('metric', '').replace('_', ' ')} {what} (target {target})"))
        comment = (r.get("inputs") or {}).get("comment")
        if kind == "comment.added" and comment and comment.get("public") and not comment.get("by_requester"):
            if not responded:
                out.append(Entry(at, "first public reply by the team"))
                responded = True
        status = (r.get("inputs") or {}).get("status")
        if status in ("resolved", "closed") and not resolved:
            out.append(Entry(at, status))
            resolved = True
        elif status not in ("resolved", "closed", None) and resolved:
            out.append(Entry(at, f"reopened ({status})"))
            resolved = False
    return out


def _figures(policy: Policy, clocks: SlaState) -> list[Figure]:
    if policy.sla is None or clocks.started_at is None:
        return []
    out = []
    for metric in ("first_response", "resolution"):
        clock = clocks.clocks.get(metric)
        target = policy.sla.target(clocks.priority, metric)
        calendar = (
            policy.sla.calendar_of(target, clocks.calendar)
            if target
            else policy.sla.calendar(clocks.calendar)
        )
        start = clock.started_at if clock is not None else clocks.started_at
        end = clock.stopped_at if clock is not None else None
        if metric == "resolution":
            end = end or clocks.resolved_at
        took = elapsed(calendar, start, end, clocks.pauses).total_seconds() if end is not None else None
        limit = target.duration.total_seconds() if target else None
        met = None if took is None or limit is None else took <= limit and not (clock and clock.breached)
        out.append(Figure(metric, took, limit, met))
    return out


def _calendar(policy: Policy, clocks: SlaState) -> str:
    """The calendar the ticket's resolution clock ran on (P1: its own 24x7 one), else the ticket's."""
    if policy.sla is None:
        return ""
    target = policy.sla.target(clocks.priority, "resolution")
    if target is not None and target.calendar:
        return target.calendar
    return clocks.calendar or policy.sla.default_calendar


def _last_priority(records: list[dict[str, Any]]) -> str | None:
    for r in reversed(records):
        to = (r.get("priority") or {}).get("to")
        if to:
            return to
    return None


def render(report: IncidentReport, fmt: str) -> str:
    if fmt == "json":
        return json.dumps(report.to_json(), indent=2, ensure_ascii=False) + "\n"
    return report.to_markdown()
