"""Durable SLA timers: armed per ticket from the policy's clocks, fired by the scheduler's tick.

Firing a timer IS inserting an inbox row for it (`timer:<ticket>:<key>:<due>`), in the same
transaction that marks the timer fired: the worker then handles it like any webhook, in the
ticket's order, with the same audit. Two schedulers cannot fire one timer twice: due rows are
taken with FOR UPDATE SKIP LOCKED on PostgreSQL (SQLite has one writer at a time), and the
inbox's unique delivery id would refuse a second row anyway.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import Connection, Engine, Row, bindparam, delete, func, select, update

from connector.store.db import reading, writing
from connector.store.inbox import new_row, store_rows
from connector.store.prepared import InsertRows, Prepared
from connector.store.tables import timers

TIMER_EVENT_PREFIX = "timer:"


class ArmedTimer(Protocol):
    """What the store needs of a timer (policies.sla.Timer)."""

    key: str
    kind: Any  # an EventKind
    metric: str
    percent: int
    due: datetime
    target: timedelta
    calendar: str


@dataclass(frozen=True)
class FiredTimer:
    """A timer the tick fired, as the inbox row's body describes it."""

    platform: str
    ticket_id: str
    key: str
    kind: str
    metric: str
    percent: int
    target: timedelta
    calendar: str
    due: datetime
    fired_at: datetime
    late: bool

    def to_json(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "kind": self.kind,
            "metric": self.metric,
            "percent": self.percent,
            "target_seconds": self.target.total_seconds(),
            "calendar": self.calendar,
            "due": self.due.isoformat(),
            "fired_at": self.fired_at.isoformat(),
            "late": self.late,
        }

    @classmethod
    def from_json(cls, platform: str, ticket_id: str, data: dict[str, Any]) -> FiredTimer:
        return cls(
            platform=platform,
            ticket_id=ticket_id,
            key=data["key"],
            kind=data["kind"],
            metric=data["metric"],
            percent=int(data["percent"]),
            target=timedelta(seconds=float(data["target_seconds"])),
            calendar=data["calendar"],
            due=datetime.fromisoformat(data["due"]),
            fired_at=datetime.fromisoformat(data["fired_at"]),
            late=bool(data["late"]),
        )


# reconcile's statements, built once: building them per call cost more than running them.
# Parameters named b_* select rows; the values written are passed under their column names.
_EXISTING = Prepared(
    select(timers.c.id, timers.c.key, timers.c.due_at).where(
        timers.c.platform == bindparam("b_platform"), timers.c.ticket_id == bindparam("b_ticket_id")
    )
)
_ARM = InsertRows(timers)  # a ticket's new timers in one statement on PostgreSQL
_REARM = Prepared(update(timers).where(timers.c.id == bindparam("b_id")))
# One row each (executemany), not `id IN (…)`: an expanding IN is compiled per call, so it would be a
# Core statement, which in a pipelined record waits for every answer queued before it.
_DISARM = Prepared(delete(timers).where(timers.c.id == bindparam("b_id")))


def digest(wanted: Iterable[ArmedTimer]) -> str:
    """What reconcile() compares of a ticket's timers (their keys and due instants), in one short
    text: the worker keeps it with the ticket's clocks (`ARMED_KEY`) and, while the timers it wants
    are the ones it armed last, neither reads nor writes them. reconcile() and fire_due() are the
    only writers of a ticket's timers; a caller of reconcile() other than the worker drops the kept
    digest (connector/retarget.py), so a stale one is never trusted."""
    pairs = sorted((t.key, t.due.astimezone(UTC).isoformat()) for t in wanted)
    return hashlib.sha256(repr(pairs).encode()).hexdigest()[:32]


# Where the worker keeps digest() in the ticket's stored SLA state (tickets.sla).
ARMED_KEY = "armed"


def reconcile(
    conn: Connection,
    platform: str,
    ticket_id: str,
    wanted: Iterable[ArmedTimer],
    now: datetime,
    *,
    existing: Mapping[str, Row] | None = None,
) -> int:
    """Make the ticket's armed timers exactly `wanted` (inside the caller's transaction); how many
    timers were armed, re-armed or removed. `existing` is `in_place()` when the caller read it already.

    A timer whose due instant is unchanged is left alone, fired or not; a changed one is
    re-armed (new due, not fired); one no longer wanted is removed. At most one statement
    each for the new, the re-armed and the removed timers, after the read.
    """
    if existing is None:
        existing = in_place(conn, platform, ticket_id)
    keep: set[str] = set()
    armed: list[dict[str, Any]] = []
    rearmed: list[dict[str, Any]] = []
    for timer in wanted:
        keep.add(timer.key)
        row = existing.get(timer.key)
        values = dict(
            kind=str(timer.kind),
            metric=timer.metric,
            percent=timer.percent,
            target_seconds=timer.target.total_seconds(),
            calendar=timer.calendar,
            due_at=timer.due,
            armed_at=now,
        )
        if row is None:
            armed.append(dict(platform=platform, ticket_id=ticket_id, key=timer.key, **values))
        elif row.due_at != timer.due:
            rearmed.append(dict(b_id=row.id, fired_at=None, **values))
    _ARM.send(conn, armed)
    _REARM.run_many(conn, rearmed)
    gone = [{"b_id": row.id} for key, row in existing.items() if key not in keep]
    _DISARM.run_many(conn, gone)
    return len(armed) + len(rearmed) + len(gone)


def fire_due(engine: Engine, *, now: datetime, limit: int, late_after: timedelta) -> list[FiredTimer]:
    """Fire up to `limit` timers due at `now`, oldest due first: one inbox row each, one transaction.

    The read uses the partial index on unfired timers' due instant, so its cost follows the
    number of DUE timers, not the number armed.
    """
    with reading(engine) as conn:
        # Almost always nothing is due: look before taking SQLite's writer lock the webhooks need.
        if conn.execute(_due_ids(now, 1)).first() is None:
            return []
    due = (
        select(timers)
        .where(timers.c.fired_at.is_(None), timers.c.due_at <= now)
        .order_by(timers.c.due_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    with writing(engine) as conn:
        rows = conn.execute(due).all()
        if not rows:
            return []
        fired = [
            FiredTimer(
                platform=row.platform,
                ticket_id=row.ticket_id,
                key=row.key,
                kind=row.kind,
                metric=row.metric,
                percent=row.percent,
                target=timedelta(seconds=row.target_seconds),
                calendar=row.calendar,
                due=row.due_at,
                fired_at=now,
                late=now - row.due_at > late_after,
            )
            for row in rows
        ]
        store_rows(
            conn.connection.dbapi_connection,
            conn.dialect,
            [
                new_row(
                    t.platform,
                    delivery_id(t),
                    t.kind,
                    t.ticket_id,
                    False,
                    json.dumps({"timer": t.to_json()}).encode(),
                    now,
                )  # fmt: skip
                for t in fired
            ],
        )
        conn.execute(update(timers).where(timers.c.id.in_([row.id for row in rows])).values(fired_at=now))
    return fired


def _due_ids(now: datetime, limit: int):
    return (
        select(timers.c.id)
        .where(timers.c.fired_at.is_(None), timers.c.due_at <= now)
        .order_by(timers.c.due_at)
        .limit(limit)
    )


def delivery_id(timer: FiredTimer) -> str:
    """The inbox id of one firing: the same timer due at the same instant is one delivery."""
    return f"{TIMER_EVENT_PREFIX}{timer.ticket_id}:{timer.key}:{timer.due.isoformat()}"


def in_place(conn: Connection, platform: str, ticket_id: str) -> dict[str, Row]:
    """The ticket's timers, fired or not: key → row (id, key, due_at)."""
    rows = _EXISTING.rows(conn, {"b_platform": platform, "b_ticket_id": ticket_id})
    return {row.key: row for row in rows}


def armed(conn: Connection, platform: str, ticket_id: str) -> dict[str, datetime]:
    """The ticket's unfired timers: key → due instant (tests, `doctor`-style views)."""
    rows = conn.execute(
        select(timers.c.key, timers.c.due_at).where(
            timers.c.platform == platform, timers.c.ticket_id == ticket_id, timers.c.fired_at.is_(None)
        )
    )
    return {row.key: row.due_at for row in rows}


def counts(engine: Engine) -> dict[str, int]:
    """Timers waiting to come due ("armed") and fired but not yet handled by a worker ("fired"),
    for /metrics. A handled timer is removed or re-armed, so neither is a running total."""
    with engine.connect() as conn:
        total, fired = conn.execute(
            select(func.count(), func.count(timers.c.fired_at)).select_from(timers)
        ).one()
    return {"armed": total - fired, "fired": fired}


def overdue_seconds(engine: Engine, now: datetime) -> float:
    """How long the oldest due, unfired timer has waited (0 when none): a stuck scheduler shows here."""
    with engine.connect() as conn:
        oldest = conn.execute(
            select(func.min(timers.c.due_at)).where(timers.c.fired_at.is_(None), timers.c.due_at <= now)
        ).scalar()
    if oldest is None:
        return 0.0
    if oldest.tzinfo is None:  # an aggregate bypasses the column type's result processing
        oldest = oldest.replace(tzinfo=UTC)
    return max(0.0, (now - oldest).total_seconds())
