"""Group commit for the webhook path (leader/follower: connector/store/leading.py).

Each request thread queues its delivery. If no one is writing, it becomes the leader: it
stores everything queued so far (its own first) in ONE transaction, wakes the followers whose
deliveries it committed, and hands the lead to the first request still waiting, which stores the
next batch. Otherwise it waits for a leader to commit its delivery, or to hand it the lead. A 202
therefore still means "durably stored"; with no load every request is its own leader (no thread
hop at all), under load N deliveries share one commit, and no request's answer waits while its
thread writes batch after batch of others' for as long as the load lasts. A request that waited
too long (`timeout`) leaves the queue before it is answered 503: it is neither stored after that
answer nor handed a lead it is no longer there to take.

The leader writes on one DBAPI connection kept for the intake's lifetime: a pool checkout,
transaction bookkeeping and reset per request cost more than the insert itself.

A commit that stored something rings the workers' doorbell (connector/wakeup.py): on PostgreSQL a
NOTIFY inside the transaction, on SQLite a datagram after the commit, once the group's senders
have their answer. Nothing about it can fail or hold up an acknowledgement.
"""

from __future__ import annotations

import logging
import time
from contextlib import suppress

from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError

from connector import wakeup
from connector.store.db import log_round_failed, piped, write_lock
from connector.store.inbox import store_rows
from connector.store.leading import LeaderQueue, Queued

log = logging.getLogger("escalator.intake")


class IntakeUnavailable(Exception):
    """The delivery could not be stored (database down or full); the sender should retry."""


class IntakeRefused(Exception):
    """The database refuses this delivery's row itself (a value it cannot hold): retrying cannot help."""


class _Pending(Queued):
    """One request's delivery in the queue."""

    __slots__ = ("row", "stored")

    def __init__(self, row: dict):
        super().__init__()
        self.row = row
        self.stored = False


# A database that cannot be reached (restarting, failing over) is waited for this long before the
# webhooks queued for it are answered 503: a platform that does not send a delivery again (a
# ServiceNow outbound REST message) loses nothing to a restart of a few seconds. Within the
# followers' `timeout`, and far within the platforms' own (10 s and more).
HOLD_SECONDS = 5.0


class Intake:
    def __init__(self, engine: Engine, *, max_batch: int = 256, timeout: float = 10.0,
                 hold_seconds: float = HOLD_SECONDS):  # fmt: skip
        self.engine = engine
        self.max_batch = max_batch
        self.timeout = timeout
        self.hold_seconds = min(hold_seconds, timeout / 2)
        self._queue: LeaderQueue[_Pending] = LeaderQueue()
        self._connection = None  # SQLAlchemy's proxy of the one DBAPI connection the leader writes on
        self._piped = engine.dialect.name == "postgresql"  # its statements through libpq's pipeline
        self._doorbell = wakeup.doorbell(engine)

    def accept(self, row: dict) -> bool:
        """Store a new_row() durably; False when it was stored before. Raises IntakeUnavailable."""
        pending = _Pending(row)
        lead = self._queue.join(pending)
        if not lead:
            # Given up on: it leaves the queue, or a leader has it (stored later, or not); handed the
            # lead just as it gave up, it stores the next batch after all.
            if not pending.wait(self.timeout) and (self._queue.leave(pending) or not pending.leads):
                raise IntakeUnavailable(f"the database did not store the delivery within {self.timeout:.0f}s")
            lead = pending.leads
        if lead:
            self._lead()
        if pending.error is not None:
            if self._refuses_row(pending.error):
                raise IntakeRefused(
                    f"the database cannot store this delivery: {pending.error}"
                ) from pending.error
            raise IntakeUnavailable(f"the database refused the delivery: {pending.error}") from pending.error
        return pending.stored

    def _lead(self) -> None:
        """One batch, this request's own delivery first; then the lead goes to the next request waiting."""
        self._queue.lead(self.max_batch, self._write)

    def _write(self, batch: list[_Pending]) -> None:
        try:
            results = self._store_holding(batch)
        except Exception as exc:
            if len(batch) > 1 and self._refuses_row(exc):
                # One row the database cannot hold must not fail its group: store each alone,
                # so only that row's sender hears the refusal.
                self._store_each(batch)
                return
            self._fail(batch, exc)
            return
        for p, stored in zip(batch, results, strict=True):
            p.stored = stored
        if any(results):
            self._doorbell.rang(_stored_rows(batch, results))

    def _store_each(self, batch: list[_Pending]) -> None:
        for n, p in enumerate(batch):
            try:
                p.stored = self._store([p])[0]
            except Exception as exc:
                if not self._refuses_row(exc):  # the database itself is failing: the rest fail too
                    self._fail(batch[n:], exc)
                    break
                log.warning("the database refused one webhook delivery: %s", exc)
                p.error = exc
        if any(p.stored for p in batch):
            self._doorbell.rang(_stored_rows(batch, [p.stored for p in batch]))

    def _fail(self, batch: list[_Pending], exc: Exception) -> None:
        """Every waiter of the batch learns it failed (told when the leader finishes the batch)."""
        log_round_failed(log, self.engine, exc, "could not store %d webhook deliveries", len(batch))
        self._discard_connection()
        for p in batch:
            p.error = exc

    def _refuses_row(self, exc: BaseException) -> bool:
        """True when `exc` is the database refusing a value of the row (too long, NUL, a broken
        constraint), which no retry changes; False for the database being unavailable."""
        dbapi = self.engine.dialect.dbapi
        permanent: tuple[type[BaseException], ...] = (ValueError, TypeError)
        if dbapi is not None:
            permanent += (dbapi.DataError, dbapi.IntegrityError)
        return isinstance(exc, permanent)

    def _store_holding(self, batch: list[_Pending]) -> list[bool]:
        """`_store`, again on a new connection while the database cannot be reached (the one held was
        lost to a restart or a proxy's idle cut, or none can be made), for up to `hold_seconds`."""
        deadline = time.monotonic() + self.hold_seconds
        pause = 0.05
        while True:
            try:
                return self._store(batch)
            except Exception as exc:
                if not self._unreachable(exc) or time.monotonic() + pause > deadline:
                    raise
                log.warning("the database cannot be reached (%s); %d webhook deliveries wait for it",
                            exc, len(batch))  # fmt: skip
                self._discard_connection()
                time.sleep(pause)
                pause = min(pause * 2, 1.0)

    def _unreachable(self, exc: BaseException) -> bool:
        """No connection could be made, or the one held was lost (not: the database refused the write)."""
        if self._connection is None:
            return True
        return self.engine.dialect.is_disconnect(exc, self._connection.dbapi_connection, None)

    def _store(self, batch: list[_Pending]) -> list[bool]:
        if self._connection is None:
            self._connection = self.engine.raw_connection()
            if self._piped:
                self._connection.dbapi_connection.autocommit = True  # the pipeline sends BEGIN and COMMIT
        dbapi = self._connection.dbapi_connection
        if self._piped:
            return self._store_piped(dbapi, batch)
        with write_lock(self.engine):
            try:
                results = store_rows(dbapi, self.engine.dialect, [p.row for p in batch])
                dbapi.commit()
            except BaseException:
                dbapi.rollback()
                raise
        return results

    def _store_piped(self, dbapi, batch: list[_Pending]) -> list[bool]:
        """PostgreSQL: the batch's INSERTs behind its BEGIN in one round trip, then the NOTIFY (delivered
        at the commit) and the COMMIT in another, through libpq's pipeline mode (db.piped): psycopg's
        own cursor would take four round trips, parse the INSERT each time and cost ~100 µs of Python a
        statement. A statement the server refuses is raised as the driver's error, as psycopg's
        cursor raises it (the row refused, the database gone: see `_refuses_row`, `_unreachable`)."""
        try:
            with piped(dbapi, self.engine.dialect, "BEGIN") as pipeline:
                results = store_rows(pipeline, self.engine.dialect, [p.row for p in batch])
                if any(results):
                    self._doorbell.in_transaction(pipeline, _stored_rows(batch, results))
        except DBAPIError as exc:
            raise (exc.orig if isinstance(exc.orig, BaseException) else exc) from exc
        return results

    def _discard_connection(self) -> None:
        """After a failure the connection may be broken; the next batch opens a fresh one."""
        if self._connection is not None:
            try:
                self._connection.invalidate()
            except Exception:  # already unusable; dropping it is all that is left to do
                log.debug("invalidating the intake connection failed", exc_info=True)
            self._connection = None

    def close(self) -> None:
        self._doorbell.close()
        if self._connection is not None:
            if self._piped:  # back to the pool as the pool gave it
                with suppress(Exception):  # a lost connection: the pool drops it
                    self._connection.dbapi_connection.autocommit = False
            self._connection.close()
            self._connection = None


def _stored_rows(batch: list[_Pending], stored: list[bool]) -> list[dict]:
    """The rows this batch stored (not those stored before): the tickets its signal names."""
    return [p.row for p, new in zip(batch, stored, strict=True) if new]
