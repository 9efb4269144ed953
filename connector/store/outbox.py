"""The outbox table: notifications queued with their decision, taken by the sender one at a time per
ticket and channel (a thread's first message goes before its replies), and each ticket's threads."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, bindparam, or_, select, update

from connector.store.db import one_statement, reading
from connector.store.prepared import InsertRows, Prepared
from connector.store.tables import channel_threads, outbox

PENDING, SENT, FAILED, DRY_RUN = "pending", "sent", "failed", "dry_run"


@dataclass(frozen=True)
class QueuedMessage:
    id: int
    decision_id: str
    platform: str
    ticket_id: str
    channel: str
    kind: str
    message: Mapping[str, Any]
    attempts: int
    created_at: datetime


# A decision's messages in one statement on PostgreSQL; one queued before (the same delivery decided
# again) is left as it is.
_QUEUE = InsertRows(outbox, lambda insert: insert.on_conflict_do_nothing(index_elements=["dedupe_key"]))


def enqueue(conn: Connection, rows: Iterable[Mapping[str, Any]], *, decision_id: str, now: datetime) -> None:
    """Queue messages inside the decision's transaction; a message already queued (the same
    delivery decided again) is left as it is."""
    values = [
        {
            **row,
            "decision_id": decision_id,
            "status": PENDING,
            "attempts": 0,
            "created_at": now,
            "next_attempt_at": now,
        }
        for row in rows
    ]
    _QUEUE.send(conn, values)


# The worker's outbox statements, compiled once (connector/store/prepared.py): a Core statement cost
# more Python than the sender's work on a message. One message each, not `id IN (…)`: an expanding IN
# is compiled per call; sent together, their answers come in one round trip.
_PENDING = Prepared(
    select(outbox.c.id, outbox.c.platform, outbox.c.ticket_id, outbox.c.channel, outbox.c.next_attempt_at,
           outbox.c.lease_until)
    .where(outbox.c.status == PENDING).order_by(outbox.c.id).limit(bindparam("b_limit"))
)  # fmt: skip
_MESSAGE = Prepared(select(outbox).where(outbox.c.id == bindparam("b_id")))
_TAKE = Prepared(
    update(outbox)
    .where(
        outbox.c.id == bindparam("b_id"),
        outbox.c.status == PENDING,
        or_(outbox.c.lease_until.is_(None), outbox.c.lease_until <= bindparam("b_now")),
    )
    .returning(outbox.c.id)
)


def due(engine: Engine, *, now: datetime, limit: int) -> list[QueuedMessage]:
    """The oldest pending message of each ticket and channel, when it is due and nobody holds it."""
    with reading(engine) as conn:
        rows = _PENDING.rows(conn, {"b_limit": limit * 20})
        seen: set[tuple[str, str, str]] = set()
        chosen: list[int] = []
        for row in rows:
            key = (row.platform, row.ticket_id, row.channel)
            if key in seen:
                continue  # a later message waits for the earlier one (its thread, its order)
            seen.add(key)
            if row.next_attempt_at <= now and (row.lease_until is None or row.lease_until <= now):
                chosen.append(row.id)
                if len(chosen) >= limit:
                    break
        reads = [_MESSAGE.rows_later(conn, {"b_id": message_id}) for message_id in chosen]
        return [_queued(row) for read in reads for row in read()]


def take_many(engine: Engine, ids: list[int], *, owner: str, now: datetime, lease: timedelta) -> set[int]:
    """Lease several messages, in the order of their ids, all committed together (PostgreSQL: sent
    in one round trip without a transaction's own); the ids this sender won."""
    values = {"b_now": now, "lease_owner": owner, "lease_until": now + lease}
    with one_statement(engine) as conn:
        reads = [_TAKE.rows_later(conn, {"b_id": message_id, **values}) for message_id in sorted(ids)]
        return {row.id for read in reads for row in read()}


_GIVE_BACK = update(outbox).where(
    outbox.c.id.in_(bindparam("b_ids", expanding=True)),
    outbox.c.status == PENDING,
    outbox.c.lease_owner == bindparam("b_owner"),
)


def give_back(engine: Engine, ids: list[int], *, owner: str) -> int:
    """Messages this sender still leases, due again at once (what their lease running out would do,
    without the wait), in one statement as take_many; how many. One whose outcome was recorded
    after all is not leased any more."""
    with one_statement(engine) as conn:
        result = conn.execute(
            _GIVE_BACK, {"b_ids": ids, "b_owner": owner, "lease_owner": None, "lease_until": None}
        )
        return result.rowcount or 0


# Built once: a statement holding its values was built and looked up in the compiled cache per message.
_FINISH = Prepared(update(outbox).where(outbox.c.id == bindparam("b_id")))

# One message each, not `id IN (…)`: an expanding IN is compiled per call, so it would be a Core
# statement, which in a pipelined transaction waits for every answer queued before it.
_STILL_OURS = Prepared(
    select(outbox.c.id)
    .where(
        outbox.c.id == bindparam("b_id"),
        outbox.c.status == PENDING,
        outbox.c.lease_owner == bindparam("b_owner"),
    )
    .with_for_update()
)


def still_ours(conn: Connection, ids: list[int], *, owner: str) -> set[int]:
    """Of the messages `ids`, those `owner` still leases, locked until the transaction ends (on
    PostgreSQL, in the order of their ids, as every sender locks them; SQLite's writer holds the whole
    file): a sender that lost a lease (cut off from the database past it) records nothing over the
    worker that took the message since. In a pipelined transaction the answers come in one round trip."""
    reads = [
        _STILL_OURS.rows_later(conn, {"b_id": message_id, "b_owner": owner}) for message_id in sorted(ids)
    ]
    return {row.id for read in reads for row in read()}


def finish_many(conn: Connection, finished: list[tuple[int, str, int, str, datetime]]) -> None:
    """Messages done with, each (id, status, attempts, answer, when): one statement run for all."""
    _FINISH.run_many(conn, [
        dict(b_id=message_id, status=status, attempts=attempts, answer=answer, lease_owner=None,
             lease_until=None, sent_at=at if status == SENT else None)
        for message_id, status, attempts, answer, at in finished
    ])  # fmt: skip


def retry_later(conn: Connection, message_id: int, *, attempts: int, answer: str, at: datetime) -> None:
    conn.execute(
        update(outbox)
        .where(outbox.c.id == message_id)
        .values(attempts=attempts, answer=answer, next_attempt_at=at, lease_owner=None, lease_until=None)
    )


def thread_of(conn: Connection, platform: str, ticket_id: str, channel: str) -> str | None:
    return conn.execute(
        select(channel_threads.c.thread).where(
            channel_threads.c.platform == platform,
            channel_threads.c.ticket_id == ticket_id,
            channel_threads.c.channel == channel,
        )
    ).scalar()


def remember_thread(
    conn: Connection, platform: str, ticket_id: str, channel: str, thread: str, now: datetime
) -> None:
    if thread_of(conn, platform, ticket_id, channel) is None:
        conn.execute(
            channel_threads.insert().values(
                platform=platform, ticket_id=ticket_id, channel=channel, thread=thread, started_at=now
            )
        )


def for_ticket(engine: Engine, platform: str, ticket_id: str) -> list[dict[str, Any]]:
    """Every message about one ticket, oldest first (the console's ticket page, the report)."""
    with engine.connect() as conn:
        rows = conn.execute(
            select(outbox)
            .where(outbox.c.platform == platform, outbox.c.ticket_id == ticket_id)
            .order_by(outbox.c.id)
        ).all()
    return [dict(row._mapping) for row in rows]


def counts(engine: Engine) -> dict[str, int]:
    from sqlalchemy import func

    with engine.connect() as conn:
        rows = conn.execute(select(outbox.c.status, func.count()).group_by(outbox.c.status)).all()
    return {status: n for status, n in rows}


def _queued(row: Any) -> QueuedMessage:
    return QueuedMessage(
        id=row.id,
        decision_id=row.decision_id,
        platform=row.platform,
        ticket_id=row.ticket_id,
        channel=row.channel,
        kind=row.kind,
        message=row.message,
        attempts=row.attempts,
        created_at=row.created_at,
    )
