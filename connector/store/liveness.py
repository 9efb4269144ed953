"""Whether a worker process still runs, known to every other: each holds a lock for as long as it lives.

A worker leases what it takes (connector/store/leases.py). One that dies without a word (`kill -9`,
the OOM killer, a host gone) keeps it until the leases run out: `worker.lease_seconds`, a minute by
default. So a worker also holds a lock while its process lives, which nothing but the end of the
process (or of its database session) lets go: on PostgreSQL a session advisory lock on a connection of
its own, which the server drops with the session, so replicas on other hosts see it too; on SQLite an
OS lock on a file beside the database, which the kernel drops with the process. Every worker looks
every few seconds whether the owners of running leases still hold theirs (connector/lease_keeper.py,
`DeadOwners`); one whose lock is free at two looks in a row is gone, and its leases are run out at
once.

Only owners that say they hold such a lock are looked at: their lease owner name's tag starts with
`MARK` (`host:pid:Lxxxxx`). A process of an earlier version, or a one-off command that claims work
(tests, benchmarks), holds none and keeps the plain lease.
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import os
import uuid
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path

from sqlalchemy import Engine, bindparam, select, union
from sqlalchemy.engine import make_url

from connector.store import inbox as deliveries
from connector.store import outbox as notifications
from connector.store.db import reading
from connector.store.tables import inbox, outbox

log = logging.getLogger("escalator.liveness")

MARK = "L"


def new_tag(*, lock: bool = True) -> str:
    """A lease owner's tag of its own: with `lock`, one that says its process holds a liveness lock
    (see `Alive`); without, six hex digits, which never start with MARK."""
    token = uuid.uuid4().hex
    return MARK + token[:5] if lock else token[:6]


def holds_lock(owner: str) -> bool:
    """Whether the lease owner `owner` (host:pid:tag) says it holds a liveness lock."""
    return owner.rsplit(":", 1)[-1].startswith(MARK)


class Alive:
    """This process's lock, held from `hold()` until `release()` or the process's end.

    Take it before claiming anything: a claim by an owner whose lock is free is taken back by the
    first worker that looks. `hold()` again after the database restarted (the session's lock went
    with it); `held()` says whether the connection that holds it still answers."""

    def __init__(self, engine: Engine, owner: str):
        if not holds_lock(owner):
            raise ValueError(f"lease owner {owner!r} has no liveness tag (see new_tag())")
        self.engine, self.owner = engine, owner
        self._connection = None  # PostgreSQL: a DBAPI connection of its own, out of the pool
        self._file = None  # SQLite: the open, locked file

    def hold(self) -> None:
        self.release()
        if self.engine.dialect.name == "postgresql":
            connection = self.engine.raw_connection()
            connection.detach()  # never back to the pool, where a reset would keep the lock
            raw = connection.dbapi_connection
            raw.autocommit = True
            if not raw.execute("SELECT pg_try_advisory_lock(%s)", (_key(self.owner),)).fetchone()[0]:
                connection.close()
                raise RuntimeError(f"another session holds the liveness lock of {self.owner}")
            self._connection = connection
            return
        folder = _folder(self.engine)
        if folder is None:
            return  # an in-memory database: one process, nobody to tell
        folder.mkdir(exist_ok=True)
        path = folder / _file_name(self.owner)
        while self._file is None:
            handle = open(path, "a+b")  # noqa: SIM115 (held until release)
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.close()
                raise RuntimeError(f"another process holds the liveness lock of {self.owner}") from None
            if _same_file(path, handle):
                self._file = handle
            else:  # a sweep took it for a dead owner's between our open and our lock: anew
                handle.close()

    def held(self) -> bool:
        """False when the PostgreSQL session that holds the lock is gone (then `hold()` again)."""
        if self._connection is None:
            return self._file is not None or _folder(self.engine) is None
        try:
            self._connection.dbapi_connection.execute("SELECT 1").fetchone()
            return True
        except Exception:
            return False

    def release(self) -> None:
        if self._connection is not None:
            try:
                self._connection.close()  # the session ends, and its lock with it
            except Exception:
                log.debug("closing the liveness connection failed", exc_info=True)
            self._connection = None
        if self._file is not None:
            path = Path(self._file.name)
            path.unlink(missing_ok=True)
            self._file.close()
            self._file = None


def gone(engine: Engine, owners: Iterable[str]) -> list[str]:
    """Of `owners` that say they hold a liveness lock, those whose lock is free: their process ended.
    An owner whose lock cannot be looked at (no file on SQLite: another version's) is not named."""
    candidates = [owner for owner in owners if holds_lock(owner)]
    if not candidates:
        return []
    if engine.dialect.name == "postgresql":
        # Each taken for an instant and let go, all in one statement: free means nobody's session holds it.
        keys = {_key(owner): owner for owner in candidates}
        with reading(engine) as conn:
            cursor = conn.connection.dbapi_connection.cursor()
            try:
                cursor.execute(_FREE, {"keys": list(keys)})
                return [keys[key] for (key,) in cursor.fetchall()]
            finally:
                cursor.close()
    folder = _folder(engine)
    if folder is None:
        return []
    return [owner for owner in candidates if _file_free(folder / _file_name(owner), remove=False)]


_FREE = (
    "SELECT k FROM unnest(%(keys)s::bigint[]) AS k "
    "WHERE CASE WHEN pg_try_advisory_lock(k) THEN pg_advisory_unlock(k) ELSE false END"
)


def forget(engine: Engine, owner: str) -> None:
    """After its leases were run out: the dead owner's lock file goes (SQLite; nothing on PostgreSQL)."""
    folder = _folder(engine)
    if folder is not None and engine.dialect.name != "postgresql":
        _file_free(folder / _file_name(owner), remove=True)


def sweep(engine: Engine, *, leasing: Iterable[str] = ()) -> int:
    """SQLite: remove the lock files of processes that ended holding no lease (stopped with work in
    flight, killed between claims); those of `leasing` (owners of running leases) stay, to be found
    gone by `gone`. How many went."""
    folder = _folder(engine)
    if folder is None or engine.dialect.name == "postgresql" or not folder.is_dir():
        return 0
    kept = {_file_name(owner) for owner in leasing}
    return sum(_file_free(path, remove=True) for path in folder.glob("*.lock") if path.name not in kept)


_LEASE_OWNERS = union(
    select(inbox.c.lease_owner).where(
        inbox.c.status == deliveries.PROCESSING, inbox.c.lease_until >= bindparam("b_now")
    ),
    select(outbox.c.lease_owner).where(
        outbox.c.status == notifications.PENDING,
        outbox.c.lease_owner.is_not(None),
        outbox.c.lease_until >= bindparam("b_now"),
    ),
)


def lease_owners(engine: Engine, now: datetime) -> set[str]:
    """The owners of deliveries and notifications leased until `now` or later."""
    with reading(engine) as conn:
        return {owner for (owner,) in conn.execute(_LEASE_OWNERS, {"b_now": now}) if owner}


def _key(owner: str) -> int:
    """The advisory lock's key: a signed 64-bit number of the owner name."""
    return int.from_bytes(
        hashlib.sha256(f"escalator-worker\n{owner}".encode()).digest()[:8], "big", signed=True
    )


def _folder(engine: Engine) -> Path | None:
    """SQLite: the folder of lock files beside the database file (None: in memory)."""
    if engine.dialect.name == "postgresql":
        return None
    database = make_url(str(engine.url)).database
    if not database or database == ":memory:":
        return None
    return Path(str(Path(database).resolve()) + ".workers")


def _file_name(owner: str) -> str:
    return hashlib.sha256(owner.encode()).hexdigest()[:32] + ".lock"


def _same_file(path: Path, handle) -> bool:
    try:
        return os.stat(path).st_ino == os.fstat(handle.fileno()).st_ino
    except FileNotFoundError:
        return False


def _file_free(path: Path, *, remove: bool) -> bool:
    """Whether nobody holds the lock of the file at `path` (which exists); with `remove`, it goes then.
    A missing file is not free: an owner that never made one is not known to be gone."""
    try:
        handle = open(path, "rb")  # noqa: SIM115
    except FileNotFoundError:
        return False
    with handle:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        if remove:
            path.unlink(missing_ok=True)
        return True
