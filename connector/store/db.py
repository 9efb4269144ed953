"""Engine creation and schema migration, the same for SQLite and PostgreSQL."""

from __future__ import annotations

import fcntl
import json
import logging
import os
import threading
import time
import weakref
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import Connection, Dialect, Engine, Table, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DisconnectionError, OperationalError
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.functions import FunctionElement
from sqlalchemy.sql.selectable import Alias
from sqlalchemy.types import NullType

from connector.errors import StartupError, first_line
from connector.store.pgpipeline import PIPELINE, Pipeline

MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"


SUPPORTED = "sqlite:///PATH or postgresql://USER:PASSWORD@HOST:PORT/DATABASE"


class DatabaseUnavailable(StartupError):
    """The configured database cannot be used; the message says why and what to do, on one line.
    `may_answer_later`: it did not answer (down, restarting, unreachable), as opposed to refusing
    us (no such database, a wrong password): a service waits for the first, never for the second."""

    def __init__(self, message: str, *, may_answer_later: bool = False):
        super().__init__(message)
        self.may_answer_later = may_answer_later


def driver_url(url: str) -> str:
    """The URL SQLAlchemy gets: PostgreSQL through psycopg 3, the driver we ship (plain postgresql://
    would pick psycopg2), also for the `postgres://` spelling Heroku and libpq tools use."""
    for scheme in ("postgresql://", "postgres://", "postgresql+psycopg2://", "postgres+psycopg://"):
        if url.startswith(scheme):
            return "postgresql+psycopg://" + url[len(scheme) :]
    return url


def make_engine(url: str) -> Engine:
    """An engine tuned for the backend: SQLite gets WAL + a busy timeout, PostgreSQL a pool."""
    url = driver_url(url)
    if url.startswith("sqlite:"):
        try:
            engine = create_engine(
                url, connect_args={"timeout": 30, "check_same_thread": False}, **_JSON_CODEC
            )
        except ArgumentError as exc:
            raise DatabaseUnavailable(f"database: {redact(url)} is not a valid URL: use {SUPPORTED}") from exc
        event.listen(engine, "connect", _sqlite_pragmas)
        event.listen(engine, "engine_disposed", _let_writer_go)
        return engine
    if not url.startswith("postgresql+psycopg://"):
        scheme = url.split("://", 1)[0] if "://" in url else url
        raise DatabaseUnavailable(
            f"database: {scheme!r} is not a database Escalator supports: use {SUPPORTED}"
        )
    try:
        # psycopg's own statement preparation off: after a rollback it deallocates every statement
        # on the connection, ours (pgpipeline's, prepared for the hot paths) with its own.
        engine = create_engine(
            url, pool_size=10, max_overflow=10, connect_args={"prepare_threshold": None}, **_JSON_CODEC
        )
    except ArgumentError as exc:
        raise DatabaseUnavailable(f"database: {redact(url)} is not a valid URL: use {SUPPORTED}") from exc
    event.listen(engine.pool, "checkin", _idle_from_now)
    # Core's executions only (the dialect's events): Prepared statements reach the cursor directly.
    for execution in ("do_execute", "do_executemany", "do_execute_no_params"):
        event.listen(engine, execution, _settle_pipeline)
    dialect = engine.dialect
    event.listen(engine.pool, "checkout", lambda conn, record, _proxy: _ping_if_idle(dialect, conn, record))
    return engine


# A pooled PostgreSQL connection left idle longer than this is pinged before it is used again (the
# server restarted, a proxy cut it); one in steady use is not: a ping on every checkout (SQLAlchemy's
# pool_pre_ping) was a round trip in every transaction. A restart takes longer than this, and the
# statements that fail meanwhile make SQLAlchemy invalidate every connection of the pool.
PING_WHEN_IDLE_SECONDS = 1.0


def _idle_from_now(_dbapi_conn, record) -> None:
    record.info["idle_since"] = time.monotonic()


def _ping_if_idle(dialect, dbapi_conn, record) -> None:
    since = record.info.get("idle_since")
    if since is None or time.monotonic() - since < PING_WHEN_IDLE_SECONDS:
        return  # just connected, or just used
    try:
        dialect.do_ping(dbapi_conn)
    except Exception as exc:
        if dialect.is_disconnect(exc, dbapi_conn, None):
            # The pool drops this connection and checks out another (a new one, when all are gone).
            raise DisconnectionError(f"a pooled connection was found closed: {exc}") from exc
        raise


def _json_dumps(value: Any) -> str:
    """JSON columns' text (a ticket's snapshot and clocks, messages, timers): orjson, ~5x faster than
    the json module; what it refuses (an integer beyond 64 bits) is written by json as before."""
    try:
        return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()
    except TypeError:
        return json.dumps(value)


def _json_loads(text: str | bytes) -> Any:
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:  # (a subclass of ValueError) e.g. an integer beyond 64 bits
        return json.loads(text)


_JSON_CODEC = {"json_serializer": _json_dumps, "json_deserializer": _json_loads}


def redact(url: str) -> str:
    """The URL with its password hidden, for messages and logs."""
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        creds, host = rest.rsplit("@", 1)
        return f"{scheme}://{creds.split(':', 1)[0]}:***@{host}" if ":" in creds else url
    return url


def check_reachable(engine: Engine) -> None:
    """Connect once; DatabaseUnavailable with what to do when that fails (down, missing, refused)."""
    if engine.dialect.name == "sqlite":
        _check_sqlite_path(engine)
    try:
        with engine.connect():
            pass
    except OperationalError as exc:
        raise DatabaseUnavailable(_explain(engine, exc), may_answer_later=_not_answering(exc)) from exc


# What PostgreSQL (or the network) says while the server is down, starting, stopping or unreachable.
_NOT_ANSWERING = (
    "connection refused", "could not connect", "timeout", "timed out", "the database system is",
    "server closed the connection", "no route to host", "network is unreachable",
)  # fmt: skip


def _not_answering(exc: OperationalError) -> bool:
    text = str(exc.orig or exc).lower()
    return any(words in text for words in _NOT_ANSWERING)


def _check_sqlite_path(engine: Engine) -> None:
    database = engine.url.database
    if not database or database == ":memory:":
        return
    path = Path(database).resolve()
    if not path.parent.is_dir():
        raise DatabaseUnavailable(
            f"database: the folder of the SQLite file {path} does not exist: create it, or fix database: "
            "(a relative path is resolved against the config file's folder)"
        )
    if path.exists() and not os.access(path, os.R_OK | os.W_OK):
        raise DatabaseUnavailable(
            f"database: the SQLite file {path} cannot be read and written by this user: "
            "fix its owner or permissions"
        )
    if not path.exists() and not os.access(path.parent, os.W_OK | os.X_OK):
        raise DatabaseUnavailable(
            f"database: cannot create the SQLite file {path}: its folder is not writable by this user"
        )


def _explain(engine: Engine, exc: OperationalError) -> str:
    where = redact(engine.url.render_as_string(hide_password=False))
    reason = str(exc.orig or exc).strip().splitlines()[-1] if str(exc.orig or exc).strip() else str(exc)
    text = str(exc.orig or exc)
    url = engine.url
    if engine.dialect.name == "sqlite":
        return f"database: cannot open the SQLite file {url.database}: {reason}"
    if "does not exist" in text and "database" in text:
        return (
            f'database: PostgreSQL at {url.host}:{url.port or 5432} has no database "{url.database}": '
            f"create it (createdb {url.database}) or fix database: in the config"
        )
    if "password authentication failed" in text or "no password supplied" in text:
        return (
            f"database: PostgreSQL at {url.host}:{url.port or 5432} refused user {url.username!r}: "
            "check the user and password in database: (use ${VAR} for the password)"
        )
    if "Connection refused" in text or "could not connect" in text or "timeout" in text.lower():
        return (
            f"database: PostgreSQL at {url.host}:{url.port or 5432} does not answer ({where}): "
            "is it running and reachable from here? Start it, or fix database: in the config"
        )
    return f"database: {where} cannot be used: {reason}"


def _sqlite_pragmas(dbapi_conn, _record) -> None:
    cur = dbapi_conn.cursor()
    # WAL lets the webhook threads write while the worker reads; NORMAL is durable in WAL
    # across process crashes (only an OS crash can lose the last commits).
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()


class _WriterLock:
    """Serialises SQLite writers across threads and processes with an OS file lock.

    SQLite's own busy handler sleeps in growing steps (1, 2, 5 … 100 ms) while another
    connection writes, so every collision between the webhook path and a worker cost
    milliseconds to tens of milliseconds. A kernel lock hands over the moment it is free.
    """

    def __init__(self, path: str):
        self._threads = threading.Lock()
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)

    @contextmanager
    def held(self) -> Iterator[None]:
        with self._threads:
            fcntl.flock(self._fd, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(self._fd, fcntl.LOCK_UN)


_WRITER_LOCKS: dict[str, _WriterLock] = {}  # one per database file in this process
_ENGINE_LOCKS: weakref.WeakKeyDictionary[Engine, _WriterLock | None] = weakref.WeakKeyDictionary()
_WRITER_LOCKS_GUARD = threading.Lock()


def _writer_lock(engine: Engine) -> _WriterLock | None:
    try:
        return _ENGINE_LOCKS[engine]
    except KeyError:
        pass
    lock = None
    database = make_url(str(engine.url)).database if engine.dialect.name == "sqlite" else None
    # PostgreSQL queues writers itself, without sleeping; an in-memory SQLite has one connection.
    if database and database != ":memory:":
        path = str(Path(database).resolve()) + ".writer-lock"
        with _WRITER_LOCKS_GUARD:
            lock = _WRITER_LOCKS.get(path)
            if lock is None:
                lock = _WRITER_LOCKS[path] = _WriterLock(path)
    _ENGINE_LOCKS[engine] = lock
    return lock


@contextmanager
def write_lock(engine: Engine) -> Iterator[None]:
    """Hold the right to write (SQLite); a no-op where the database queues writers itself."""
    lock = _writer_lock(engine)
    if lock is None:
        yield
        return
    with lock.held():
        yield


@contextmanager
def writing(engine: Engine) -> Iterator[Connection]:
    """A write transaction. Every write in the store goes through here (or through write_lock).

    On a SQLite file the process writes through one connection per engine, held between
    transactions and used only under the writer lock, so by one thread at a time: checking a
    connection out of the pool and back in (with its reset) cost ~40 µs of a transaction's ~60, and
    a decision takes one or two. A transaction that fails gives its connection back (a fresh one is
    taken next), and `engine.dispose()` lets it go. Until then the held connection keeps the engine
    (and its file) open, as any connection checked out of SQLAlchemy's pool does: an engine that
    writes is disposed when done with (Runtime.close, the commands that open one)."""
    lock = _writer_lock(engine)
    if lock is None:
        with engine.begin() as conn:
            yield conn
        return
    with lock.held():
        conn = _HELD_WRITERS.pop(engine, None)
        if conn is None or conn.closed or conn.invalidated:
            conn = engine.connect()
        try:
            with conn.begin():
                yield conn
        except BaseException:
            conn.close()
            raise
        _HELD_WRITERS[engine] = conn


# SQLite: the connection each engine writes through between its transactions (writing()).
_HELD_WRITERS: weakref.WeakKeyDictionary[Engine, Connection] = weakref.WeakKeyDictionary()


def _let_writer_go(engine: Engine) -> None:
    """`engine.dispose()`: its held connection goes back too (tests open new connections after it)."""
    conn = _HELD_WRITERS.pop(engine, None)  # (one in use now is not held: it is put back after)
    if conn is not None:
        # Closed now, not given back: the disposed pool would keep it open (and SQLite its WAL).
        conn.invalidate()
        conn.close()


@contextmanager
def pipelined_writing(engine: Engine) -> Iterator[Connection]:
    """A write transaction, as writing(); on PostgreSQL sent in as few round trips as its reads allow.

    psycopg sends a transaction's BEGIN as a round trip of its own and its COMMIT as another, also in
    its pipeline mode, and its cursor costs ~100 µs of Python a statement. Here the connection runs in
    autocommit and the block's statements go through a `Pipeline` (libpq's pipeline mode, driven
    directly): BEGIN is queued first and COMMIT last, and the statements between go out without
    waiting for each answer. A read (RETURNING or SELECT through `Prepared` or `dbapi_cursor`) is
    one round trip for everything queued before it; the block's end is one more. A Core statement
    (`conn.execute`) first waits for everything queued, then runs as usual. A statement refused
    surfaces at the next read or at the end, the transaction is rolled back and the connection goes
    on working."""
    if engine.dialect.name != "postgresql":
        with writing(engine) as conn:
            yield conn
        return
    with engine.connect() as conn:
        # The isolation a transaction of writing() runs at (the server's default, as SQLAlchemy read it).
        begin = f"BEGIN ISOLATION LEVEL {conn.default_isolation_level}"
        conn = conn.execution_options(isolation_level="AUTOCOMMIT")
        with _piped(conn, begin):
            yield conn


@contextmanager
def _piped(conn: Connection, begin: str | None) -> Iterator[None]:
    """`conn`'s Prepared statements (and dbapi_cursor's) sent through a Pipeline for the block: in a
    transaction that `begin` opens and the block's end commits, or (None) in autocommit."""
    info = conn.connection.info
    try:
        with piped(conn.connection.dbapi_connection, conn.dialect, begin) as pipeline:
            info[PIPELINE] = pipeline
            yield
    finally:
        info.pop(PIPELINE, None)  # (a lost connection may have taken the pool record's info with it)


@contextmanager
def piped(raw: Any, dialect: Dialect, begin: str | None) -> Iterator[Pipeline]:
    """A Pipeline on `raw` (a psycopg connection in autocommit that nothing else uses meanwhile) for
    the block: in a transaction that `begin` opens and the block's end commits, or (None) each
    statement committed alone. On an error the pipeline is given up and the transaction rolled back."""
    pipeline = Pipeline(raw, dialect, begin)
    try:
        yield pipeline
        pipeline.finish("COMMIT" if begin else None)
    except BaseException:
        with suppress(Exception):  # a lost connection fails here too: the block's error is the one
            pipeline.abandon()
        if begin and not raw.closed and raw.info.transaction_status != _IDLE:
            # The transaction we began (psycopg sends ROLLBACK in autocommit too). On a lost
            # connection this fails as well, and the pool drops the connection when its reset fails.
            with suppress(Exception):
                raw.rollback()
        raise


def transaction_memo(conn: Connection) -> dict[str, Any] | None:
    """Inside db.pipelined_writing on PostgreSQL, a dict that lives as long as the transaction: for
    what its statements learned and it holds until it ends (the audit chain's head, once bumped and
    read, is this transaction's until the commit). None elsewhere."""
    pipeline = conn.connection.info.get(PIPELINE)
    return pipeline.memo if pipeline is not None and pipeline.in_transaction else None


def read_before_commit(conn: Connection, read: Callable[[], None]) -> None:
    """Call `read` (an answer's check, which may raise and so fail the transaction) before the commit.
    Inside db.pipelined_writing on PostgreSQL, right before it, where the first such read is one
    round trip for every statement sent; elsewhere at once."""
    pipeline = conn.connection.info.get(PIPELINE)
    if pipeline is not None and pipeline.in_transaction:
        pipeline.read_before_end(read)
    else:
        read()


def _settle_pipeline(cursor: Any, statement: str, *args: Any) -> None:
    """Before psycopg's own cursor sends a Core statement where a Pipeline is open: its answers read
    first and pipeline mode left, so the statement's answer is the next one. (Returns None: SQLAlchemy
    then executes the statement itself.)"""
    try:
        info = args[-1].root_connection.connection.info  # args[-1]: the execution context
    except NotImplementedError:  # the dialect's first look at a new connection: no pool record yet
        return
    pipeline = info.get(PIPELINE)
    if pipeline is not None:
        pipeline.settle()


_IDLE = 0  # psycopg.pq.TransactionStatus.IDLE


def reading(engine: Engine) -> AbstractContextManager[Connection]:
    """A connection for reads only. On PostgreSQL in autocommit: under READ COMMITTED a transaction
    gives its reads no common snapshot anyway, and psycopg would send the BEGIN before them and the
    ROLLBACK that returns the connection to the pool as round trips of their own (three for one
    read). Nothing written through it is atomic with anything else."""
    return _autocommit_on_postgresql(engine, otherwise=engine.connect)


def one_statement(engine: Engine) -> AbstractContextManager[Connection]:
    """A connection for one write statement, atomic alone. On PostgreSQL it runs in autocommit: psycopg
    sends a transaction's BEGIN and COMMIT as round trips of their own, two of three for a lone
    statement. On SQLite, a transaction under the writer lock, as writing() (its autocommit switch
    would cost a PRAGMA each way)."""
    return _autocommit_on_postgresql(engine, otherwise=lambda: writing(engine))


@contextmanager
def _autocommit_on_postgresql(
    engine: Engine, *, otherwise: Callable[[], AbstractContextManager[Connection]]
) -> Iterator[Connection]:
    """On PostgreSQL a pooled connection whose every statement commits alone (psycopg's autocommit:
    no BEGIN, COMMIT or ROLLBACK of ours; the pool puts the default isolation back when it returns),
    its Prepared statements sent through a Pipeline (statements sent together before a read commit
    together); elsewhere what `otherwise()` gives."""
    if engine.dialect.name != "postgresql":
        with otherwise() as conn:
            yield conn
        return
    with engine.connect() as conn:
        conn = conn.execution_options(isolation_level="AUTOCOMMIT")
        with _piped(conn, None):
            yield conn


def database_unavailable(engine: Engine, exc: BaseException) -> bool:
    """The database is down or busy (a connection lost, a lock timeout): nothing about what was
    being written, which goes through once it answers again."""
    dbapi = engine.dialect.dbapi
    lost = isinstance(exc, OperationalError)
    return lost or (dbapi is not None and isinstance(exc, dbapi.OperationalError))


_SQLITE_FULL = 13  # sqlite3's error code for "database or disk is full"
_PG_DISK_FULL = "53100"  # PostgreSQL's SQLSTATE disk_full


def disk_full(exc: BaseException) -> bool:
    """The database could not write for want of space: its disk (or SQLite's max_page_count) is full."""
    cause = getattr(exc, "orig", None) or exc
    sqlite_full = getattr(cause, "sqlite_errorcode", None) == _SQLITE_FULL
    return sqlite_full or getattr(cause, "sqlstate", None) == _PG_DISK_FULL


def unavailable_because(exc: BaseException) -> str:
    """Why the database did not do what was asked, for a log line: away, or out of space (which only an
    admin freeing some clears)."""
    if disk_full(exc):
        return f"the database's disk is full, free space there: {first_line(exc)}"
    return f"the database is away: {first_line(exc)}"


class _Repeats:
    """Of the same round failing for the same reason on one engine, one warning line a `window`: a
    worker's claim tries again every second, so a disk full for an hour was 3,600 lines. The lines
    left out are counted, and the next one says how many."""

    def __init__(self, window: float):
        self.window = window
        self._lock = threading.Lock()
        self._seen: weakref.WeakKeyDictionary[Engine, dict[tuple[str, ...], list[float]]] = (
            weakref.WeakKeyDictionary()
        )

    def admit(self, engine: Engine, key: tuple[str, ...]) -> int | None:
        """None: leave this one out (counted); else how many were left out since the last one."""
        now = time.monotonic()
        with self._lock:
            seen = self._seen.setdefault(engine, {})
            last = seen.get(key)
            if last is not None and now - last[0] < self.window:
                last[1] += 1
                return None
            seen[key] = [now, 0]
            return int(last[1]) if last is not None else 0


_REPEATS = _Repeats(window=60.0)


def log_round_failed(
    log: logging.Logger, engine: Engine, exc: BaseException, message: str, *args: Any
) -> None:
    """A background round (a claim, a tick, a batch of webhooks) failed and the next one tries again:
    with the database away (restarting, a connection cut) or out of space, one warning line saying so,
    once a minute for the same round and reason; anything else with its traceback, every time."""
    if not database_unavailable(engine, exc):
        log.error(message, *args, exc_info=exc)
        return
    left_out = _REPEATS.admit(engine, (log.name, message, "disk" if disk_full(exc) else "away"))
    if left_out is None:
        return
    more = f"; {left_out} more like it since the last such line" if left_out else ""
    log.warning(message + " (%s)%s", *args, unavailable_because(exc), more)


class few_rows(FunctionElement):  # noqa: N801 (used as a function in statements)
    """`few_rows(condition)`: the condition, which holds for few of the table's rows (the inbox's
    unfinished ones among all it keeps). SQLite is told so (`likelihood(condition, 0.001)`): once
    `ANALYZE` or `PRAGMA optimize` has run, its statistics hold only averages, and it read all of
    the inbox's rows in ticket order to group the unfinished ones rather than find them by status
    (45 ms a line read, 21 ms a claim with 50,000 finished rows). Elsewhere the plain condition."""

    type = NullType()
    inherit_cache = True
    name = "few_rows"


class _IndexedBy(Alias):
    """An alias of a table that SQLite reads through a named index (`indexed_by`)."""

    inherit_cache = False  # the index is not part of the cache key: statements using it are Prepared
    index = ""


def indexed_by(table: Table, name: str, index: str) -> Alias:
    """`table AS name`, which SQLite reads through `index` (`INDEXED BY`; other databases choose).

    For statements whose good plan SQLite cannot see without statistics, or sees wrongly with them:
    a partial index walked in order until a batch is full looks, to its planner, no better than a
    status index and a sort of every row. If `index` is gone, the statement fails to prepare."""
    alias = _IndexedBy._construct(table, name=name)
    alias.index = index
    return alias


@compiles(_IndexedBy)
def _indexed_by(element: _IndexedBy, compiler: Any, **kw: Any) -> str:
    return compiler.visit_alias(element, **kw)


@compiles(_IndexedBy, "sqlite")
def _indexed_by_sqlite(element: _IndexedBy, compiler: Any, **kw: Any) -> str:
    text = compiler.visit_alias(element, **kw)
    return f"{text} INDEXED BY {element.index}" if kw.get("asfrom") else text


@compiles(few_rows)
def _few_rows(element: few_rows, compiler: Any, **kw: Any) -> str:
    return f"({compiler.process(element.clauses, **kw)})"


@compiles(few_rows, "sqlite")
def _few_rows_sqlite(element: few_rows, compiler: Any, **kw: Any) -> str:
    return f"likelihood({compiler.process(element.clauses, **kw)}, 0.001)"


def placeholder(paramstyle: str) -> str:
    """The DBAPI's mark for one positional parameter: sqlite3's qmark `?`, psycopg's format `%s`."""
    return "?" if paramstyle == "qmark" else "%s"


@dataclass(frozen=True)
class RowInsert:
    """An INSERT of one row's `columns` for the hot paths to run on the DBAPI cursor (the webhook
    intake, the audit append): building and compiling a Core statement per row cost more than the
    insert. The values go through SQLAlchemy's own bind processors, so they are stored exactly as
    Core would store them."""

    sql: str  # INSERT INTO table (columns) VALUES (one mark each)
    processors: tuple[Any, ...]

    def bound(self, values: Sequence[Any]) -> list[Any]:
        """`values`, in the columns' order, as the DBAPI takes them."""
        return [p(v) if p else v for p, v in zip(self.processors, values, strict=True)]


# Built once per backend and table (every engine's JSON columns use the same codec, _JSON_CODEC).
_ROW_INSERTS: dict[tuple[str, str, str, str, tuple[str, ...]], RowInsert] = {}


def row_insert(dialect: Dialect, table: Table, columns: tuple[str, ...]) -> RowInsert:
    key = (dialect.name, dialect.driver, dialect.paramstyle, table.name, columns)
    found = _ROW_INSERTS.get(key)
    if found is None:
        marks = ", ".join([placeholder(dialect.paramstyle)] * len(columns))
        types = (table.c[name].type.dialect_impl(dialect) for name in columns)
        processors = tuple(kind.bind_processor(dialect) for kind in types)
        sql = f"INSERT INTO {table.name} ({', '.join(columns)}) VALUES ({marks})"
        found = _ROW_INSERTS[key] = RowInsert(sql, processors)
    return found


# The PostgreSQL advisory lock key a migration holds until its transaction ends ("escalat" in ASCII).
MIGRATION_LOCK = 0x657363616C617400


class NewerSchema(DatabaseUnavailable):
    """The database was migrated by a newer Escalator than this one: this code cannot use it."""


def migrate(engine: Engine) -> None:
    """Bring the schema to the newest Alembic revision (idempotent). NewerSchema when a newer Escalator
    migrated the database past what this code knows (started again after a downgrade, say)."""
    from alembic import command
    from alembic.config import Config
    from alembic.runtime.migration import MigrationContext

    from connector.store.schema import SchemaState, head

    check_reachable(engine)
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    with writing(engine) as conn:
        if conn.dialect.name == "postgresql":
            # Replicas (or serve and `escalator work`) started at once each migrate: one at a time, the
            # others then find the schema at its head. (SQLite: writing() holds the writer lock.)
            conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({MIGRATION_LOCK})")
        schema = SchemaState(MigrationContext.configure(conn).get_current_revision(), head())
        if not schema.known:  # (Alembic would fail on it with "Can't locate revision", a traceback)
            raise NewerSchema(f"database: {redact(str(engine.url))}, {schema}")
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")
