"""Operations: failed and retrying events with the platform's message, the inbox backlog and whether
the workers keep up; retry and discard through connector/events.py, which audits them."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from sqlalchemy import Engine, func, select

from connector import events
from connector.minimise import mask_personal_data
from connector.runtime import Runtime
from connector.store import inbox as inbox_store
from connector.store import timers as timer_store
from connector.store.tables import audit_log, inbox, outbox

SHOWN = 200


def overview(rt: Runtime) -> dict[str, Any]:
    now = rt.clock()
    engine = rt.engine
    listed = events.list_events(engine, status=("failed", "retrying", "processing"), limit=SHOWN)
    with engine.connect() as conn:
        oldest = conn.execute(
            select(func.min(inbox.c.received_at)).where(inbox.c.status == inbox_store.PENDING)
        ).scalar()
        stuck = conn.execute(
            select(func.count()).where(inbox.c.status == inbox_store.PROCESSING, inbox.c.lease_until < now)
        ).scalar_one()
        last_decision = conn.execute(
            select(audit_log.c.at).order_by(audit_log.c.seq.desc()).limit(1)
        ).scalar()
    backlog = inbox_store.counts(engine)
    return {
        "events": [asdict(e) for e in listed],
        "backlog": dict(sorted(backlog.items())),
        "oldest_pending_seconds": (now - oldest).total_seconds() if oldest else None,
        "stuck_leases": stuck,
        "timers": dict(sorted(timer_store.counts(engine).items())),
        "timers_overdue_seconds": timer_store.overdue_seconds(engine, now),
        "last_decision_at": last_decision,
        "worker_threads": rt.config.worker.threads,
    }


def retry(engine: Engine, event_id: int, *, actor: str) -> tuple[str, int]:
    """The message to show and an HTTP status: 200 done, 404 no such event, 409 refused (says why)."""
    try:
        event = events.retry_event(engine, event_id, actor=actor)
    except events.EventNotFound as exc:
        return str(exc), 404
    except events.EventError as exc:
        return str(exc), 409
    return f"Event {event.id} is queued again (recorded in the audit log).", 200


def discard(engine: Engine, event_id: int, *, why: str, actor: str) -> tuple[str, int]:
    try:
        event = events.discard_event(engine, event_id, why=why, actor=actor)
    except events.EventNotFound as exc:
        return str(exc), 404
    except events.EventError as exc:
        return str(exc), 409
    return f"Event {event.id} is discarded (recorded in the audit log with the reason).", 200


def notifications(engine: Engine, life: dict[str, Any]) -> list[dict[str, Any]]:
    """The ticket's notifications from the outbox, oldest first, each linked to the decision that asked.

    The message itself is not shown (it is written for people and may name them); the channel's
    answer is, with e-mail addresses, phone numbers and IP addresses masked."""
    query = (
        select(
            outbox.c.id,
            outbox.c.channel,
            outbox.c.kind,
            outbox.c.status,
            outbox.c.attempts,
            outbox.c.created_at,
            outbox.c.sent_at,
            outbox.c.answer,
            audit_log.c.seq.label("decision_seq"),
        )
        .outerjoin(audit_log, audit_log.c.record_id == outbox.c.decision_id)
        .where(outbox.c.platform == life["platform"], outbox.c.ticket_id == life["ticket_id"])
        .order_by(outbox.c.id)
        .limit(SHOWN)
    )
    with engine.connect() as conn:
        rows = [dict(r._mapping) for r in conn.execute(query)]
    for row in rows:
        row["answer"] = mask_personal_data(row["answer"])
    return rows
