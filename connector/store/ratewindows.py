"""The `rate_windows` rows behind connector/ratelimit.py: read and written under a row lock, so every
worker of every replica counts against the same windows."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    Connection,
    Engine,
    Integer,
    and_,
    bindparam,
    delete,
    exists,
    func,
    literal,
    or_,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite

from connector import wakeup
from connector.store.db import indexed_by, reading, writing
from connector.store.inbox import PENDING, PROCESSING, is_head
from connector.store.prepared import Prepared
from connector.store.tables import inbox, rate_windows

if TYPE_CHECKING:
    from connector.ratelimit import Ask, Key, SlidingWindow, Waiting

Window = tuple[str, float]  # bucket, window seconds


# Built once, like the inbox's statements: constructing them per write cost more than running them.
_c = inbox.c
_BETTER = and_(  # ranked before the asking delivery: a lower rank, or the same and received earlier
    _c.rank.is_not(None), _c.id != bindparam("b_item"),
    or_(_c.rank < bindparam("b_rank"), and_(_c.rank == bindparam("b_rank"), or_(
        _c.received_at < bindparam("b_received"),
        and_(_c.received_at == bindparam("b_received"), _c.id < bindparam("b_item")),
    ))),
)  # fmt: skip
_RANKED = select(func.count()).where(
    _c.platform == bindparam("b_platform"), _c.status == PENDING, _c.next_attempt_at <= bindparam("b_until"),
    _BETTER,
)  # fmt: skip
# Not judged yet (due, or being judged), each the oldest unfinished row of its ticket. Counted apart
# by status, each count read from ix_inbox_due, the rows due or in flight: one status test OR-ed with
# the other sent SQLite through all of the platform's rows (ix_inbox_ticket), which the inbox keeps
# for `retention` days (16 ms a write with 50,000 of them, growing with the history), and so did its
# planner's own choice, with statistics or without, once the head test became a probe.
_d = indexed_by(inbox, "inbox", "ix_inbox_due").c
_UNJUDGED_OF = (
    _d.platform == bindparam("b_platform"), _d.rank.is_(None), _d.id != bindparam("b_item"), is_head(_d),
)  # fmt: skip
_UNJUDGED_DUE = select(func.count()).where(
    _d.status == PENDING, _d.next_attempt_at <= bindparam("b_now"), *_UNJUDGED_OF
)
_UNJUDGED_TAKEN = select(func.count()).where(
    _d.status == PROCESSING, _d.lease_until > bindparam("b_now"), *_UNJUDGED_OF
)
# Ranked deliveries asleep on an estimate (due later): the room a grant leaves may serve them now.
_ASLEEP = and_(
    _c.platform == bindparam("b_platform"), _c.status == PENDING, _c.rank.is_not(None),
    _c.id != bindparam("b_item"), _c.next_attempt_at > bindparam("b_now"),
)  # fmt: skip


def _line_read(unjudged: Any) -> Prepared:
    """The one statement that reads the line before a write, with `unjudged` as its second count."""
    return Prepared(
        select(
            _RANKED.scalar_subquery().label("ranked"),
            unjudged.label("unjudged"),
            exists().where(_ASLEEP).label("asleep"),
        )
    )


_WAITING = _line_read(_UNJUDGED_DUE.scalar_subquery() + _UNJUDGED_TAKEN.scalar_subquery())
# The line before a write of the best rank: no delivery not judged yet can stand before it, so they are
# not counted. That count reads every unjudged row of the platform (1.2 µs each on SQLite: 6 ms a write
# with 5,000 queued), and in an outage most writes are P1s, each once per ask.
_WAITING_BEST = _line_read(literal(0))
_BEST = (
    select(_c.id)
    .where(_c.platform == bindparam("b_platform"), _c.status == PENDING, _BETTER)
    .order_by(_c.rank, _c.received_at, _c.id)
    .limit(bindparam("b_room", type_=Integer))
    # A row another transaction holds (a worker claiming it, with others, in one transaction) is
    # left alone: it is being taken anyway. Waiting for it deadlocked with a claim that held a row
    # this wake had to lock next while it waited for one this wake had locked.
    .with_for_update(skip_locked=True)
)
_WAKE = Prepared(
    update(inbox).where(_c.id.in_(_BEST.scalar_subquery()), _c.next_attempt_at > bindparam("b_now"))
)
_GRANTED = Prepared(update(inbox).where(_c.id == bindparam("b_id")))
_WAKE_ASLEEP = Prepared(
    update(inbox).where(
        _c.id.in_(
            select(_c.id)
            .where(_ASLEEP)
            .order_by(_c.rank, _c.received_at, _c.id)
            .limit(bindparam("b_room", type_=Integer))
            .with_for_update(skip_locked=True)  # as _BEST: a row being claimed is being taken anyway
            .scalar_subquery()
        ),
        _c.next_attempt_at > bindparam("b_now"),
    )
)
_LOCK = Prepared(
    select(rate_windows)
    .where(
        rate_windows.c.platform == bindparam("b_platform"),
        rate_windows.c.bucket.in_([bindparam("b_account"), bindparam("b_ticket")]),
    )
    .order_by(rate_windows.c.bucket, rate_windows.c.seconds)  # one lock order: no deadlock
    .with_for_update()
)
_COUNTS_NEED_NOT_WAIT = "SET LOCAL synchronous_commit TO off"
_PEEK = select(rate_windows).where(
    rate_windows.c.platform == bindparam("b_platform"), rate_windows.c.bucket == bindparam("b_peek")
)
# One ticket's windows locked, the account's read beside them without a lock (PostgreSQL allows no
# FOR UPDATE on one side of a UNION, so the locked side is a CTE).
_LOCKED_TICKET = (
    select(rate_windows)
    .where(rate_windows.c.platform == bindparam("b_platform"), rate_windows.c.bucket == bindparam("b_ticket"))
    .order_by(rate_windows.c.seconds)
    .with_for_update()
    .cte("held")
)
_LOCK_AND_PEEK = Prepared(select(_LOCKED_TICKET).union_all(_PEEK))
_PEEK_ONLY = Prepared(_PEEK)


def _line(ask: Ask) -> dict:
    return {
        "b_platform": ask.platform,
        "b_item": ask.item_id,
        "b_rank": ask.rank,
        "b_received": ask.received_at,
    }


def waiting(engine: Engine, platform: str, ask: Ask, now: datetime, horizon: float, *,
            unjudged: bool = True) -> Waiting:  # fmt: skip
    """Deliveries of the platform in line before `ask`: better-ranked ones waiting (due within `horizon`
    seconds: those in a long backoff hold no one up), and unjudged ones claimable now or being judged
    (not counted, 0, when `unjudged` is False: nothing not judged yet can be better than the ask).

    Read before the windows are locked (one statement): the lock guards the counts, which never exceed
    a limit; the line it reads may be a moment old, which only matters between concurrent asks."""
    from connector.ratelimit import Waiting

    until = now + timedelta(seconds=horizon)
    statement = _WAITING if unjudged else _WAITING_BEST
    with reading(engine) as conn:
        row = statement.first(conn, {**_line(ask), "b_platform": platform, "b_now": now, "b_until": until})
    return Waiting(row[0], row[1], bool(row[2]))


class Raced(Exception):
    """Another transaction made a window this one found missing: the ask is made again."""


class Held:
    """The windows of one platform, locked for the transaction `conn` runs (`windows`), and those
    only read for a block the platform imposed (`peeked`: never counted in, never written)."""

    def __init__(self, conn: Connection | None, platform: str, windows: dict[Window, SlidingWindow],
                 peeked: dict[Window, SlidingWindow]):  # fmt: skip
        self.conn = conn
        self.platform = platform
        self.windows = windows
        self.peeked = peeked
        self.woke = False  # deliveries asleep in line were made due: the workers are told at the commit

    def wake_better(self, ask: Ask, now: datetime, room: int) -> None:
        """Of the `room` best deliveries in line before `ask` (those the room serves), the ones asleep
        on an estimate later than the room that came are due now. Those the room does not serve sleep on."""
        self._wake(_WAKE, ask, now, room)

    def wake_asleep(self, ask: Ask, now: datetime, room: int) -> int:
        """The `room` best deliveries asleep in line (any rank: the room is left after `ask` and all
        before it) are due now; how many were."""
        return self._wake(_WAKE_ASLEEP, ask, now, room)

    def _wake(self, statement: Prepared, ask: Ask, now: datetime, room: int) -> int:
        line = {**_line(ask), "b_platform": self.platform, "b_room": room, "b_now": now}
        woken = max(0, statement.run(self.conn, {**line, "next_attempt_at": now}))
        self.woke = self.woke or woken > 0
        return woken

    def granted(self, item_id: int, rank: int) -> None:
        """The delivery holds its writes: it no longer waits in anyone's line as unjudged."""
        _GRANTED.run(self.conn, {"b_id": item_id, "rank": rank})


@contextmanager
def locked(engine: Engine, platform: str, keys: list[Key], now: datetime, *,
           peek: list[Key] | tuple[Key, ...] = (), writes: bool = False) -> Iterator[Held]:  # fmt: skip
    """The windows named by `keys` (empty when new), locked until the block ends; what the block
    changed in them is written back in the same transaction (a new one made then: Raced when another
    transaction made it first). The windows named by `peek` (one bucket, the account's) are read in
    the same statement without a lock, for their block alone: a write counted in none of them needs
    no lock on the account's row, which every write to the platform would otherwise queue for.

    Nothing to lock: a read, no transaction (unless the caller `writes` through Held)."""
    from connector.ratelimit import SlidingWindow

    limit_of = {(bucket, seconds): requests for bucket, seconds, requests in keys}
    peek_of = {(bucket, seconds): requests for bucket, seconds, requests in peek}

    def windows(rows, wanted: dict) -> dict[tuple[str, float], SlidingWindow]:
        found = {
            (row.bucket, row.seconds): SlidingWindow(
                wanted[(row.bucket, row.seconds)], row.seconds, row.first_slot, list(row.counts),
                row.blocked_until,
            )
            for row in rows
            if (row.bucket, row.seconds) in wanted
        }  # fmt: skip
        for key, limit in wanted.items():  # never used (a ticket's first write): empty, no row yet
            found.setdefault(key, SlidingWindow(limit, key[1], 0, []))
        return found

    if not limit_of and not writes:
        if not peek_of:
            yield Held(None, platform, {}, {})
            return
        bucket = next(iter(peek_of))[0]
        with reading(engine) as conn:
            rows = _PEEK_ONLY.rows(conn, {"b_platform": platform, "b_peek": bucket})
        yield Held(None, platform, {}, windows(rows, peek_of))
        return
    buckets = sorted({bucket for bucket, _ in limit_of})  # the account's and at most one ticket's
    bell = None  # rung when deliveries asleep in line were made due: a worker takes them now, not at its poll
    with writing(engine) as conn:
        if conn.dialect.name == "postgresql":
            # Counts need not wait for the disk (a WAL flush cost 2-3 ms of each grant's 4): every
            # replica sees them the moment they commit, and the decision's own record, committed
            # durably after the write went out, flushes them with it. A server crash can lose only
            # counts of grants whose decisions were not recorded yet.
            conn.exec_driver_sql(_COUNTS_NEED_NOT_WAIT)
        if not buckets:
            peeked = {"b_platform": platform, "b_peek": next(iter(peek_of))[0]} if peek_of else None
            rows = _PEEK_ONLY.rows(conn, peeked) if peeked else []
        elif peek_of:
            assert len(buckets) == 1, "the account's windows are either locked or peeked"
            params = {"b_platform": platform, "b_ticket": buckets[0], "b_peek": next(iter(peek_of))[0]}
            rows = _LOCK_AND_PEEK.rows(conn, params)
        else:
            params = {"b_platform": platform, "b_account": buckets[0], "b_ticket": buckets[-1]}
            rows = _LOCK.rows(conn, params)
        stored = {(row.bucket, row.seconds) for row in rows}
        held = Held(conn, platform, windows(rows, limit_of), windows(rows, peek_of) if peek_of else {})
        before = {key: (w.first_slot, list(w.counts), w.blocked_until) for key, w in held.windows.items()}
        yield held
        changed, made = [], []
        for (bucket, seconds), window in held.windows.items():
            if (window.first_slot, window.counts, window.blocked_until) == before[(bucket, seconds)]:
                continue
            values = {"first_slot": window.first_slot, "counts": window.counts,
                      "blocked_until": window.blocked_until, "updated_at": now}  # fmt: skip
            if (bucket, seconds) in stored:
                changed.append({"b_platform": platform, "b_bucket": bucket, "b_seconds": seconds, **values})
            else:
                made.append({"platform": platform, "bucket": bucket, "seconds": seconds, **values})
        _SAVE.run_many(conn, changed)
        if made:  # (rowcount is not kept for an INSERT: the rows it made are counted)
            if len(conn.execute(_MAKE[conn.dialect.name], made).all()) != len(made):
                raise Raced(f"{platform} windows {[(m['bucket'], m['seconds']) for m in made]}")
        if held.woke:
            bell = wakeup.doorbell(engine)
            bell.in_transaction(conn.connection.dbapi_connection, ())  # PostgreSQL: NOTIFY at the commit
    if bell is not None:
        bell.rang(None)  # SQLite: the datagrams, once committed
        bell.close()


# Built once per dialect: a statement holding its rows' values was compiled anew for every grant.
_MAKE = {
    name: dialect.insert(rate_windows).on_conflict_do_nothing().returning(rate_windows.c.bucket)
    for name, dialect in (("postgresql", postgresql), ("sqlite", sqlite))
}
_SAVE = Prepared(
    update(rate_windows).where(
        rate_windows.c.platform == bindparam("b_platform"),
        rate_windows.c.bucket == bindparam("b_bucket"),
        rate_windows.c.seconds == bindparam("b_seconds"),
    )
)


def prune(engine: Engine, *, now: datetime, longest_window: float) -> int:
    """Drop windows nothing was counted in for longer than any window lasts (tickets long quiet),
    unless a block is still running. The retention job calls it."""
    cutoff = now - timedelta(seconds=2 * longest_window)
    with writing(engine) as conn:
        result = conn.execute(
            delete(rate_windows).where(
                rate_windows.c.updated_at < cutoff,
                or_(rate_windows.c.blocked_until.is_(None), rate_windows.c.blocked_until < now),
            )
        )
    return result.rowcount or 0
