"""Engine creation and schema migration, the same for SQLite and PostgreSQL."""

from __future__ import annotations

import fcntl
import os
import threading
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url

MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"


def make_engine(url: str) -> Engine:
    """An engine tuned for the backend: SQLite gets WAL + a busy timeout, PostgreSQL a pool."""
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    if url.startswith("postgresql://"):
        # psycopg 3 is the driver we ship; plain postgresql:// would pick psycopg2.
        url = "postgresql+psycopg://" + url[len("postgresql://") :]
    return create_engine(url, pool_size=10, max_overflow=10, pool_pre_ping=True)


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
    """A write transaction. Every write in the store goes through here (or through write_lock)."""
    with write_lock(engine), engine.begin() as conn:
        yield conn


def migrate(engine: Engine) -> None:
    """Bring the schema to the newest Alembic revision (idempotent)."""
    from alembic import command
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    with writing(engine) as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")
