"""A PostgreSQL transaction's statements sent through libpq's pipeline mode directly.

psycopg's cursor costs the client about 100 µs of Python a statement in pipeline mode on this kind
of machine (its generators, query conversion, adapter maps and result bookkeeping), while the same
statement through psycopg's own libpq binding (`psycopg.pq`) and its C adapters (`Transformer`) costs
about 20: a decision's record, eight statements or so, spent most of its CPU there. A `Pipeline`
keeps psycopg's parts that do the work (libpq, the dumpers and loaders, so values go and come back
exactly as through a psycopg cursor, and its error classes) and drops the layers around them.

Its `cursor()` is the part of a DBAPI cursor the store uses: `execute` sends at once and returns
(each statement prepared on the server once per connection, as psycopg does after a few uses);
`fetchall`, `description` and `rowcount` read the answer, and everything queued before it comes in
the same round trip. An error is raised as SQLAlchemy's exception (IntegrityError, …) at the first
read after the failed statement, or at `finish`. Anything else that would talk to the connection
(a Core statement through psycopg's own cursor) must call `settle()` first, which reads every
answer due and leaves pipeline mode: `connector.store.db` does it from an engine event.
"""

from __future__ import annotations

import itertools
import re
import select
import weakref
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from psycopg import errors, pq
from psycopg.adapt import PyFormat, Transformer
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError

# The key of the open Pipeline (if any) in the SQLAlchemy connection's `info`.
PIPELINE = "escalator.pipeline"
_OK = (pq.ExecStatus.COMMAND_OK, pq.ExecStatus.TUPLES_OK, pq.ExecStatus.EMPTY_QUERY)
_SYNC = pq.ExecStatus.PIPELINE_SYNC
_TEXT = pq.Format.TEXT
# Server-side statements one connection keeps; beyond, a statement is parsed each time (unnamed).
_PREPARED_MAX = 256


class _Connection:
    """What a Pipeline keeps per psycopg connection: its adapters and the statements prepared on it."""

    def __init__(self, raw: Any) -> None:
        self.transformer = Transformer(raw)
        self.prepared: dict[tuple[bytes, tuple[int, ...]], bytes] = {}
        self.names = itertools.count()


_CONNECTIONS: weakref.WeakKeyDictionary[Any, _Connection] = weakref.WeakKeyDictionary()


class Answer:
    """The result of one statement sent, once it has come back."""

    __slots__ = ("result", "sql", "params")

    def __init__(self, sql: bytes, params: Any) -> None:
        self.result: pq.abc.PGresult | None = None
        self.sql = sql
        self.params = params


class _Preparing:
    """In the queue: a statement's preparation; its name is forgotten for the connection if it failed."""

    __slots__ = ("key", "name")

    def __init__(self, key: tuple[bytes, tuple[int, ...]], name: bytes) -> None:
        self.key, self.name = key, name


class Pipeline:
    """One transaction that `begin` opens (or, with None, statements committed at each read) on `raw`,
    a psycopg connection in autocommit mode that nothing else uses meanwhile."""

    def __init__(self, raw: Any, dialect: Dialect, begin: str | None) -> None:
        self._raw = raw
        self._pg = raw.pgconn
        self._dialect = dialect
        self._conn = _CONNECTIONS.get(raw) or _CONNECTIONS.setdefault(raw, _Connection(raw))
        self._queue: deque[Answer | _Preparing] = deque()
        self._failed: BaseException | None = None
        self._poll: select.poll | None = None
        self._begin = begin.encode() if begin else None
        self._transaction = begin is not None
        self._on = False
        # What the transaction's statements learned and holds until it ends (a row it locked and
        # read, by the reader's key): see db.transaction_memo.
        self.memo: dict[str, Any] = {}
        self._before_end: list[Callable[[], None]] = []

    @property
    def in_transaction(self) -> bool:
        """Its statements run in one transaction (`begin` was given), not each committed alone."""
        return self._transaction

    # -- sending ---------------------------------------------------------------------------------

    def cursor(self) -> PipelineCursor:
        return PipelineCursor(self)

    def send(self, sql: str, params: Sequence[Any] | Mapping[str, Any] | None) -> Answer:
        """Send one statement (psycopg's `%s` or `%(name)s` placeholders); its answer is read later."""
        if self._failed is not None:  # the server skips everything up to the next sync: say why now
            raise self._failed
        text, order = _numbered(sql)
        values = [params[name] for name in order] if order else list(params or ())
        self._start()
        conn = self._conn
        tx = conn.transformer
        dumped = tx.dump_sequence(values, [PyFormat.AUTO] * len(values)) if values else None
        types = tuple(tx.types) if values else ()
        answer = Answer(text, values)
        key = (text, types)
        name = conn.prepared.get(key)
        if name is None and len(conn.prepared) < _PREPARED_MAX:
            # Known at once, so the next use in this pipeline does not prepare it again; forgotten if
            # the preparation fails. A new name each time: one whose answer was lost may exist.
            name = conn.prepared[key] = f"_escalator_{next(conn.names)}".encode()
            self._pg.send_prepare(name, text, types or None)
            self._queue.append(_Preparing(key, name))
        if name is None:
            self._pg.send_query_params(text, dumped, types or None, tx.formats if values else None, _TEXT)
        else:
            self._pg.send_query_prepared(name, dumped, tx.formats if values else None, _TEXT)
        self._queue.append(answer)
        return answer

    def _start(self) -> None:
        if self._on:
            return
        self._pg.enter_pipeline_mode()
        self._on = True
        if self._begin is not None:
            self._pg.send_query_params(self._begin, None)
            self._queue.append(Answer(self._begin, None))
            self._begin = None

    # -- reading ---------------------------------------------------------------------------------

    def answer(self, answer: Answer) -> pq.abc.PGresult:
        """The result of `answer`'s statement: one round trip for it and everything queued before."""
        if answer.result is None:
            if self._failed is not None:
                raise self._failed
            if not self._transaction:  # autocommit: what was sent commits now (and pipeline mode ends)
                self.settle()
                return answer.result
            self._pg.send_flush_request()
            self._flush()
            while answer.result is None:
                self._read_one()
        if self._failed is not None:  # this statement's or an earlier one's
            raise self._failed
        return answer.result

    def settle(self) -> None:
        """Read every answer due and leave pipeline mode (the transaction goes on): before psycopg's
        own cursor talks to the connection."""
        if self._begin is not None:  # nothing sent yet: the transaction begins before that statement
            self._start()
        self._sync()
        if self._failed is not None:
            failed = self._failed
            if not self._transaction:  # autocommit: that group is over, the next statement starts afresh
                self._failed = None
            raise failed

    def read_before_end(self, read: Callable[[], None]) -> None:
        """Call `read` (which reads answers and may raise, failing the transaction) before `end` is sent:
        the first of those reads is one round trip for everything sent, the others come with it."""
        self._before_end.append(read)

    def finish(self, end: str | None) -> None:
        """Send `end` (COMMIT) after everything, wait for every answer, leave pipeline mode."""
        reads, self._before_end = self._before_end, []
        if reads and self._queue:  # every answer due in one round trip (the last one's), then the reads
            self.answer(self._queue[-1])
        for read in reads:
            read()
        if self._begin is not None or not (self._on or self._transaction):
            return  # nothing was sent, or (autocommit) everything sent was answered: nothing to end
        if end is not None:
            self._start()
            self._pg.send_query_params(end.encode(), None)
            self._queue.append(Answer(end.encode(), None))
        self.settle()

    def abandon(self) -> None:
        """After a failure: skip what is left, leave pipeline mode (the caller rolls back)."""
        if self._pg.status != pq.ConnStatus.OK:
            return
        self._failed = self._failed or _Abandoned()
        self._sync()

    def _sync(self) -> None:
        """A sync after everything sent, every answer up to it read, pipeline mode left."""
        if not self._on:
            return
        self._pg.pipeline_sync()
        self._flush()
        try:
            while not self._read_one():
                pass
        finally:
            if self._pg.pipeline_status != pq.PipelineStatus.OFF and not self._queue:
                self._pg.exit_pipeline_mode()
                self._on = False

    def _read_one(self) -> bool:
        """Take the next answer off the wire; True when it was the sync."""
        result = self._next_result()
        while result is None:  # the end of one statement's results: the next one's come next
            result = self._next_result()
        if result.status == _SYNC:
            if self._queue:
                raise RuntimeError(f"pipeline out of step: {len(self._queue)} answers missing at the sync")
            return True
        waiting = self._queue.popleft()
        if isinstance(waiting, _Preparing):
            if result.status != pq.ExecStatus.COMMAND_OK:
                self._conn.prepared.pop(waiting.key, None)
                self._fail(result, waiting.key[0], None)
            return False
        waiting.result = result
        if result.status not in _OK:
            self._fail(result, waiting.sql, waiting.params)
        return False

    def _fail(self, result: pq.abc.PGresult, sql: bytes, params: Any) -> None:
        if self._failed is not None or result.status == pq.ExecStatus.PIPELINE_ABORTED:
            return
        exc = errors.error_from_result(result, encoding=self._raw.info.encoding)
        if isinstance(exc, errors.InvalidSqlStatementName):  # deallocated behind our back: start over
            self._conn.prepared.clear()
        self._failed = DBAPIError.instance(sql.decode(), params, exc, errors.Error, dialect=self._dialect)
        self._failed.__cause__ = exc

    def _next_result(self) -> pq.abc.PGresult | None:
        pg = self._pg
        while pg.is_busy():
            self._wait(select.POLLIN)
            pg.consume_input()
        return pg.get_result()

    def _flush(self) -> None:
        pg = self._pg
        while pg.flush():  # the socket took part of it (non-blocking): wait until it takes more
            self._wait(select.POLLOUT | select.POLLIN)
            pg.consume_input()

    def _wait(self, events: int) -> None:
        if self._poll is None:
            self._poll = select.poll()
            self._poll.register(self._pg.socket, events)
        else:
            self._poll.modify(self._pg.socket, events)
        self._poll.poll()


class _Abandoned(Exception):
    """The pipeline was given up after a failure raised elsewhere."""


class PipelineCursor:
    """The DBAPI cursor methods the store's hot paths use, over a Pipeline: `execute` sends, a read
    waits for the answer."""

    def __init__(self, pipeline: Pipeline) -> None:
        self._pipeline = pipeline
        self._answer: Answer | None = None

    def execute(self, sql: str, params: Sequence[Any] | Mapping[str, Any] | None = None) -> None:
        self._answer = self._pipeline.send(sql, params)

    def executemany(self, sql: str, many: Sequence[Any]) -> None:
        for params in many:
            self._answer = self._pipeline.send(sql, params)

    def _result(self) -> pq.abc.PGresult:
        if self._answer is None:
            raise RuntimeError("nothing executed on this cursor")
        return self._pipeline.answer(self._answer)

    def fetchall(self) -> list[tuple[Any, ...]]:
        result = self._result()
        if result.status != pq.ExecStatus.TUPLES_OK:
            return []
        tx = self._pipeline._conn.transformer
        tx.set_pgresult(result)
        return tx.load_rows(0, result.ntuples, tuple)

    @property
    def description(self) -> list[tuple[str, int]] | None:
        result = self._result()
        if result.status != pq.ExecStatus.TUPLES_OK:
            return None
        return [(result.fname(i).decode(), result.ftype(i)) for i in range(result.nfields)]

    @property
    def rowcount(self) -> int:
        found = self._result().command_tuples
        return -1 if found is None else found

    def close(self) -> None:
        self._answer = None  # an answer not read is still checked by the pipeline's end


_PLACEHOLDER = re.compile(rb"%(?:\((?P<name>[^)]+)\)s|(?P<positional>s)|(?P<percent>%))")


def _numbered(sql: str) -> tuple[bytes, tuple[str, ...]]:
    """`sql` with psycopg's placeholders as libpq's `$1…`, and the names of named ones in order (none
    for positional ones)."""
    return _NUMBERED.get(sql) or _number(sql)


_NUMBERED: dict[str, tuple[bytes, tuple[str, ...]]] = {}


def _number(sql: str) -> tuple[bytes, tuple[str, ...]]:
    order: list[str] = []
    count = 0

    def slot(match: re.Match[bytes]) -> bytes:
        nonlocal count
        if match["percent"]:
            return b"%"
        if match["positional"]:
            count += 1
            return b"$%d" % count
        name = match["name"].decode()
        if name not in order:
            order.append(name)
        return b"$%d" % (order.index(name) + 1)

    text = _PLACEHOLDER.sub(slot, sql.encode())
    if order and count:
        raise ValueError(f"both named and positional placeholders: {sql}")
    numbered = (text, tuple(order))
    if len(_NUMBERED) < 4096:  # the store's statements are a fixed few; a runaway set is not kept
        _NUMBERED[sql] = numbered
    return numbered
