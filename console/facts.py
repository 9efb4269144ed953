"""The console's read model: columns out of each audit record's JSON, so filters and reports are
indexed SQL instead of a walk through a million JSON texts.

It is derived data: `catch_up` reads the audit log after the last record it indexed, and the tables
can be dropped and rebuilt from the log at any time. The hashed log stays the only source of truth.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from sqlalchemy import Connection, Engine, delete, insert, select, update

from connector.store.db import writing
from connector.store.tables import (
    audit_log,
    console_decisions,
    console_escalation_labels,
    console_index_state,
    console_rule_hits,
)

DECIDED = ("applied", "dry_run")  # outcomes where the decision took effect (or would have, in dry run)
BATCH = 5000


def catch_up(engine: Engine, *, limit: int | None = None, batch: int = BATCH) -> int:
    """Index audit records written since the last call; at most `limit` (None: all). Returns how many."""
    done = 0
    while limit is None or done < limit:
        size = batch if limit is None else min(batch, limit - done)
        with writing(engine) as conn:
            # Touching the state row first serialises concurrent indexers (threads or replicas).
            last = conn.execute(
                update(console_index_state)
                .where(console_index_state.c.id == 1)
                .values(last_seq=console_index_state.c.last_seq)
                .returning(console_index_state.c.last_seq)
            ).scalar_one()
            rows = conn.execute(
                select(audit_log.c.seq, audit_log.c.at, audit_log.c.record)
                .where(audit_log.c.seq > last)
                .order_by(audit_log.c.seq)
                .limit(size)
            ).all()
            if not rows:
                break
            _insert(conn, rows)
            conn.execute(
                update(console_index_state).where(console_index_state.c.id == 1).values(last_seq=rows[-1].seq)
            )
        done += len(rows)
        if len(rows) < size:
            break
    return done


def behind(engine: Engine) -> int:
    """How many audit records the read model has not indexed yet."""
    with engine.connect() as conn:
        last = conn.execute(select(console_index_state.c.last_seq)).scalar_one()
        head = conn.execute(select(audit_log.c.seq).order_by(audit_log.c.seq.desc()).limit(1)).scalar()
    return max(0, (head or 0) - last)


def rebuild(engine: Engine) -> int:
    """Drop the read model and index the whole log again."""
    with writing(engine) as conn:
        for table in (console_decisions, console_rule_hits, console_escalation_labels):
            conn.execute(delete(table))
        conn.execute(update(console_index_state).where(console_index_state.c.id == 1).values(last_seq=0))
    return catch_up(engine)


def facts_of(seq: int, at: Any, body: Mapping[str, Any]) -> dict[str, Any]:
    """The indexed columns of one audit record."""
    ticket = body.get("ticket") or {}
    trigger = body.get("trigger") or {}
    policy = body.get("policy") or {}
    tier = body.get("tier") or {}
    priority = body.get("priority") or {}
    sla = body.get("sla") or {}
    requester = (body.get("inputs") or {}).get("requester") or {}
    outcome = str(body.get("outcome") or "")
    tier_from, tier_to = tier.get("from"), tier.get("to")
    version = policy.get("version")
    return {
        "seq": seq,
        "at": at,
        "platform": str(body.get("platform") or ""),
        "ticket_id": _text(ticket.get("id"), 255),
        "ticket_key": _text(ticket.get("key"), 255),
        "outcome": outcome,
        "trigger_kind": _text(trigger.get("kind") or body.get("kind"), 32),
        "policy_name": _text(policy.get("name"), 255),
        "policy_version": _text(version, 64),
        "policy_sha256": _text(policy.get("sha256"), 64),
        "tier_from": _text(tier_from, 64),
        "tier_to": _text(tier_to, 64),
        "priority_from": _text(priority.get("from"), 8),
        "priority_to": _text(priority.get("to"), 8),
        "escalated": bool(tier_from and tier_to and tier_from != tier_to and outcome in DECIDED),
        "sla_metric": _text(sla.get("metric"), 32),
        "sla_calendar": _text(sla.get("calendar"), 64),
        "region": _text(requester.get("region"), 64),
    }


def _insert(conn: Connection, rows: list[Any]) -> None:
    decisions, hits, labels = [], [], []
    for row in rows:
        body = json.loads(row.record)
        fact = facts_of(row.seq, row.at, body)
        decisions.append(fact)
        hits.extend({"rule": r[:255], "seq": row.seq} for r in dict.fromkeys(body.get("rules") or ()))
        if fact["escalated"]:
            found = (body.get("inputs") or {}).get("labels") or ()
            labels.extend({"label": str(x)[:255], "seq": row.seq} for x in dict.fromkeys(found))
    conn.execute(insert(console_decisions), decisions)
    if hits:
        conn.execute(insert(console_rule_hits), hits)
    if labels:
        conn.execute(insert(console_escalation_labels), labels)


def _text(value: Any, size: int) -> str | None:
    return None if value is None else str(value)[:size]
