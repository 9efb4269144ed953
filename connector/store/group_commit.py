"""Group commit for the worker's decision records (leader/follower, as the webhook intake's).

A decision's record is written in two steps of one transaction: `stage` (the ticket's memory, its
timers, the outbox, the inbox row) and `seal` (the audit append, which holds the chain's head until
the commit, then the lease fence). The worker handles many deliveries at once (`worker.threads`
computing): those that finish while another's record is being written queue up, and the next
leader (the first of them: a leader writes one batch, its own record first, then hands the lead
on) writes them in ONE transaction — every stage first, then every seal, so the chain's head is
taken last, as in a record alone (ticket rows, then the head: the order of every other writer).
With no load every record is its own leader and its own transaction, as before; under load N
records share a BEGIN, a COMMIT, the writer lock and a pooled connection. A note's in-flight mark
(written, durably, before the note goes out) is a record with a stage alone.

Each record still commits with everything it needs or not at all: when a shared transaction fails
(a value the store refuses, a lease another worker took, a conflict), it is rolled back and its
records are written again one by one, each in its own transaction, so only the one at fault fails
and every other commits. `write` returns once the record is committed and raises what the record's
own transaction raised.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass

from sqlalchemy import Connection, Engine

from connector.errors import first_line
from connector.store.db import one_statement, pipelined_writing
from connector.store.leading import LeaderQueue, Queued

log = logging.getLogger("escalator.records")


def _nothing(_conn: Connection) -> None:
    return None


@dataclass(frozen=True, slots=True)
class Write:
    """One record's statements. Both steps may run twice (in a shared transaction that was rolled
    back, then alone): they compute nothing that changes between runs, only send statements."""

    stage: Callable[[Connection], None]
    seal: Callable[[Connection], None] = _nothing
    # The stage is one statement and no seal, atomic alone: written alone, it needs no transaction of
    # its own (on PostgreSQL it commits by itself, one round trip; db.one_statement).
    one_statement: bool = False


class _Pending(Queued):
    __slots__ = ("write",)

    def __init__(self, write: Write) -> None:
        super().__init__()
        self.write = write


class GroupCommit:
    """`write(Write(stage, seal))` from any thread; records queued meanwhile share a transaction.

    `waiting`: a context a follower waits in (the worker's `cpu.waiting`, which gives its turn at the
    CPU away meanwhile); `most`: records in one transaction at most; `committed`: told the number of
    records of each transaction that committed (a metric)."""

    def __init__(
        self,
        engine: Engine,
        *,
        most: int = 32,
        waiting: Callable[[], AbstractContextManager[object]] = nullcontext,
        committed: Callable[[int], None] | None = None,
    ) -> None:
        self.engine = engine
        self.most = most
        self._waiting = waiting
        self._committed = committed  # told how many records each transaction that committed held
        self._queue: LeaderQueue[_Pending] = LeaderQueue()
        self.transactions = 0  # shared or alone, committed or not: what a test or a benchmark counts
        self.written_again = 0  # records written alone after their shared transaction failed

    def write(self, write: Write) -> None:
        pending = _Pending(write)
        lead = self._queue.join(pending)
        if not lead:
            with self._waiting():
                pending.wait()  # its leader finishes it, whatever the transaction did, or hands it the lead
            lead = pending.leads
        if lead:
            self._lead()
        if pending.error is not None:
            raise pending.error

    def _lead(self) -> None:
        """One batch, this thread's own record first, then the lead goes on to the next record
        waiting: a delivery's thread does not write the others' records for as long as they come."""
        self._queue.lead(self.most, self._commit)

    def _commit(self, batch: list[_Pending]) -> None:
        if len(batch) > 1:
            try:
                self._transaction([p.write for p in batch])
                return
            except Exception as exc:  # (a database gone fails each alone at once, as it failed here)
                log.info("%d decision records could not be committed together (%s: %s); each is written "
                         "alone", len(batch), type(exc).__name__, first_line(exc)[:200])  # fmt: skip
                self.written_again += len(batch)
        for p in batch:
            try:
                self._transaction([p.write])
            except Exception as exc:
                p.error = exc

    def _transaction(self, writes: list[Write]) -> None:
        self.transactions += 1
        alone = len(writes) == 1 and writes[0].one_statement
        with (one_statement if alone else pipelined_writing)(self.engine) as conn:
            for write in writes:
                write.stage(conn)
            for write in writes:  # last: the chain's head is held from the first seal to the commit
                write.seal(conn)
        if self._committed is not None:
            self._committed(len(writes))
