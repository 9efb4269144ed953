"""The durable inbox: every accepted webhook delivery, claimed by workers one ticket at a time.

Life of a row: pending → processing (leased) → done | ignored | failed.
A transient platform error puts it back to pending with a later `next_attempt_at`;
a worker that dies mid-way leaves an expired lease, and the row is claimed again.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Connection, Engine, and_, exists, select, update
from sqlalchemy.dialects import postgresql, sqlite

from connector.store.tables import inbox, tickets

PENDING, PROCESSING, DONE, IGNORED, FAILED = "pending", "processing", "done", "ignored", "failed"


@dataclass(frozen=True)
class InboxItem:
    id: int
    platform: str
    delivery_id: str
    event_type: str
    ticket_id: str | None
    body: bytes
    ignored: bool
    attempts: int
    progress: int
    received_at: datetime


def _insert_ignoring_duplicates(conn: Connection, table, values: dict) -> bool:
    """INSERT … ON CONFLICT DO NOTHING; True when a row was inserted.

    RETURNING, not rowcount: psycopg reports -1 for this statement under SQLAlchemy 2.1.
    """
    insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
    stmt = insert(table).values(**values).on_conflict_do_nothing().returning(*table.primary_key.columns)
    return conn.execute(stmt).first() is not None


def accept(
    engine: Engine,
    *,
    platform: str,
    delivery_id: str,
    event_type: str,
    ticket_id: str | None,
    ignored: bool,
    body: bytes,
    now: datetime,
) -> bool:
    """Store a delivery durably. False when this delivery id was stored before (a redelivery)."""
    with engine.begin() as conn:
        return _insert_ignoring_duplicates(
            conn,
            inbox,
            dict(
                platform=platform,
                delivery_id=delivery_id,
                event_type=event_type,
                ticket_id=ticket_id,
                ignored=ignored,
                body=body,
                received_at=now,
                status=PENDING,
                attempts=0,
                progress=0,
                next_attempt_at=now,
            ),
        )


def claim(engine: Engine, *, owner: str, now: datetime, lease: timedelta, limit: int) -> list[InboxItem]:
    """Lease up to `limit` due rows, at most one per ticket, each the oldest unfinished of its ticket.

    Per-ticket order holds across workers and replicas: a row is only claimable when no older
    row of its ticket is unfinished, and the ticket's own lease is taken with a compare-and-set.
    """
    _recover_expired(engine, now)
    until = now + lease
    claimed: list[InboxItem] = []
    with engine.begin() as conn:
        older = inbox.alias("older")
        candidates = conn.execute(
            select(inbox.c.id, inbox.c.platform, inbox.c.ticket_id)
            .where(
                inbox.c.status == PENDING,
                inbox.c.next_attempt_at <= now,
                ~exists().where(
                    older.c.platform == inbox.c.platform,
                    older.c.ticket_id == inbox.c.ticket_id,
                    older.c.id < inbox.c.id,
                    older.c.status.in_((PENDING, PROCESSING)),
                ),
            )
            .order_by(inbox.c.id)
            .limit(limit)
            .with_for_update(skip_locked=True, of=inbox)
        ).all()
    for row in candidates:
        with engine.begin() as conn:
            if row.ticket_id is not None and not _lease_ticket(conn, row.platform, row.ticket_id, owner, now, until):
                continue
            taken = conn.execute(
                update(inbox)
                .where(inbox.c.id == row.id, inbox.c.status == PENDING)
                .values(status=PROCESSING, lease_owner=owner, lease_until=until, attempts=inbox.c.attempts + 1)
            ).rowcount
            if not taken:
                if row.ticket_id is not None:
                    _release_ticket(conn, row.platform, row.ticket_id, owner)
                continue
            item = conn.execute(select(inbox).where(inbox.c.id == row.id)).one()
        claimed.append(
            InboxItem(
                id=item.id,
                platform=item.platform,
                delivery_id=item.delivery_id,
                event_type=item.event_type,
                ticket_id=item.ticket_id,
                body=bytes(item.body),
                ignored=bool(item.ignored),
                attempts=item.attempts,
                progress=item.progress,
                received_at=item.received_at,
            )
        )
    return claimed


def _recover_expired(engine: Engine, now: datetime) -> None:
    """Rows whose worker died mid-way go back to pending, keeping the progress they confirmed."""
    with engine.begin() as conn:
        conn.execute(
            update(inbox)
            .where(inbox.c.status == PROCESSING, inbox.c.lease_until < now)
            .values(status=PENDING, lease_owner=None, lease_until=None, next_attempt_at=now)
        )


def _lease_ticket(conn: Connection, platform: str, ticket_id: str, owner: str, now: datetime, until: datetime) -> bool:
    _insert_ignoring_duplicates(conn, tickets, dict(platform=platform, ticket_id=ticket_id, priority_pinned=False))
    return (
        conn.execute(
            update(tickets)
            .where(
                tickets.c.platform == platform,
                tickets.c.ticket_id == ticket_id,
                (tickets.c.lease_until.is_(None)) | (tickets.c.lease_until < now) | (tickets.c.lease_owner == owner),
            )
            .values(lease_owner=owner, lease_until=until)
        ).rowcount
        == 1
    )


def _release_ticket(conn: Connection, platform: str, ticket_id: str, owner: str) -> None:
    conn.execute(
        update(tickets)
        .where(tickets.c.platform == platform, tickets.c.ticket_id == ticket_id, tickets.c.lease_owner == owner)
        .values(lease_owner=None, lease_until=None)
    )


def record_progress(engine: Engine, item: InboxItem, progress: int) -> None:
    """Remember that the first `progress` requests of this item's plan were confirmed by the platform."""
    with engine.begin() as conn:
        conn.execute(update(inbox).where(inbox.c.id == item.id).values(progress=progress))


def finish(conn: Connection, item: InboxItem, *, status: str, owner: str, now: datetime, error: str | None = None) -> None:
    """Close the item (inside the caller's transaction, with its audit record) and free its ticket."""
    conn.execute(
        update(inbox)
        .where(inbox.c.id == item.id)
        .values(status=status, lease_owner=None, lease_until=None, finished_at=now, last_error=error)
    )
    if item.ticket_id is not None:
        _release_ticket(conn, item.platform, item.ticket_id, owner)


def retry_later(conn: Connection, item: InboxItem, *, owner: str, at: datetime, error: str) -> None:
    """Put the item back to pending until `at`; its ticket stays blocked for later events (order)."""
    conn.execute(
        update(inbox)
        .where(inbox.c.id == item.id)
        .values(status=PENDING, lease_owner=None, lease_until=None, next_attempt_at=at, last_error=error)
    )
    if item.ticket_id is not None:
        _release_ticket(conn, item.platform, item.ticket_id, owner)


def counts(engine: Engine) -> dict[str, int]:
    """Rows per status, for /metrics and readiness."""
    from sqlalchemy import func

    with engine.connect() as conn:
        rows = conn.execute(select(inbox.c.status, func.count()).group_by(inbox.c.status)).all()
    return {status: n for status, n in rows}


def next_due(engine: Engine, now: datetime) -> datetime | None:
    """When the earliest pending row becomes due (None when nothing is pending)."""
    from sqlalchemy import func

    with engine.connect() as conn:
        return conn.execute(select(func.min(inbox.c.next_attempt_at)).where(and_(inbox.c.status == PENDING))).scalar()
