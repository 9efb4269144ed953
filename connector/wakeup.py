"""Wake the workers when work arrives, instead of leaving it for their next poll.

Webhooks are stored by the web process (or by any replica); the workers run in other processes.
After a commit that stored new work, the storing side rings a doorbell, and every worker that
listens looks for work at once:

- PostgreSQL: `NOTIFY escalator_inbox` inside the storing transaction (delivered at its commit,
  to every replica; several in one transaction count once). Each worker process keeps one
  dedicated autocommit connection that LISTENs, and opens it again when it is lost.
- SQLite (one host): each listening worker binds a Unix datagram socket in a folder beside the
  database file (`escalator.db.wake/`); the storing side sends one datagram to each.
  Sending never blocks and never fails the commit: a worker that is gone, slow or not there at
  all simply is not woken.

A signal names the tickets whose rows it stored (how many of each), so a worker can tell which of
the deliveries it has in flight have a successor waiting behind them: only those look for work
again when they finish. A signal that names none ("something may be due") is sent where the
tickets are not known (the SLA tick, reconcile, the rate limiter's line) and after a listener
(re)connects; a worker then looks again after each delivery it had in flight.

A lost signal costs latency, never work: the workers still poll (`worker.poll_seconds`).
"""

from __future__ import annotations

import errno
import itertools
import json
import logging
import os
import socket
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.engine import make_url

log = logging.getLogger("escalator.wakeup")

CHANNEL = "escalator_inbox"
_SUN_PATH_MAX = 107  # bytes a Unix socket address may hold on Linux (108 with the NUL)
_names = itertools.count()
# PostgreSQL's NOTIFY payload must stay under 8000 bytes; datagrams are cut to the same size.
PAYLOAD_BYTES = 7900

Ticket = tuple[str, str]  # (platform, ticket id)
# What one signal says was stored: rows per ticket; None when it does not know (look for anything).
Stored = Counter[Ticket] | None
OnWake = Callable[[Stored], None]


def tickets_of(rows: Iterable[Mapping[str, Any]]) -> Counter[Ticket]:
    """The tickets of inbox rows (connector/store/inbox.py new_row()), with how many rows each."""
    return Counter((row["platform"], row["ticket_id"]) for row in rows if row.get("ticket_id") is not None)


def payloads(stored: Counter[Ticket]) -> list[str]:
    """The signal for `stored` in payloads of at most PAYLOAD_BYTES (JSON `[[platform, ticket, rows],
    ...]`, each ticket in one); [""] (tickets unknown) when a single entry is longer than that."""
    chunks: list[str] = []
    entries: list[str] = []
    size = 2
    for (platform, ticket_id), rows in stored.items():
        entry = json.dumps([platform, ticket_id, rows], separators=(",", ":"))
        length = len(entry.encode())
        if length + 2 > PAYLOAD_BYTES:
            return [""]
        if entries and size + length + 1 > PAYLOAD_BYTES:
            chunks.append("[" + ",".join(entries) + "]")
            entries, size = [], 2
        entries.append(entry)
        size += length + 1
    if entries:
        chunks.append("[" + ",".join(entries) + "]")
    return chunks or [""]


def parse(payload: str | bytes) -> Stored:
    """What a signal's payload says was stored; None for an empty or unreadable one (look for anything)."""
    if not payload:
        return None
    try:
        found = Counter[Ticket]()
        for platform, ticket_id, rows in json.loads(payload):
            found[(str(platform), str(ticket_id))] += int(rows)
        return found
    except (ValueError, TypeError):
        log.debug("unreadable wake-up payload %r; looking for anything", payload[:80])
        return None


def socket_folder(engine: Engine) -> Path | None:
    """Where SQLite's listeners bind, beside the database file; None for an in-memory database."""
    database = make_url(str(engine.url)).database
    if not database or database == ":memory:":
        return None
    return Path(str(Path(database).resolve()) + ".wake")


Rows = Sequence[Mapping[str, Any]]  # inbox rows stored (connector/store/inbox.py new_row())


class Doorbell:
    """The storing side. `in_transaction` inside the transaction that stores new work (PostgreSQL's
    NOTIFY rides it), `rang` after its commit (SQLite's datagrams), each given the rows stored: the
    one that signals names their tickets. Neither raises."""

    def in_transaction(self, dbapi_connection: Any, rows: Rows) -> None:
        """Queue the signal in the open transaction (PostgreSQL); nothing elsewhere."""

    def rang(self, rows: Rows | None) -> None:
        """The transaction committed: tell the listeners (SQLite); nothing elsewhere. None: a signal
        naming no tickets."""

    def ring(self, engine: Engine) -> None:
        """Outside any transaction of ours (the SLA tick, reconcile): a signal on its own, naming
        no tickets."""
        self.rang(None)

    def close(self) -> None:
        pass


class _PostgresDoorbell(Doorbell):
    def in_transaction(self, dbapi_connection: Any, rows: Rows) -> None:
        cursor = dbapi_connection.cursor()
        try:
            for payload in payloads(tickets_of(rows)):
                cursor.execute("SELECT pg_notify(%s, %s)", (CHANNEL, payload))
        finally:
            cursor.close()

    def ring(self, engine: Engine) -> None:
        try:
            with engine.connect() as conn:  # through SQLAlchemy, so its commit is the NOTIFY's
                conn.exec_driver_sql(f"NOTIFY {CHANNEL}")
                conn.commit()
        except Exception:  # the database is briefly unavailable: the listeners' poll finds the work
            log.debug("could not NOTIFY %s", CHANNEL, exc_info=True)


class _SocketDoorbell(Doorbell):
    """Sends the signal's datagrams to every socket in the folder. The folder is listed again only
    when it changed (one stat per ring), and the send never waits: a full queue means the
    listener has a wake-up pending already."""

    def __init__(self, folder: Path):
        self.folder = folder
        self._lock = threading.Lock()
        self._sock: socket.socket | None = None
        self._seen: tuple[int, int] | None = None  # (inode, mtime) of the folder last listed
        self._targets: list[str] = []
        self._folder_fd: int | None = None

    def rang(self, rows: Rows | None) -> None:
        try:
            targets = self._listeners()
            if not targets:
                return
            sock = self._socket()
            datagrams = [p.encode() for p in payloads(tickets_of(rows or ()))]
            for target in targets:
                for datagram in datagrams:
                    try:
                        sock.sendto(datagram, target)
                    except OSError as exc:  # gone (refused, no file) or busy (queue full): not ours to fix
                        if exc.errno not in (errno.ECONNREFUSED, errno.ENOENT, errno.EAGAIN, errno.ENOBUFS):
                            log.debug("waking the worker at %s failed", target, exc_info=True)
                        break
        except Exception:  # a doorbell never fails a commit: the workers' poll finds the work
            log.debug("ringing the wake-up folder %s failed", self.folder, exc_info=True)

    def _socket(self) -> socket.socket:
        if self._sock is None:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            sock.setblocking(False)
            self._sock = sock
        return self._sock

    def _listeners(self) -> list[str]:
        try:
            st = os.stat(self.folder)
        except FileNotFoundError:
            return []
        seen = (st.st_ino, st.st_mtime_ns)
        if seen == self._seen:
            return self._targets
        with self._lock:
            names = sorted(n for n in os.listdir(self.folder) if n.endswith(".sock"))
            if self._folder_fd is not None and self._seen is not None and self._seen[0] != st.st_ino:
                os.close(self._folder_fd)  # the folder was made again: the old one is gone
                self._folder_fd = None
            self._targets = [self._address(name) for name in names]
            self._seen = seen
        return self._targets

    def _address(self, name: str) -> str:
        if self._folder_fd is None:
            self._folder_fd = os.open(self.folder, os.O_RDONLY | os.O_DIRECTORY)
        return socket_address(self.folder, name, self._folder_fd)

    def close(self) -> None:
        with self._lock:
            if self._sock is not None:
                self._sock.close()
                self._sock = None
            if self._folder_fd is not None:
                os.close(self._folder_fd)
                self._folder_fd = None


def socket_address(folder: Path, name: str, folder_fd: int) -> str:
    """The address of socket `name` in `folder`: its path, or, when that is longer than a Unix
    socket address may be (deep temporary folders), the same file reached through the folder's
    open descriptor (`/proc/self/fd/N/name`, Linux)."""
    path = str(folder / name)
    if len(os.fsencode(path)) <= _SUN_PATH_MAX:
        return path
    return f"/proc/self/fd/{folder_fd}/{name}"


def doorbell(engine: Engine) -> Doorbell:
    """The doorbell for this database: NOTIFY on PostgreSQL, datagrams beside a SQLite file."""
    if engine.dialect.name == "postgresql":
        return _PostgresDoorbell()
    folder = socket_folder(engine) if engine.dialect.name == "sqlite" else None
    return _SocketDoorbell(folder) if folder is not None else Doorbell()


class Listener:
    """A daemon thread that calls `on_wake` with what was stored whenever work was signalled (and
    with None once at start, and after every reconnection, for what may have been stored while it
    was not listening)."""

    def __init__(self, on_wake: OnWake):
        self.on_wake = on_wake
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.ready = threading.Event()  # listening (tests wait for it before they ring)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="escalator-wakeup", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 2.0) -> None:
        self._stop.set()
        self._interrupt()
        if self._thread is not None:
            self._thread.join(timeout)

    def _run(self) -> None:
        raise NotImplementedError

    def _interrupt(self) -> None:
        pass

    def _wake(self, stored: Stored = None) -> None:
        try:
            self.on_wake(stored)
        except Exception:
            log.exception("the wake-up callback failed")


class _SocketListener(Listener):
    def __init__(self, folder: Path, on_wake: OnWake):
        super().__init__(on_wake)
        self.folder = folder
        self.name = f"{os.getpid()}.{next(_names)}.sock"
        self._sock: socket.socket | None = None
        self._address = ""
        self._folder_fd: int | None = None

    def start(self) -> None:
        self.folder.mkdir(mode=0o700, exist_ok=True)
        _remove_dead_sockets(self.folder)
        self._folder_fd = os.open(self.folder, os.O_RDONLY | os.O_DIRECTORY)
        self._address = socket_address(self.folder, self.name, self._folder_fd)
        (self.folder / self.name).unlink(missing_ok=True)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.bind(self._address)
        self._sock = sock
        super().start()

    def _run(self) -> None:
        sock = self._sock
        assert sock is not None
        self.ready.set()
        self._wake()
        while not self._stop.is_set():
            try:
                stored = parse(sock.recv(PAYLOAD_BYTES + 100))
                sock.setblocking(False)
                try:  # many rings while we were busy are one wake-up
                    while True:
                        more = parse(sock.recv(PAYLOAD_BYTES + 100))
                        stored = None if stored is None or more is None else stored + more
                except BlockingIOError:
                    pass
                sock.setblocking(True)
            except OSError:
                if self._stop.is_set():
                    break
                log.exception("the wake-up socket %s failed; the worker polls instead", self._address)
                return
            if not self._stop.is_set():
                self._wake(stored)

    def _interrupt(self) -> None:
        if self._sock is None:
            return
        try:  # a datagram to ourselves ends the blocking recv
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
                s.sendto(b"", self._address)
        except OSError:
            pass

    def stop(self, timeout: float = 2.0) -> None:
        super().stop(timeout)
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        (self.folder / self.name).unlink(missing_ok=True)
        if self._folder_fd is not None:
            os.close(self._folder_fd)
            self._folder_fd = None


def _remove_dead_sockets(folder: Path) -> None:
    """Sockets left by workers that died (named `<pid>.<n>.sock`): nobody reads them any more."""
    for entry in folder.glob("*.sock"):
        pid = entry.name.split(".", 1)[0]
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            entry.unlink(missing_ok=True)
        except PermissionError:
            pass  # alive, another user's


class _PostgresListener(Listener):
    """LISTEN on a dedicated autocommit psycopg connection; reconnects with a growing pause."""

    IDLE_CHECK_SECONDS = 30.0  # a quiet connection is checked this often (a silent network loss)
    WAIT_SECONDS = 0.5  # how long one wait for notifications lasts before the stop flag is read

    def __init__(self, engine: Engine, on_wake: OnWake):
        super().__init__(on_wake)
        cargs, cparams = engine.dialect.create_connect_args(engine.url)
        cparams.pop("context", None)  # SQLAlchemy's adapters, not a libpq parameter
        self._connect_args = (cargs, cparams)
        self._conn: Any = None

    def _connect(self) -> Any:
        import psycopg

        cargs, cparams = self._connect_args
        conn = psycopg.connect(*cargs, **cparams, autocommit=True, connect_timeout=10)
        conn.execute(f"LISTEN {CHANNEL}")
        return conn

    def _run(self) -> None:
        import time

        pause = 0.5
        while not self._stop.is_set():
            try:
                self._conn = self._connect()
            except Exception as exc:
                log.warning("cannot LISTEN for new work (%s); polling meanwhile, trying again in %.0fs",
                            exc, pause)  # fmt: skip
                self._stop.wait(pause)
                pause = min(pause * 2, 30.0)
                continue
            pause = 0.5
            self.ready.set()
            self._wake()  # anything stored while we were not listening
            quiet_since = time.monotonic()
            try:
                while not self._stop.is_set():
                    for notify in self._conn.notifies(timeout=self.WAIT_SECONDS):
                        self._wake(parse(notify.payload))  # at once: the pool folds a burst into one look
                        quiet_since = time.monotonic()
                    if time.monotonic() - quiet_since > self.IDLE_CHECK_SECONDS:
                        self._conn.execute("SELECT 1")
                        quiet_since = time.monotonic()
            except Exception as exc:
                if not self._stop.is_set():
                    log.warning("lost the LISTEN connection (%s); connecting again", exc)
            finally:
                self.ready.clear()
                try:
                    self._conn.close()
                except Exception:
                    pass
                self._conn = None


def listener(engine: Engine, on_wake: OnWake) -> Listener | None:
    """A started listener for this database, or None where nothing can signal (in-memory SQLite)."""
    if engine.dialect.name == "postgresql":
        found: Listener = _PostgresListener(engine, on_wake)
    else:
        folder = socket_folder(engine) if engine.dialect.name == "sqlite" else None
        if folder is None:
            return None
        found = _SocketListener(folder, on_wake)
    try:
        found.start()
    except OSError as exc:
        log.warning("cannot listen for new work beside the database (%s); polling only", exc)
        return None
    return found
