"""A small, hand-counted history for the console tests: nine decisions on three platforms and eight
tickets with known SLA clocks. The figures the reports must show are worked out by hand in
tests/console/test_reports.py from the table below."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, insert

from connector import audit
from connector.codec import ticket_to_json
from connector.model import Requester, Status, Ticket, TicketRef
from connector.store.db import writing
from connector.store.tables import outbox, tickets, timers
from connector.store.tickets import sla_open

NOW = datetime(2026, 11, 12, 10, 0, tzinfo=UTC)
REQUESTER_EMAIL = "alice.requester@example.com"  # personal data: must never show on a page
JIRA = "https://acme.atlassian.net"


def at(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 11, day, hour, minute, tzinfo=UTC)


# (platform, id, key, at, kind, rules, tier from, tier to, outcome, labels, sla metric, sla calendar, region)
DECISIONS: list[tuple[Any, ...]] = [
    ("jira", "10001", "SUP-1", at(2, 9), "ticket.created", ["security-goes-to-l3"], "L1", "L3", "applied",
     ["security"], None, None, "emea"),
    ("jira", "10001", "SUP-1", at(2, 10), "comment.added", [], "L3", "L3", "no_change", ["security"], None, None,  # noqa: E501
     "emea"),
    ("zendesk", "501", "501", at(3, 12), "ticket.created", ["customer-asks-for-manager"], "L1", "management",
     "applied", ["vip", "billing"], None, None, "apac"),
    ("servicenow", "sn1", "INC0001", at(4, 8), "sla.breached", ["sla-breach-escalates"], "L1", "L2", "dry_run",  # noqa: E501
     ["billing"], "first_response", "emea", "emea"),
    ("jira", "10002", "SUP-2", at(5, 9), "ticket.updated", ["security-goes-to-l3"], "L1", "L3", "failed",
     ["security"], None, None, "emea"),
    ("jira", "10002", "SUP-2", at(9, 9), "sla.breached", ["sla-breach-escalates"], "L1", "L2", "applied",
     ["security"], "resolution", "always", "emea"),
    ("zendesk", "502", "502", at(10, 9), "sla.breached", ["sla-breach-escalates"], "L1", "L2", "applied", [],
     "first_response", "apac", "apac"),
    ("jira", "10003", "SUP-3", at(11, 9), "ticket.created", [], "L1", "L1", "applied", [], None, None, "emea"),  # noqa: E501
    ("jira", "10004", "SUP-4", at(12, 9, 48), "ticket.created", [], "L1", "L1", "applied", ["outage"], None, None,  # noqa: E501
     "emea"),
]  # fmt: skip


def clock(start: datetime, stop: datetime | None = None, breached: bool = False, warned=()) -> dict[str, Any]:
    return {
        "started_at": start.isoformat(),
        "stopped_at": stop.isoformat() if stop else None,
        "breached": breached,
        "warned": list(warned),
    }


def sla(
    priority: str, calendar: str, start: datetime, resolved: datetime | None, **clocks: Any
) -> dict[str, Any]:
    return {
        "started_at": start.isoformat(),
        "priority": priority,
        "calendar": calendar,
        "clocks": clocks,
        "pauses": [],
        "paused_since": None,
        "resolved_at": resolved.isoformat() if resolved else None,
        "seen_at": NOW.isoformat(),
    }


# (platform, id, key, tier, priority, sla state)
TICKETS: list[tuple[Any, ...]] = [
    ("jira", "10001", "SUP-1", "L3", "P1", sla("P1", "emea", at(2, 9), at(2, 12),
     first_response=clock(at(2, 9), at(2, 9, 10)), resolution=clock(at(2, 9), at(2, 12)))),
    ("jira", "10002", "SUP-2", "L2", "P2", sla("P2", "emea", at(5, 9), None,
     first_response=clock(at(5, 9), at(5, 9, 30)), resolution=clock(at(5, 9), None, True, [75]))),
    ("jira", "10003", "SUP-3", "L1", "P3", sla("P3", "emea", at(11, 9), at(12, 9),
     first_response=clock(at(11, 9), at(11, 13)), resolution=clock(at(11, 9), at(12, 9)))),
    ("zendesk", "501", "501", "management", "P2", sla("P2", "apac", at(3, 12), at(4, 12),
     first_response=clock(at(3, 12), at(3, 14), True, [75]), resolution=clock(at(3, 12), at(4, 12)))),
    ("zendesk", "502", "502", "L2", "P3", sla("P3", "apac", at(10, 9), None,
     first_response=clock(at(10, 9), None, True, [75]))),
    ("servicenow", "sn1", "INC0001", "L2", "P4", sla("P4", "emea", at(4, 8), at(4, 10),
     first_response=clock(at(4, 8), at(4, 9)), resolution=clock(at(4, 8), at(4, 10)))),
    ("servicenow", "sn2", "INC0002", "L1", "P4", sla("P4", "emea", at(6, 8), at(6, 9),
     first_response=clock(at(6, 8), at(6, 8, 20)), resolution=clock(at(6, 8), at(6, 9)))),
    ("jira", "10004", "SUP-4", "L1", "P1", sla("P1", "emea", at(12, 9, 48), None,
     first_response=clock(at(12, 9, 48), None, False, [75]), resolution=clock(at(12, 9, 48)))),
]  # fmt: skip


def snapshot(platform: str, tid: str, key: str) -> dict[str, Any]:
    """The ticket as the worker keeps it (connector/codec.py), with the requester's e-mail in it."""
    url = f"{JIRA}/browse/{key}" if platform == "jira" else None
    requester = Requester(id=f"r-{tid}", name="Alice Requester", email=REQUESTER_EMAIL)
    return ticket_to_json(Ticket(TicketRef(platform, tid, key, url), "Checkout fails", Status.OPEN,
                                 requester=requester))  # fmt: skip


def record(row: tuple[Any, ...], sha: str, version: int | str) -> dict[str, Any]:
    platform, tid, key, when, kind, rules, tier_from, tier_to, outcome, labels, metric, calendar, region = row
    body: dict[str, Any] = {
        "platform": platform,
        "ticket": {"id": tid, "key": key, "url": f"{JIRA}/browse/{key}" if platform == "jira" else None},
        "trigger": {"kind": kind, "event_type": kind, "delivery_id": f"d-{tid}-{when:%d%H%M}", "attempt": 1},
        "policy": {"name": "global-support", "version": version, "sha256": sha},
        "rules": rules,
        "reasons": [f"escalated {tier_from} → {tier_to}"] if tier_from != tier_to else [],
        "inputs": {
            "status": "open",
            "labels": labels,
            "requester": {"id": audit.pseudonym(REQUESTER_EMAIL), "tier": "enterprise", "region": region},
            "actor": audit.pseudonym(REQUESTER_EMAIL),
        },
        "priority": {
            "from": "P3",
            "to": "P2" if kind == "ticket.created" else "P3",
            "why": "impact × urgency",
        },
        "tier": {"from": tier_from, "to": tier_to},
        "actions_planned": [{"action": "assign_tier", "tier": tier_to}] if tier_from != tier_to else [],
        "requests": [],
        "actions_applied": [
            {"method": "PUT", "path": f"/rest/api/2/issue/{key}", "purpose": "update", "status": 204}
        ]
        if outcome == "applied"
        else [],
        "outcome": outcome,
        "dry_run": outcome == "dry_run",
        "detail": "Jira answered 400: Field 'priority' cannot be set" if outcome == "failed" else None,
    }
    if metric:
        body["sla"] = {"metric": metric, "calendar": calendar, "percent": 100, "target_seconds": 3600.0,
                       "due": when.isoformat(), "fired_at": when.isoformat(), "late": False,
                       "late_by_seconds": 0}  # fmt: skip
    return body


def seed(engine: Engine, *, sha: str, version: int | str) -> None:
    with writing(engine) as conn:
        ids = [audit.append(conn, record(row, sha, version), at=row[3])["id"] for row in DECISIONS]
        conn.execute(
            insert(outbox),
            {
                "dedupe_key": "sup-2-breach-slack", "decision_id": ids[5], "platform": "jira",
                "ticket_id": "10002", "channel": "support-leads", "kind": "notice",
                "message": {"text": f"SUP-2 breached ({REQUESTER_EMAIL})"},
                "status": "sent", "attempts": 1, "created_at": at(9, 9), "next_attempt_at": at(9, 9),
                "answer": f"200 ok, delivered to {REQUESTER_EMAIL}", "sent_at": at(9, 9, 1),
            },
        )  # fmt: skip
        for platform, tid, key, tier, priority, state in TICKETS:
            conn.execute(
                insert(tickets),
                {
                    "platform": platform,
                    "ticket_id": tid,
                    "ticket_key": key,
                    "requester_id": REQUESTER_EMAIL,
                    "tier": tier,
                    "priority": priority,
                    "priority_pinned": False,
                    "updated_at": NOW,
                    "snapshot": snapshot(platform, tid, key),
                    "sla": state,
                    "sla_open": sla_open(state),  # as connector/store/tickets.py writes it
                },
            )
        start = at(12, 9, 48)
        for key, kind, metric, percent, due, fired in (
            ("first_response:sla.breached:100", "sla.breached", "first_response", 100, start + timedelta(minutes=15), None),  # noqa: E501
            ("resolution:sla.warning:75", "sla.warning", "resolution", 75, start + timedelta(hours=3), None),
            ("resolution:sla.breached:100", "sla.breached", "resolution", 100, start + timedelta(hours=4), None),  # noqa: E501
        ):  # fmt: skip
            conn.execute(
                insert(timers),
                {
                    "platform": "jira", "ticket_id": "10004", "key": key, "kind": kind, "metric": metric,
                    "percent": percent, "target_seconds": 900.0, "calendar": "always", "due_at": due,
                    "armed_at": start, "fired_at": fired,
                },
            )  # fmt: skip
