"""The in-force side of a replay read back from the audit log instead of judged again.

A delivery's last audit record says what the worker decided: rules, priority and tier before and
after, the actions (the note's text among them), the requests and the notifications. It stands
for judging the delivery again under the policy in force only when judging again would give the
same answer, which the record itself lets us check:

- it was decided under this very policy (same sha256), with an outcome that carries the whole
  plan (applied, dry_run, no_change, echo; a failed or retried decision is judged again);
- from the same memory of the ticket the replay holds: the tier it started from, and (raise_only)
  whether a person's priority was being kept. A window (`--since`) that starts in the middle of a
  ticket's history, or an earlier delivery judged under another policy, fails this check, and the
  delivery is judged as before;
- no input the worker could have learnt elsewhere: a comment on a ticket whose payload has no
  requester (the worker may have asked the platform) is judged again, and so is an event of a
  kind on which the policy reads the last public reply (the worker keeps it with the SLA clocks,
  which a replay does not run).

Everything else (a missing record, a scope, a record unreadable) is judged again too, so the
report is the same whichever way each delivery went; only the time differs.
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import Connection, select

from connector.judgement import person_set_priority
from connector.model import TicketEvent, TicketState
from connector.store.tables import audit_log
from policies import PlatformMapping, Policy
from policies.evaluate import PERSON_SET

# Outcomes whose record holds the whole plan the decision made.
COMPLETE = frozenset({"applied", "dry_run", "no_change", "echo"})
_IDS_PER_QUERY = 500


@dataclass(frozen=True)
class Recorded:
    """What one audit record says was decided, in the terms a replay compares."""

    outcome: str
    policy_sha256: str
    rules: tuple[str, ...]
    priority_to: str | None
    priority_why: str
    tier_from: str | None
    tier_to: str | None
    note: str | None  # the plan's note: the decision's notes joined, as make_plan joins them
    requests: tuple[str, ...]  # "METHOD purpose"
    notifications: int

    @classmethod
    def of(cls, record: dict[str, Any]) -> Recorded:
        notes = [a["text"] for a in record.get("actions_planned") or () if a.get("action") == "add_note"]
        priority, tier = record.get("priority") or {}, record.get("tier") or {}
        return cls(
            outcome=record["outcome"],
            policy_sha256=(record.get("policy") or {}).get("sha256") or "",
            rules=tuple(record.get("rules") or ()),
            priority_to=priority.get("to"),
            priority_why=priority.get("why") or "",
            tier_from=tier.get("from"),
            tier_to=tier.get("to"),
            note="\n\n".join(notes) if notes else None,
            requests=tuple(f"{r['method']} {r['purpose']}" for r in record.get("requests") or ()),
            notifications=len(record.get("notifications") or ()),
        )


def recorded_decisions(
    conn: Connection, tickets: Iterable[tuple[str, str]]
) -> dict[tuple[str, str], Recorded]:
    """(platform, delivery id) → what its last audit record says, for every delivery of `tickets`
    ((platform, ticket id) pairs). One indexed query per platform and 500 tickets."""
    by_platform: dict[str, list[str]] = defaultdict(list)
    for platform, ticket_id in set(tickets):
        by_platform[platform].append(ticket_id)
    last: dict[tuple[str, str], tuple[int, bytes | str]] = {}
    for platform, ids in by_platform.items():
        for start in range(0, len(ids), _IDS_PER_QUERY):
            query = select(audit_log.c.seq, audit_log.c.record).where(
                audit_log.c.platform == platform,
                audit_log.c.ticket_id.in_(ids[start : start + _IDS_PER_QUERY]),
            )
            for seq, text in conn.execute(query):
                delivery = _delivery_id(text)
                if delivery is None:
                    continue
                key = (platform, delivery)
                if key not in last or last[key][0] < seq:
                    last[key] = (seq, text)
    out: dict[tuple[str, str], Recorded] = {}
    for key, (_, text) in last.items():
        try:
            record = orjson.loads(text)
            if record.get("outcome") in COMPLETE:
                out[key] = Recorded.of(record)
        except (orjson.JSONDecodeError, KeyError, TypeError, AttributeError):
            continue  # a record of an older shape: the delivery is judged again
    return out


def _delivery_id(text: bytes | str) -> str | None:
    """The record's trigger.delivery_id, found without parsing records that are not kept."""
    raw = text.encode() if isinstance(text, str) else text
    at = raw.find(b'"delivery_id":"')
    if at < 0:
        return None
    start = at + len(b'"delivery_id":"')
    end = raw.find(b'"', start)
    return raw[start:end].decode() if end > start else None


def recall(
    policy: Policy,
    mapping: PlatformMapping,
    recorded: Recorded,
    state: TicketState,
    event: TicketEvent,
    reads_reply: frozenset[str],
) -> TicketState | None:
    """The ticket's memory after the recorded decision, or None when the record cannot stand for
    judging `event` again under `policy` from `state` (the caller judges it). `reads_reply`:
    `policy.kinds_reading("last_reply")`."""
    if recorded.policy_sha256 != policy.sha256 or recorded.outcome == "echo" or policy.scope is not None:
        return None
    if event.kind.value in reads_reply:
        return None
    if event.comment is not None and event.ticket.requester is None:
        return None
    tier = state.tier or mapping.tier_of(event.ticket)
    if recorded.tier_from != (tier or policy.tiers[0]):
        return None
    pinned = state.priority_pinned or person_set_priority(event)
    if policy.mode == "raise_only" and (PERSON_SET in recorded.priority_why) != pinned:
        return None
    return dataclasses.replace(state, tier=recorded.tier_to or tier, priority_pinned=pinned)
