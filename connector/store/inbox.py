"""The durable inbox: every accepted webhook delivery, claimed by workers one ticket at a time.

Life of a row: pending → processing (leased) → done | ignored | failed.
A transient platform error puts it back to pending with a later `next_attempt_at`;
a worker that dies mid-way leaves an expired lease, and the row is claimed again.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    Connection,
    Engine,
    Integer,
    bindparam,
    exists,
    false,
    func,
    or_,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Dialect

from connector.store.db import (
    few_rows,
    indexed_by,
    one_statement,
    read_before_commit,
    reading,
    row_insert,
    writing,
)
from connector.store.group_commit import GroupCommit, Write
from connector.store.prepared import Prepared
from connector.store.tables import inbox, line_order, pending, tickets, unfinished
from connector.store.tickets import MEMORY

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
    lease_expiries: int = 0  # how often a worker died holding it (its lease ran out)
    in_flight: str | None = None  # a request's fingerprint, sent or being sent when that happened
    # The ticket's stored memory (tickets.MEMORY columns) as the claim leased it, or None when the
    # claim did not read it (no ticket id, or an item built elsewhere): the pipeline loads it then.
    memory: Any = None
    # The claim saw later rows of its ticket waiting behind it (the worker looks for them when it ends:
    # a row stored while no worker listened was signalled to nobody).
    behind: bool = False


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


def store_rows(dbapi_connection: Any, dialect: Dialect, rows: list[dict[str, Any]]) -> list[bool]:
    """Insert new_row()s in the DBAPI connection's open transaction; False for each id already stored.

    This is the webhook hot path, so it runs one statement text on DBAPI cursors (connector/store/db.py
    `row_insert`): a cursor a row, every row sent before any count is read, so through a Pipeline
    (connector/store/pgpipeline.py, the webhook intake's on PostgreSQL) the batch is one round trip."""
    insert = row_insert(dialect, inbox, _ROW_COLUMNS)
    sql = insert.sql + " ON CONFLICT (platform, delivery_id) DO NOTHING"
    cursors = []
    try:
        for row in rows:
            cursor = dbapi_connection.cursor()
            cursors.append(cursor)
            cursor.execute(sql, insert.bound([row[name] for name in _ROW_COLUMNS]))
        counts = [cursor.rowcount for cursor in reversed(cursors)]  # the last read first: one wait
        return [count == 1 for count in reversed(counts)]
    finally:
        for cursor in cursors:
            cursor.close()


def accept(engine: Engine, row: dict[str, Any]) -> bool:
    """Store one new_row() durably in its own transaction. False when it was stored before (a redelivery)."""
    with writing(engine) as conn:
        return store_rows(conn.connection.dbapi_connection, conn.dialect, [row])[0]


# The worker's statements are built once: constructing Core statements per call (coercing each
# literal, then computing the cache key over them) cost more than running them. Parameters named
# b_* select rows; the values written are passed under their column names.


def is_head(row: Any) -> Any:
    """`row` (the inbox's columns, or an alias's) names no ticket, or is the oldest unfinished row of its
    ticket: one probe of ix_inbox_open, which holds unfinished rows only, so the cost follows the
    ticket's backlog, never its history."""
    older = indexed_by(inbox, "older", "ix_inbox_open")
    return or_(
        row.ticket_id.is_(None),
        ~exists().where(
            older.c.platform == row.platform, older.c.ticket_id == row.ticket_id, older.c.id < row.id,
            unfinished(older),
        ),
    )  # fmt: skip


def _behind(row: Any) -> Any:
    """Whether a later row of `row`'s ticket waits behind it (one index probe: ix_inbox_ticket)."""
    later = inbox.alias("later")
    return exists().where(
        later.c.platform == row.platform, later.c.ticket_id == row.ticket_id, later.c.id > row.id,
        later.c.status == PENDING,
    )  # fmt: skip


# Walked in the line's order (ix_inbox_line) until the batch is full: unjudged first (judging is
# cheap, and a rank is what the line needs), then by rank, oldest first. SQLite is told which index:
# with no statistics it would start from ix_inbox_due and sort every due row to keep `b_limit`.
_LINE = indexed_by(inbox, "inbox", "ix_inbox_line")
_CANDIDATES = (
    select(_LINE.c.id, _LINE.c.platform, _LINE.c.ticket_id, _behind(_LINE.c).label("behind"))
    .where(pending(_LINE), _LINE.c.next_attempt_at <= bindparam("b_now"), is_head(_LINE.c))
    .order_by(*line_order(_LINE))
    .limit(bindparam("b_limit", type_=Integer))
)
# Taking the row and reading it back is one statement.
_TAKEN = (
    inbox.c.id, inbox.c.platform, inbox.c.delivery_id, inbox.c.event_type, inbox.c.ticket_id,
    inbox.c.body, inbox.c.ignored, inbox.c.attempts, inbox.c.confirmed, inbox.c.received_at,
    inbox.c.lease_expiries, inbox.c.in_flight,
)  # fmt: skip
_TAKE = Prepared(
    update(inbox)
    .where(inbox.c.id == bindparam("b_id"), inbox.c.status == PENDING)
    .values(status=PROCESSING, attempts=inbox.c.attempts + 1)
    .returning(*_TAKEN)
)
_EXPIRED = few_rows(inbox.c.status == PROCESSING) & (inbox.c.lease_until < bindparam("b_now"))
_ANY_EXPIRED = select(inbox.c.id).where(_EXPIRED).limit(1)
_RECOVER = update(inbox).where(_EXPIRED).values(lease_expiries=inbox.c.lease_expiries + 1)
# A worker's writes to a row it leased, fenced: they land only while the row is still its own. A
# worker cut off from the database past its lease (connector/lease_keeper.py) may find its row taken
# by another worker that has decided it since; its own late result must not overwrite that.
_UPDATE_MINE = Prepared(
    update(inbox)
    .where(
        inbox.c.id == bindparam("b_id"),
        inbox.c.status == PROCESSING,
        inbox.c.lease_owner == bindparam("b_owner"),
    )
    .returning(inbox.c.id)
)


class LeaseLost(Exception):
    """The delivery's lease ran out and another worker took it: this worker's result is dropped
    (its transaction rolled back); the other worker's decision stands."""

    def __init__(self, item: InboxItem, owner: str):
        self.item = item
        super().__init__(
            f"{item.platform} delivery {item.delivery_id} is no longer {owner}'s: its lease ran out and "
            "another worker took it (was the database out of reach longer than worker.lease_seconds?)"
        )


Fence = Callable[[], None]  # raises LeaseLost when the row was not the caller's any more


def _passed() -> None:
    """A fence already read."""


def _update_mine(
    conn: Connection, item: InboxItem, owner: str, values: dict[str, Any], *, later: bool = False
) -> Fence:
    """The row's update, refused (LeaseLost) when the row is no longer `owner`'s. With `later`, the
    answer is read when the caller calls the fence returned (before its commit): in a pipelined
    transaction (db.pipelined_writing) it then comes with the caller's next read, not a round trip
    of its own. Otherwise it is read here, and the fence returned is already passed."""
    read = _UPDATE_MINE.rows_later(conn, {"b_id": item.id, "b_owner": owner, **values})

    def fence() -> None:
        if not read():
            raise LeaseLost(item, owner)

    if later:
        return fence
    fence()
    return _passed


_RELEASE_TICKET = Prepared(
    update(tickets).where(
        tickets.c.platform == bindparam("b_platform"),
        tickets.c.ticket_id == bindparam("b_ticket_id"),
        tickets.c.lease_owner == bindparam("b_owner"),
    )
)


def _leasing(insert: Any) -> Any:
    """`insert` (ticket rows, one or many) as an upsert that takes each ticket's lease unless another
    owner's still runs, and returns the row (platform, ticket_id and tickets.MEMORY) only where the
    lease is ours. RETURNING, not rowcount: psycopg reports -1 for an upsert under SQLAlchemy 2.1.
    On PostgreSQL a refused lease still locks the row until the claim's statement ends."""
    mine = insert.excluded
    return insert.on_conflict_do_update(
        index_elements=[tickets.c.platform, tickets.c.ticket_id],
        set_={"lease_owner": mine.lease_owner, "lease_until": mine.lease_until},
        where=tickets.c.lease_until.is_(None)
        | (tickets.c.lease_until < bindparam("b_now"))
        | (tickets.c.lease_owner == mine.lease_owner),
    ).returning(tickets.c.platform, tickets.c.ticket_id, *MEMORY)


def _claim_statement() -> Any:
    """PostgreSQL's claim in one statement: the candidates (`_CANDIDATES`), each ticket's lease taken
    unless another owner's still runs (`_leasing`, for all of them at once), and the
    rows taken whose ticket was leased (or that name none). Data-modifying CTEs see one snapshot, so
    the take reads the leases granted from the upsert's RETURNING, not from the table. One row per
    row taken, with its ticket's memory; and one with no row (id NULL) per lease granted whose row
    was taken by someone else meanwhile, to be freed."""
    cand = _CANDIDATES.cte("cand")
    new_rows = select(
        cand.c.platform,
        cand.c.ticket_id,
        false(),
        bindparam("b_owner", type_=tickets.c.lease_owner.type),
        bindparam("b_until", type_=tickets.c.lease_until.type),
    ).where(cand.c.ticket_id.is_not(None))
    columns = ["platform", "ticket_id", "priority_pinned", "lease_owner", "lease_until"]
    lease = _leasing(postgresql.insert(tickets).from_select(columns, new_rows)).cte("lease")
    leased = exists().where(lease.c.platform == cand.c.platform, lease.c.ticket_id == cand.c.ticket_id)
    take = (
        update(inbox)
        .where(inbox.c.id == cand.c.id, inbox.c.status == PENDING, or_(cand.c.ticket_id.is_(None), leased))
        .values(
            status=PROCESSING, attempts=inbox.c.attempts + 1, lease_owner=bindparam("b_owner"),
            lease_until=bindparam("b_until"),
        )
        .returning(*_TAKEN, inbox.c.rank)
        .cte("take")
    )  # fmt: skip
    same_ticket = (take.c.platform == lease.c.platform) & (take.c.ticket_id == lease.c.ticket_id)
    return (
        select(
            *take.c,
            select(cand.c.behind).where(cand.c.id == take.c.id).scalar_subquery().label("behind"),
            lease.c.platform.label("lease_platform"),
            lease.c.ticket_id.label("lease_ticket_id"),
            *(lease.c[column.name] for column in MEMORY),
        )
        .select_from(take.join(lease, same_ticket, full=True))
        .order_by(  # the candidates' order
            func.coalesce(take.c.rank, -1), take.c.received_at, take.c.id
        )
    )


_CLAIM = Prepared(_claim_statement())
_LEASE_TICKET = Prepared(_leasing(sqlite.insert(tickets)))  # SQLite's claim: one ticket at a time
_SQLITE_CANDIDATES = Prepared(_CANDIDATES)


def holds(engine: Engine, platform: str, delivery_id: str) -> bool:
    """True when the inbox already has this delivery (any status): its webhook came, or a pass stored it."""
    found = select(inbox.c.id).where(inbox.c.platform == platform, inbox.c.delivery_id == delivery_id)
    with engine.connect() as conn:
        return conn.execute(found).first() is not None


def claim(engine: Engine, *, owner: str, now: datetime, lease: timedelta, limit: int) -> list[InboxItem]:
    """Lease up to `limit` due rows, at most one per ticket, each the oldest unfinished of its ticket:
    rows not judged yet first, then by their rank in the rate limiter's line, oldest first.

    Each candidate is taken with two compare-and-sets (the ticket's lease, the row's status), so two
    workers or replicas racing for the same row cannot both win. Per-ticket order holds because only
    a ticket's oldest unfinished row is a candidate. The ticket's lease returns what is stored of it
    (`InboxItem.memory`): nobody else writes a leased ticket's memory, so it is what the decision
    would read a moment later. Rows whose worker died (an expired lease) are put back first, looked
    for at most once a second (`EXPIRED_LOOK_SECONDS`): leases last minutes.
    """
    until = now + lease
    look_for_expired = _expired_look_due(engine, now)
    if engine.dialect.name == "sqlite":
        # Looked for without the writer lock the webhooks need: almost always nothing expired.
        with engine.connect() as conn:
            expired = look_for_expired and conn.execute(_ANY_EXPIRED, {"b_now": now}).first() is not None
            if not expired:
                candidates = _SQLITE_CANDIDATES.rows(conn, {"b_now": now, "b_limit": limit})
        if expired:
            _recover_expired(engine, now)
            with engine.connect() as conn:
                candidates = _SQLITE_CANDIDATES.rows(conn, {"b_now": now, "b_limit": limit})
        if not candidates:
            return []
        with writing(engine) as conn:  # one transaction for the batch: a writer-lock turn per claim
            taken = _take(conn, candidates, owner, now, until)
    else:
        taken = _claim_in_one_statement(engine, owner, now, until, limit, look_for_expired)
    return [
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
            lease_expiries=item.lease_expiries or 0,
            in_flight=item.in_flight,
            memory=memory,
            behind=behind,
        )
        for item, memory, behind in taken
    ]


# How often a claim looks for rows whose worker died (their lease, `worker.lease_seconds`, ran out).
# Leases last minutes; looking on every claim cost a statement per claim, and under a trickle of
# webhooks every delivery is a claim of its own.
EXPIRED_LOOK_SECONDS = 1.0
_EXPIRED_LOOKED: weakref.WeakKeyDictionary[Engine, datetime] = weakref.WeakKeyDictionary()


def _expired_look_due(engine: Engine, now: datetime) -> bool:
    """True (and noted) when this process last looked for expired leases on `engine` a second or more
    before `now`, or never, or `now` is earlier (a clock set back, a test's)."""
    last = _EXPIRED_LOOKED.get(engine)
    if last is not None and timedelta(0) <= now - last < timedelta(seconds=EXPIRED_LOOK_SECONDS):
        return False
    _EXPIRED_LOOKED[engine] = now
    return True


def _claim_in_one_statement(
    engine: Engine, owner: str, now: datetime, until: datetime, limit: int, look_for_expired: bool
) -> list[tuple[Any, Any, bool]]:
    """PostgreSQL: the candidates, their tickets' leases and the rows' take in one statement
    (`_CLAIM`), so a claim is one round trip, with no transaction around it (a statement is atomic
    alone). A ticket leased whose row another worker took meanwhile is freed again (rare)."""
    params = {"b_now": now, "b_limit": limit, "b_owner": owner, "b_until": until}
    with one_statement(engine) as conn:
        if look_for_expired:
            _recover(conn, now)
        taken, unused = [], []
        for row in _CLAIM.rows(conn, params):
            if row.id is None:
                unused.append(row)
            else:
                # The row carries its ticket's MEMORY columns under their own names: it is the memory.
                taken.append((row, row if row.ticket_id is not None else None, bool(row.behind)))
        for row in unused:
            _release_ticket(conn, row.lease_platform, row.lease_ticket_id, owner)
    return taken


def _take(conn: Connection, candidates: list[Any], owner: str, now: datetime, until: datetime) -> list[Any]:
    """Each candidate taken with its two compare-and-sets: (inbox row, ticket memory, later rows of its
    ticket seen behind it) of those won."""
    taken = []
    for row in candidates:
        memory = None
        if row.ticket_id is not None:
            memory = _lease_ticket(conn, row.platform, row.ticket_id, owner, now, until)
            if memory is None:
                continue
        item = _TAKE.first(conn, {"b_id": row.id, "lease_owner": owner, "lease_until": until})
        if item is None:
            if row.ticket_id is not None:
                _release_ticket(conn, row.platform, row.ticket_id, owner)
            continue
        taken.append((item, memory, bool(row.behind)))
    return taken


def _recover_expired(engine: Engine, now: datetime) -> None:
    with writing(engine) as conn:
        _recover(conn, now)


def _recover(conn: Connection, now: datetime) -> None:
    """Rows whose worker died mid-way go back to pending, keeping the requests they confirmed and
    the one in flight, and counting the expiry (the worker fails a row after too many)."""
    reset = dict(status=PENDING, lease_owner=None, lease_until=None, next_attempt_at=now)
    conn.execute(_RECOVER, {"b_now": now, **reset})


def _lease_ticket(
    conn: Connection, platform: str, ticket_id: str, owner: str, now: datetime, until: datetime
) -> Any:
    """Create the ticket's row if it is new, and take its lease unless another owner's still runs:
    the row's tickets.MEMORY columns when the lease is ours, else None."""
    values = dict(
        platform=platform, ticket_id=ticket_id, priority_pinned=False, lease_owner=owner, lease_until=until
    )
    return _LEASE_TICKET.first(conn, {**values, "b_now": now})


def _release_ticket(conn: Connection, platform: str, ticket_id: str, owner: str) -> None:
    where = {"b_platform": platform, "b_ticket_id": ticket_id, "b_owner": owner}
    _RELEASE_TICKET.send(conn, {**where, "lease_owner": None, "lease_until": None})


_GIVE_BACK = (
    update(inbox)
    .where(
        inbox.c.id.in_(bindparam("b_ids", expanding=True)),
        inbox.c.status == PROCESSING,
        inbox.c.lease_owner == bindparam("b_owner"),
    )
    .values(lease_expiries=inbox.c.lease_expiries + 1)
    .returning(inbox.c.id)
)


def give_back(engine: Engine, items: list[InboxItem], *, owner: str, now: datetime) -> list[InboxItem]:
    """Put deliveries this worker still leases back to pending now, with their tickets, in one
    transaction: what the lease running out would do (the expiry counted; a note in flight looked for
    before it is sent again), without waiting for it. Those given back; one not ours any more (its
    record was committed after all) is left alone."""
    with writing(engine) as conn:
        back = {row.id for row in conn.execute(
            _GIVE_BACK,
            {"b_ids": [item.id for item in items], "b_owner": owner, "status": PENDING, "lease_owner": None,
             "lease_until": None, "next_attempt_at": now},
        )}  # fmt: skip
        given = [item for item in items if item.id in back]
        for item in given:
            if item.ticket_id is not None:
                _release_ticket(conn, item.platform, item.ticket_id, owner)
    return given


def record_in_flight(
    engine: Engine,
    item: InboxItem,
    fingerprint: str,
    *,
    owner: str,
    confirmed: frozenset[str],
    records: GroupCommit | None = None,
) -> None:
    """Remember, durably and before it is sent, the request about to go out for this item, with the
    requests the platform confirmed so far. One statement (no transaction round trips on PostgreSQL);
    with `records`, the worker's group commit, in a transaction shared with the records and marks of
    other deliveries written meanwhile (committed before this returns all the same)."""
    values = {"in_flight": fingerprint, "confirmed": sorted(confirmed)}
    if records is not None:
        # Its fence is read before the commit: in a shared transaction with the others' answers.
        write = Write(lambda conn: _fenced_before_commit(conn, item, owner, values), one_statement=True)
        records.write(write)
        return
    with one_statement(engine) as conn:
        _update_mine(conn, item, owner, values)


def _fenced_before_commit(conn: Connection, item: InboxItem, owner: str, values: dict[str, Any]) -> None:
    read_before_commit(conn, _update_mine(conn, item, owner, values, later=True))


def finish(
    conn: Connection,
    item: InboxItem,
    *,
    status: str,
    owner: str,
    now: datetime,
    error: str | None = None,
    ticket_released: bool = False,
    fence_later: bool = False,
    **sent: Any,
) -> Fence:
    """Close the item (inside the caller's transaction, with its audit record) and free its ticket
    (`ticket_released`: the caller did, tickets.save(release_lease_of=…)). `sent`: `confirmed`
    (sorted fingerprints) and `in_flight` to store with it, when they changed. `fence_later`: the
    lease fence is checked when the caller calls the fence returned, which it must before committing."""
    values = dict(status=status, finished_at=now, last_error=error, **sent)
    return _release_item(conn, item, owner, ticket_released, later=fence_later, **values)


def retry_later(
    conn: Connection,
    item: InboxItem,
    *,
    owner: str,
    at: datetime,
    error: str,
    fence_later: bool = False,
    **sent: Any,
) -> Fence:
    """Put the item back to pending until `at`; its ticket stays blocked for later events (order).
    `sent`: as for finish(), what the platform confirmed so far is kept for the next attempt;
    `fence_later` as for finish()."""
    values = dict(status=PENDING, next_attempt_at=at, last_error=error, **sent)
    return _release_item(conn, item, owner, later=fence_later, **values)


def defer(conn: Connection, item: InboxItem, *, owner: str, at: datetime, rank: int, why: str) -> None:
    """Put the item back to pending until `at` to wait for the platform's rate limit, with its rank in
    line. It was not tried: the claim's attempt is given back (nothing is audited for the wait)."""
    _release_item(
        conn, item, owner, status=PENDING, next_attempt_at=at, rank=rank, attempts=item.attempts - 1,
        last_error=why,
    )  # fmt: skip


def _release_item(
    conn: Connection, item: InboxItem, owner: str, ticket_released: bool = False, *, later: bool = False,
    **values: Any,
) -> Fence:  # fmt: skip
    # The SET clause follows the parameter names (a misspelt column is refused when compiled).
    fence = _update_mine(conn, item, owner, {"lease_owner": None, "lease_until": None, **values}, later=later)
    if item.ticket_id is not None and not ticket_released:
        _release_ticket(conn, item.platform, item.ticket_id, owner)
    return fence


def counts(engine: Engine) -> dict[str, int]:
    """Rows per status, for /metrics and readiness."""
    with engine.connect() as conn:
        rows = conn.execute(select(inbox.c.status, func.count()).group_by(inbox.c.status)).all()
    return {status: n for status, n in rows}


_NEXT_DUE = select(func.min(inbox.c.next_attempt_at)).where(
    inbox.c.status == PENDING, inbox.c.next_attempt_at > bindparam("b_now")
)


def next_due(engine: Engine, *, now: datetime) -> datetime | None:
    """When the earliest pending row not yet due comes due (a retry after its backoff, a write waiting
    for the rate limiter), so an idle worker can look then instead of at its next poll."""
    with reading(engine) as conn:
        return conn.execute(_NEXT_DUE, {"b_now": now}).scalar()
