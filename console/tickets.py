"""One ticket's life: found by key on any platform, its decisions in order, priority and tier
changes with their reasons, SLA clocks and armed timers."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, or_, select

from connector.store.tables import audit_log, console_decisions, tickets
from connector.ticket_view import ClockView, TicketNotFound, TicketView, ticket_view
from policies import Policy

D = console_decisions
TIMELINE_LIMIT = 500


def find(engine: Engine, query: str) -> list[dict[str, str]]:
    """Tickets whose key or id is `query`, on every platform (a key can exist on two)."""
    query = query.strip()
    if not query:
        return []
    found: dict[tuple[str, str], str] = {}
    with engine.connect() as conn:
        for row in conn.execute(
            select(tickets.c.platform, tickets.c.ticket_id, tickets.c.ticket_key).where(
                or_(tickets.c.ticket_key == query, tickets.c.ticket_id == query)
            )
        ):
            found[(row.platform, row.ticket_id)] = row.ticket_key or row.ticket_id
        for column in (D.c.ticket_key, D.c.ticket_id):
            for row in conn.execute(
                select(D.c.platform, D.c.ticket_id, D.c.ticket_key)
                .where(column == query, D.c.ticket_id.is_not(None), D.c.platform != "console")
                .group_by(D.c.platform, D.c.ticket_id, D.c.ticket_key)
                .limit(20)
            ):
                found.setdefault((row.platform, row.ticket_id), row.ticket_key or row.ticket_id)
    return [{"platform": p, "ticket_id": i, "key": k} for (p, i), k in sorted(found.items())]


def life(
    engine: Engine, policy: Policy, platform: str, ticket_id: str, now: datetime
) -> dict[str, Any] | None:
    """Everything the console shows about one ticket; None when Escalator never saw it.

    What Escalator remembers of the ticket, its clocks and its timers come from
    `connector.ticket_view` (what `escalator ticket show` prints); the timeline is the console's own."""
    try:
        view: TicketView | None = ticket_view(engine, policy, platform, ticket_id, now=now, decisions=0)
    except TicketNotFound:
        view = None  # no memory of it (every event failed before it was saved): the log may still know it
    with engine.connect() as conn:
        records = conn.execute(
            select(audit_log.c.seq, audit_log.c.record)
            .where(audit_log.c.platform == platform, audit_log.c.ticket_id == ticket_id)
            .order_by(audit_log.c.seq.desc())
            .limit(TIMELINE_LIMIT)
        ).all()
    if view is None and not records:
        return None
    timeline = [_entry(r.seq, json.loads(r.record)) for r in reversed(records)]
    url = (view.url if view else None) or next((e["url"] for e in reversed(timeline) if e["url"]), None)
    key = (view.key if view else None) or next((e["key"] for e in timeline if e["key"]), ticket_id)
    clocks = [_clock(c, view, now) for c in view.clocks] if view else []
    return {
        "platform": platform,
        "ticket_id": ticket_id,
        "key": key,
        "url": url,
        "tier": view.tier if view else None,
        "priority": view.priority if view else None,
        "priority_pinned": view.priority_pinned if view else False,
        "status": view.status if view else None,
        "updated_at": view.updated_at if view else None,
        "sla_calendar": view.calendar if view else None,
        "sla_started_at": min((c["started_at"] for c in clocks), default=None),
        "paused": bool(view and (view.paused_since or view.resolved_at)),
        "clocks": clocks,
        "timers": [
            {
                "key": t.key,
                "kind": t.kind,
                "metric": t.metric,
                "percent": t.percent,
                "due_at": _utc(t.due),
                "due_local": _in_zone(t.due),
                "fired_at": t.fired_at,
            }
            for t in (view.timers if view else ())
        ],
        "timeline": timeline,
        "changes": [e for e in timeline if e["priority_changed"] or e["tier_changed"]],
        "truncated": len(records) == TIMELINE_LIMIT,
    }


# ticket_view's clock states, as the console names them (met: stopped in time; overdue: due, not fired)
_STATUS = {"running": "running", "overdue": "breached", "breached": "breached", "stopped": "met",
           "paused": "paused", "no_target": "running"}  # fmt: skip


def _clock(c: ClockView, view: TicketView, now: datetime) -> dict[str, Any]:
    status = _STATUS[c.state]
    if c.state == "no_target" and (view.paused_since or view.resolved_at):
        status = "paused"
    due = c.breached_at if c.state == "breached" else c.due
    warn = min((at for _, at in c.warnings), default=None)
    return {
        "metric": c.metric,
        "status": status,
        "open": c.stopped_at is None and view.resolved_at is None,
        "at_risk": status == "running" and (bool(c.warned) or (warn is not None and now >= warn)),
        "started_at": _utc(c.started_at),
        "stopped_at": _utc(c.stopped_at),
        "target_seconds": c.target.total_seconds() if c.target is not None else None,
        "calendar": c.calendar if c.target is not None else None,
        "timezone": c.zone,
        "warn_at": _utc(warn),
        "due_at": _utc(due),
        "due_local": _in_zone(due),
        "warned": list(c.warned),
    }


def _entry(seq: int, body: dict[str, Any]) -> dict[str, Any]:
    ticket = body.get("ticket") or {}
    priority = body.get("priority") or {}
    tier = body.get("tier") or {}
    decided = body.get("outcome") in ("applied", "dry_run")
    return {
        "seq": seq,
        "at": body.get("at"),
        "kind": (body.get("trigger") or {}).get("kind"),
        "outcome": body.get("outcome"),
        "rules": body.get("rules") or [],
        "reasons": body.get("reasons") or [],
        "detail": body.get("detail"),
        "priority_from": priority.get("from"),
        "priority_to": priority.get("to"),
        "priority_why": priority.get("why"),
        "priority_changed": decided
        and bool(priority.get("to"))
        and priority.get("to") != priority.get("from"),
        "tier_from": tier.get("from"),
        "tier_to": tier.get("to"),
        "tier_changed": decided and bool(tier.get("to")) and tier.get("to") != tier.get("from"),
        "policy_version": (body.get("policy") or {}).get("version"),
        "key": ticket.get("key"),
        "url": ticket.get("url"),
    }


def _utc(at: datetime | None) -> datetime | None:
    return at.astimezone(UTC) if at is not None else None


def _in_zone(at: datetime | None) -> str | None:
    """An instant ticket_view gave in its calendar's zone, written as the console writes them."""
    return at.strftime("%Y-%m-%d %H:%M %Z") if at is not None else None
