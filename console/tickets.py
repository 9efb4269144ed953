"""One ticket's life: found by key on any platform, its decisions in order, priority and tier
changes with their reasons, SLA clocks and armed timers."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, or_, select

from connector.store.tables import audit_log, console_decisions, tickets, timers
from console.clocks import clock_states
from policies import Policy
from policies.sla import SlaState

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
    """Everything the console shows about one ticket; None when Escalator never saw it."""
    with engine.connect() as conn:
        row = conn.execute(
            select(tickets).where(tickets.c.platform == platform, tickets.c.ticket_id == ticket_id)
        ).one_or_none()
        records = conn.execute(
            select(audit_log.c.seq, audit_log.c.record)
            .where(audit_log.c.platform == platform, audit_log.c.ticket_id == ticket_id)
            .order_by(audit_log.c.seq.desc())
            .limit(TIMELINE_LIMIT)
        ).all()
        armed = conn.execute(
            select(timers)
            .where(timers.c.platform == platform, timers.c.ticket_id == ticket_id)
            .order_by(timers.c.due_at)
        ).all()
    if row is None and not records:
        return None
    timeline = [_entry(r.seq, json.loads(r.record)) for r in reversed(records)]
    url = next((e["url"] for e in reversed(timeline) if e["url"]), None)
    key = (row.ticket_key if row else None) or next((e["key"] for e in timeline if e["key"]), ticket_id)
    state = SlaState.from_json(row.sla if row else None)
    zones = _zones(policy)
    return {
        "platform": platform,
        "ticket_id": ticket_id,
        "key": key,
        "url": url,
        "tier": row.tier if row else None,
        "priority": row.priority if row else None,
        "priority_pinned": bool(row.priority_pinned) if row else False,
        "status": ((row.snapshot or {}).get("status") if row else None),
        "updated_at": row.updated_at if row else None,
        "sla_calendar": state.calendar or None,
        "sla_started_at": state.started_at,
        "paused": state.paused,
        "clocks": clock_states(policy, state, now),
        "timers": [
            {
                "key": t.key,
                "kind": t.kind,
                "metric": t.metric,
                "percent": t.percent,
                "calendar": t.calendar,
                "due_at": t.due_at,
                "due_local": _in_zone(t.due_at, zones.get(t.calendar, "UTC")),
                "fired_at": t.fired_at,
            }
            for t in armed
        ],
        "timeline": timeline,
        "changes": [e for e in timeline if e["priority_changed"] or e["tier_changed"]],
        "truncated": len(records) == TIMELINE_LIMIT,
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


def _zones(policy: Policy) -> dict[str, str]:
    return {name: c.timezone for name, c in policy.sla.calendars.items()} if policy.sla else {}


def _in_zone(at: datetime | None, zone: str) -> str | None:
    from zoneinfo import ZoneInfo

    return at.astimezone(ZoneInfo(zone)).strftime("%Y-%m-%d %H:%M %Z") if at else None
