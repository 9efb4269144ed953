"""The durable inbox: every accepted webhook delivery, claimed by workers one ticket at a time.

Life of a row: pending → processing (leased) → done | ignored | failed.
A transient platform error puts it back to pending with a later `next_attempt_at`;
a worker that dies mid-way leaves an expired lease, and the row is claimed again.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, Table, func, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Dialect

from connector.store.db import writing
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
    confirmed: frozenset[str]
    received_at: datetime


_INSERT_CACHE: dict[tuple[str, str], Any] = {}


def _insert_ignoring_duplicates(conn: Connection, table: Table, values: dict) -> bool:
    """INSERT … ON CONFLICT DO NOTHING; True when a row was inserted.

    The statement is built once per table and dialect and reused with new parameters.
    RETURNING, not rowcount: psycopg reports -1 for this statement under SQLAlchemy 2.1.
    """
    key = (table.name, conn.dialect.name)
    stmt = _INSERT_CACHE.get(key)
    if stmt is None:
        insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
        stmt = insert(table).on_conflict_do_nothing().returning(*table.primary_key.columns)
        _INSERT_CACHE[key] = stmt
    return conn.execute(stmt, values).first() is not None


def new_row(
    platform: str,
    delivery_id: str,
    event_type: str,
    ticket_id: str | None,
    ignored: bool,
    body: bytes,
    now: datetime,
) -> dict[str, Any]:
    """The inbox row for a delivery just received."""
    return dict(
        platform=platform,
        delivery_id=delivery_id,
        event_type=event_type,
        ticket_id=ticket_id,
        ignored=ignored,
        body=body,
        received_at=now,
        status=PENDING,
        attempts=0,
        next_attempt_at=now,
    )


_ROW_COLUMNS = (
    "platform", "delivery_id", "event_type", "ticket_id", "ignored", "body", "received_at", "status",
    "attempts", "next_attempt_at",
)  # fmt: skip
_ROW_INSERT: dict[str, tuple[str, list]] = {}


def store_rows(dbapi_connection: Any, dialect: Dialect, rows: list[dict[str, Any]]) -> list[bool]:
    """Insert new_row()s in the DBAPI connection's open transaction; False for each id already stored.

    This is the webhook hot path, so it runs one prepared statement on the DBAPI cursor with
    SQLAlchemy's own bind processors (values are stored exactly as Core would store them);
    building a Core statement per row cost more than the insert.
    """
    prepared = _ROW_INSERT.get(dialect.name)
    if prepared is None:
        mark = "?" if dialect.paramstyle == "qmark" else "%s"
        sql = (
            f"INSERT INTO inbox ({', '.join(_ROW_COLUMNS)}) VALUES ({', '.join([mark] * len(_ROW_COLUMNS))}) "
            "ON CONFLICT (platform, delivery_id) DO NOTHING"
        )
        processors = [
            inbox.c[name].type.dialect_impl(dialect).bind_processor(dialect) for name in _ROW_COLUMNS
        ]
        prepared = _ROW_INSERT[dialect.name] = (sql, processors)
    sql, processors = prepared
    cursor = dbapi_connection.cursor()
    try:
        stored = []
        for row in rows:
            values = [row[name] for name in _ROW_COLUMNS]
            cursor.execute(sql, [p(v) if p else v for p, v in zip(processors, values, strict=True)])
            stored.append(cursor.rowcount == 1)
        return stored
    finally:
        cursor.close()


def accept(engine: Engine, row: dict[str, Any]) -> bool:
    """Store one new_row() durably in its own transaction. False when it was stored before (a redelivery)."""
    with writing(engine) as conn:
        return store_rows(conn.connection.dbapi_connection, conn.dialect, [row])[0]


def claim(engine: Engine, *, owner: str, now: datetime, lease: timedelta, limit: int) -> list[InboxItem]:
    """Lease up to `limit` due rows, at most one per ticket, each the oldest unfinished of its ticket.

    Candidates are read without locks; each is then taken with two compare-and-sets (the
    ticket's lease, the row's status), so two workers or replicas racing for the same row
    cannot both win. Per-ticket order holds because only a ticket's oldest unfinished row
    is a candidate.
    """
    _recover_expired(engine, now)
    until = now + lease
    claimed: list[InboxItem] = []
    # The oldest unfinished row of each ticket; only unfinished rows are read, so the cost
    # follows the backlog, never the history (a NOT EXISTS over older rows was O(history²)).
    heads = (
        select(func.min(inbox.c.id))
        .where(inbox.c.status.in_((PENDING, PROCESSING)), inbox.c.ticket_id.is_not(None))
        .group_by(inbox.c.platform, inbox.c.ticket_id)
    )
    with engine.connect() as conn:  # a read: it needs no writer lock
        candidates = conn.execute(
            select(inbox.c.id, inbox.c.platform, inbox.c.ticket_id)
            .where(
                inbox.c.status == PENDING,
                inbox.c.next_attempt_at <= now,
                or_(inbox.c.ticket_id.is_(None), inbox.c.id.in_(heads)),
            )
            .order_by(inbox.c.id)
            .limit(limit)
        ).all()
    for row in candidates:
        with writing(engine) as conn:
            if row.ticket_id is not None and not _lease_ticket(
                conn, row.platform, row.ticket_id, owner, now, until
            ):
                continue
            taken = conn.execute(
                update(inbox)
                .where(inbox.c.id == row.id, inbox.c.status == PENDING)
                .values(
                    status=PROCESSING, lease_owner=owner, lease_until=until, attempts=inbox.c.attempts + 1
                )
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
                confirmed=frozenset(item.confirmed or ()),
                received_at=item.received_at,
            )
        )
    return claimed


def _recover_expired(engine: Engine, now: datetime) -> None:
    """Rows whose worker died mid-way go back to pending, keeping the requests they confirmed."""
    expired = (inbox.c.status == PROCESSING) & (inbox.c.lease_until < now)
    with engine.connect() as conn:
        # Almost always nothing expired: look before taking the writer lock the webhooks need.
        if conn.execute(select(inbox.c.id).where(expired).limit(1)).first() is None:
            return
    with writing(engine) as conn:
        conn.execute(
            update(inbox)
            .where(expired)
            .values(status=PENDING, lease_owner=None, lease_until=None, next_attempt_at=now)
        )


def _lease_ticket(
    conn: Connection, platform: str, ticket_id: str, owner: str, now: datetime, until: datetime
) -> bool:
    _insert_ignoring_duplicates(
        conn, tickets, dict(platform=platform, ticket_id=ticket_id, priority_pinned=False)
    )
    return (
        conn.execute(
            update(tickets)
            .where(
                tickets.c.platform == platform,
                tickets.c.ticket_id == ticket_id,
                (tickets.c.lease_until.is_(None))
                | (tickets.c.lease_until < now)
                | (tickets.c.lease_owner == owner),
            )
            .values(lease_owner=owner, lease_until=until)
        ).rowcount
        == 1
    )


def _release_ticket(conn: Connection, platform: str, ticket_id: str, owner: str) -> None:
    conn.execute(
        update(tickets)
        .where(
            tickets.c.platform == platform, tickets.c.ticket_id == ticket_id, tickets.c.lease_owner == owner
        )
        .values(lease_owner=None, lease_until=None)
    )


def record_confirmed(engine: Engine, item: InboxItem, confirmed: frozenset[str]) -> None:
    """Remember which requests (by fingerprint) the platform confirmed for this item."""
    with writing(engine) as conn:
        conn.execute(update(inbox).where(inbox.c.id == item.id).values(confirmed=sorted(confirmed)))


def finish(
    conn: Connection, item: InboxItem, *, status: str, owner: str, now: datetime, error: str | None = None
) -> None:
    """Close the item (inside the caller's transaction, with its audit record) and free its ticket."""
    _release_item(conn, item, owner, status=status, finished_at=now, last_error=error)


def retry_later(conn: Connection, item: InboxItem, *, owner: str, at: datetime, error: str) -> None:
    """Put the item back to pending until `at`; its ticket stays blocked for later events (order)."""
    _release_item(conn, item, owner, status=PENDING, next_attempt_at=at, last_error=error)


def _release_item(conn: Connection, item: InboxItem, owner: str, **values: Any) -> None:
    conn.execute(
        update(inbox).where(inbox.c.id == item.id).values(lease_owner=None, lease_until=None, **values)
    )
    if item.ticket_id is not None:
        _release_ticket(conn, item.platform, item.ticket_id, owner)


def counts(engine: Engine) -> dict[str, int]:
    """Rows per status, for /metrics and readiness."""
    with engine.connect() as conn:
        rows = conn.execute(select(inbox.c.status, func.count()).group_by(inbox.c.status)).all()
    return {status: n for status, n in rows}
