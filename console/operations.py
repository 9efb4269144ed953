"""Operations: failed and retrying events with the platform's message, the inbox backlog and whether
the workers keep up. Retry and discard come with connector/events.py (issue 16), which audits them."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, func, or_, select

from connector.minimise import mask_personal_data
from connector.runtime import Runtime
from connector.store import inbox as inbox_store
from connector.store import timers as timer_store
from connector.store.tables import audit_log, inbox, outbox

SHOWN = 200


def overview(rt: Runtime) -> dict[str, Any]:
    now = rt.clock()
    engine = rt.engine
    with engine.connect() as conn:
        listed = conn.execute(
            select(
                inbox.c.id,
                inbox.c.platform,
                inbox.c.delivery_id,
                inbox.c.event_type,
                inbox.c.ticket_id,
                inbox.c.status,
                inbox.c.attempts,
                inbox.c.received_at,
                inbox.c.next_attempt_at,
                inbox.c.last_error,
            )
            .where(
                or_(
                    inbox.c.status == inbox_store.FAILED,
                    (inbox.c.status == inbox_store.PENDING) & (inbox.c.attempts > 0),
                )
            )
            .order_by(inbox.c.id.desc())
            .limit(SHOWN)
        ).all()
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
        "events": [
            {**row._mapping, "status": "retrying" if row.status == inbox_store.PENDING else row.status}
            for row in listed
        ],
        "backlog": dict(sorted(backlog.items())),
        "oldest_pending_seconds": (now - oldest).total_seconds() if oldest else None,
        "stuck_leases": stuck,
        "timers": dict(sorted(timer_store.counts(engine).items())),
        "timers_overdue_seconds": timer_store.overdue_seconds(engine, now),
        "last_decision_at": last_decision,
        "worker_threads": rt.config.worker.threads,
    }


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
