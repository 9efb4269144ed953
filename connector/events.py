"""The operator's view of the inbox: list events that failed, wait for a retry or are stuck, and put
one back in the queue or discard it. Retry and discard are audited in the hash-chained log.

Statuses as an operator sees them (the inbox row's status, with `pending` split in two):
- `pending`: accepted, not tried yet
- `retrying`: tried, put back after a transient error or a worker that died; tried again at
  `next_attempt_at`
- `processing`: a worker holds it now (leased until `lease_until`)
- `failed`: recorded as failed; a worker never takes it again unless retried here
- `discarded`: an operator discarded it (with the reason); it no longer blocks its ticket's later events
Done and ignored events are history, not listed here (`escalator audit export` has them).
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Engine, and_, or_, select, update

from connector import audit
from connector.store.db import writing
from connector.store.inbox import FAILED, PENDING, PROCESSING
from connector.store.tables import audit_log, inbox, tickets

DISCARDED = "discarded"
RETRYING = "retrying"
STATUSES = ("failed", "retrying", "pending", "processing", "discarded")
OPEN_STATUSES = ("failed", "retrying", "pending", "processing")  # what `list_events` shows by default
MAX_WHY = 500  # characters: a reason, not a report
# A reason holds something visible: not spaces (of any script) or control characters alone. One
# pattern for the API's document (JSON Schema's ECMA regex) and for us (Python's), meaning the same.
VISIBLE = r"[^\x00-\x20\x7f-\xa0\u1680\u2000-\u200b\u2028\u2029\u202f\u205f\u3000\ufeff]"
RETRY_BATCH = 200  # events requeued (and audited) per transaction by retry_failed


class EventError(Exception):
    """An operation on one event that cannot be done; the message says why and what to do instead."""


class EventNotFound(EventError):
    pass


@dataclass(frozen=True)
class EventSummary:
    """One inbox event as an operator sees it; no body."""

    id: int
    platform: str
    delivery_id: str
    event_type: str
    ticket_id: str | None
    ticket_key: str | None
    status: str  # one of STATUSES, or done / ignored
    attempts: int
    received_at: datetime
    next_attempt_at: datetime | None
    lease_until: datetime | None
    finished_at: datetime | None
    last_error: str | None

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        for key, value in data.items():
            if isinstance(value, datetime):
                data[key] = value.isoformat()
        return data


_COLUMNS = (
    inbox.c.id, inbox.c.platform, inbox.c.delivery_id, inbox.c.event_type, inbox.c.ticket_id,
    tickets.c.ticket_key, inbox.c.status, inbox.c.attempts, inbox.c.received_at, inbox.c.next_attempt_at,
    inbox.c.lease_until, inbox.c.finished_at, inbox.c.last_error,
)  # fmt: skip
_FROM = inbox.outerjoin(
    tickets, and_(tickets.c.platform == inbox.c.platform, tickets.c.ticket_id == inbox.c.ticket_id)
)


def _status_condition(status: str):
    if status == "pending":
        return and_(inbox.c.status == PENDING, inbox.c.attempts == 0)
    if status == RETRYING:
        return and_(inbox.c.status == PENDING, inbox.c.attempts > 0)
    return inbox.c.status == status


def _summary(row) -> EventSummary:
    status = row.status
    if status == PENDING and row.attempts > 0:
        status = RETRYING
    return EventSummary(
        id=row.id,
        platform=row.platform,
        delivery_id=row.delivery_id,
        event_type=row.event_type,
        ticket_id=row.ticket_id,
        ticket_key=row.ticket_key,
        status=status,
        attempts=row.attempts,
        received_at=row.received_at,
        next_attempt_at=row.next_attempt_at if status in ("pending", RETRYING) else None,
        lease_until=row.lease_until if status == PROCESSING else None,
        finished_at=row.finished_at,
        last_error=row.last_error,
    )


def list_events(
    engine: Engine,
    *,
    status: str | Sequence[str] | None = None,
    platform: str | None = None,
    ticket_id: str | None = None,
    limit: int = 100,
) -> list[EventSummary]:
    """Events with `status` (one of STATUSES, or several; default: every open one), newest first."""
    wanted = (status,) if isinstance(status, str) else tuple(status or OPEN_STATUSES)
    if unknown := [s for s in wanted if s not in STATUSES]:
        raise EventError(f"unknown status {unknown[0]!r}: choose from {', '.join(STATUSES)}")
    conditions = [_status_condition(s) for s in wanted]
    query = select(*_COLUMNS).select_from(_FROM).where(or_(*conditions))
    if platform:
        query = query.where(inbox.c.platform == platform)
    if ticket_id:
        query = query.where(inbox.c.ticket_id == ticket_id)
    query = query.order_by(inbox.c.id.desc()).limit(max(1, limit))
    with engine.connect() as conn:
        found = [_summary(row) for row in conn.execute(query)]
        return _with_keys(conn, found)


def _with_keys(conn: Connection, found: list[EventSummary]) -> list[EventSummary]:
    """Fill in ticket keys Escalator only knows from the audit log: a ticket whose first event
    failed has no key in its memory yet, but the failure's audit record names it."""
    missing = {(e.platform, e.ticket_id) for e in found if e.ticket_key is None and e.ticket_id}
    keys: dict[tuple[str, str], str] = {}
    for platform, ticket_id in missing:
        records = conn.execute(
            select(audit_log.c.record)
            .where(audit_log.c.platform == platform, audit_log.c.ticket_id == ticket_id)
            .order_by(audit_log.c.seq.desc())
            .limit(5)
        ).scalars()
        for record in records:
            key = (json.loads(record).get("ticket") or {}).get("key")
            if key:
                keys[(platform, ticket_id)] = key
                break
    if not keys:
        return found
    return [
        replace(e, ticket_key=keys.get((e.platform, e.ticket_id or ""))) if e.ticket_key is None else e
        for e in found
    ]


def get_event(engine: Engine, event_id: int) -> EventSummary:
    with engine.connect() as conn:
        return _get(conn, event_id)


def _get(conn: Connection, event_id: int) -> EventSummary:
    row = conn.execute(select(*_COLUMNS).select_from(_FROM).where(inbox.c.id == event_id)).first()
    if row is None:
        raise EventNotFound(f"no event {event_id} (`escalator events list` shows the ids)")
    return _with_keys(conn, [_summary(row)])[0]


def retry_event(engine: Engine, event_id: int, *, actor: str, now: datetime | None = None) -> EventSummary:
    """Put a failed event back in the queue (or a retrying one: try it now), audited; the event as it
    now stands. Its attempt count restarts, and the requests the platform already confirmed for it are
    still never sent twice."""
    now = now or datetime.now(UTC)
    with writing(engine) as conn:
        event = _get(conn, event_id)
        if event.status not in (FAILED, RETRYING):
            raise EventError(_cannot(event, "retry"))
        if not _requeue(conn, event, now):
            raise EventError(f"event {event_id} changed meanwhile (a worker took it); look again")
        _audit(conn, event, "retry", actor=actor, why=None, now=now)
        return _get(conn, event_id)


def retry_failed(
    engine: Engine, *, actor: str, platform: str | None = None, now: datetime | None = None
) -> int:
    """Put every failed event (of `platform`) back in the queue, each audited; how many were requeued."""
    now = now or datetime.now(UTC)
    count, after = 0, 0
    while True:
        with writing(engine) as conn:
            query = select(*_COLUMNS).select_from(_FROM).where(inbox.c.status == FAILED, inbox.c.id > after)
            if platform:
                query = query.where(inbox.c.platform == platform)
            rows = conn.execute(query.order_by(inbox.c.id).limit(RETRY_BATCH)).all()
            for row in rows:
                event = _summary(row)
                after = event.id
                if _requeue(conn, event, now):
                    _audit(conn, event, "retry", actor=actor, why=None, now=now)
                    count += 1
        if len(rows) < RETRY_BATCH:
            return count


def discard_event(
    engine: Engine, event_id: int, *, why: str, actor: str, now: datetime | None = None
) -> EventSummary:
    """Give up on an event that waits (failed, retrying or pending), with the reason, audited. A
    discarded event is never processed and no longer holds back its ticket's later events."""
    why = " ".join((why or "").split())
    if not re.search(VISIBLE, why):
        raise EventError("say why the event is discarded (--why TEXT): the reason goes into the audit log")
    if len(why) > MAX_WHY:
        raise EventError(f"the reason is {len(why)} characters; keep it under {MAX_WHY}")
    now = now or datetime.now(UTC)
    with writing(engine) as conn:
        event = _get(conn, event_id)
        if event.status not in (FAILED, RETRYING, "pending"):
            raise EventError(_cannot(event, "discard"))
        changed = conn.execute(
            update(inbox)
            .where(inbox.c.id == event.id, inbox.c.status == (FAILED if event.status == FAILED else PENDING))
            .values(status=DISCARDED, finished_at=now, next_attempt_at=now)
            .returning(inbox.c.id)
        ).first()
        if changed is None:
            raise EventError(f"event {event_id} changed meanwhile (a worker took it); look again")
        _audit(conn, event, "discard", actor=actor, why=why, now=now)
        return _get(conn, event_id)


def _requeue(conn: Connection, event: EventSummary, now: datetime) -> bool:
    status_now = FAILED if event.status == FAILED else PENDING
    changed = conn.execute(
        update(inbox)
        .where(inbox.c.id == event.id, inbox.c.status == status_now)
        .values(status=PENDING, attempts=0, lease_expiries=0, next_attempt_at=now, finished_at=None)
        .returning(inbox.c.id)
    ).first()
    return changed is not None


def _cannot(event: EventSummary, what: str) -> str:
    if event.status == PROCESSING:
        until = event.lease_until.isoformat() if event.lease_until else "its lease ends"
        return f"event {event.id} is being processed by a worker (lease until {until}); look again later"
    if event.status in ("done", "ignored"):
        return f"event {event.id} is {event.status}: there is nothing to {what}"
    if event.status == DISCARDED:
        return f"event {event.id} was discarded; a discarded event stays discarded"
    if event.status == "pending":
        return f"event {event.id} has not been tried yet: it is processed as soon as a worker is free"
    return f"event {event.id} is {event.status}: it cannot be {what}ed"


def _audit(conn: Connection, event: EventSummary, action: str, *, actor: str, why: str | None,
           now: datetime) -> None:  # fmt: skip
    """The operator's action, in the same transaction as the change it records."""
    outcome = "requeued" if action == "retry" else "discarded"
    record = {
        "platform": event.platform,
        "ticket": {"id": event.ticket_id, "key": event.ticket_key, "url": None},
        "trigger": {
            "kind": "operator",
            "event_type": event.event_type,
            "delivery_id": event.delivery_id,
            "received_at": event.received_at.isoformat(),
            "attempt": event.attempts,
        },
        "rules": [],
        "reasons": [why] if why else [],
        "operator": {
            "action": action,
            "actor": audit.person("escalator", actor),  # a person: a keyed pseudonym, erasable by `forget`
            "event_id": event.id,
            "status_before": event.status,
            "last_error": event.last_error,
        },
        "outcome": outcome,
        "detail": (f"discarded by an operator: {why}" if why else "put back in the queue by an operator"),
    }
    audit.append(conn, record, at=now)
