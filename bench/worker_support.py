"""What the worker benchmarks share: a fake platform that records when each request arrives (and
may answer slowly; it answers what the Jira, Zendesk and ServiceNow clients read), a scratch database
(SQLite file or PostgreSQL database), config files, signed deliveries of one new outage per
ticket (each is a write: a PUT and a JSM-internal note), and a finished history to store first."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import socket
import statistics
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Callable
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SECRET = "bench-secret"

# The settings the worker had before it was woken and before it ran requests side by side.
BASELINE = {"threads": 2, "concurrency": 2, "poll_seconds": 0.25, "listen": False}
DEFAULTS: dict = {}  # today's defaults
NO_PACING = {"rate_limits": {"enabled": False}}  # today's defaults, the rate limiter off

# Answers PUT 204, POST 201, PATCH 200 and GET 200 (the bodies each platform's client reads) after
# `delay` seconds; one line per request: "<arrival> <method> <path>". A Jira comment's properties are
# kept and listed back, so a note in flight across a crash is found where it landed; a request whose
# body never arrived whole (its sender killed between the headers and the body) is not taken, as a
# platform would not. Exits when the benchmark that started it is gone.
FAKE_JIRA = textwrap.dedent(
    """
    import json, os, sys, threading, time
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    port, log_path, parent, delay = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
    log = open(log_path, "a", buffering=1)
    lock = threading.Lock()
    comments = {}  # issue's comment path -> the properties of each comment taken (Jira lists them)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # Headers and body leave in two writes: with Nagle's algorithm on, the body waited for the
        # client's delayed ACK (~40 ms a request that answers a body, and CPU spent on it). A real
        # platform's server answers at once.
        disable_nagle_algorithm = True

        def _answer(self, status, body=b"", answer=None):
            arrived = time.time()
            length = int(self.headers.get("Content-Length") or 0)
            sent = self.rfile.read(length)
            if len(sent) < length:  # the sender died mid-request: a platform takes no half a body
                self.close_connection = True
                return
            with lock:
                log.write(f"{arrived:.6f} {self.command} {self.path}\\n")
                if answer is not None:  # taken now, even if the answer is lost on the way back
                    body = answer(sent)
            if delay:
                time.sleep(delay)
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_PUT(self):
            self._answer(204, b"")

        def do_POST(self):
            def take(sent):
                if self.path.endswith("/comment"):  # a note: its mark is looked for after a crash
                    try:
                        properties = json.loads(sent or b"{}").get("properties") or []
                    except ValueError:
                        properties = []
                    comments.setdefault(self.path, []).append(properties)
                return b'{"id": "1"}'

            self._answer(201, answer=take)

        def do_PATCH(self):
            self._answer(200, b'{"result": {"sys_id": "1"}}')

        def do_GET(self):
            def listing(_sent):
                taken = comments.get(self.path.split("?", 1)[0], [])
                listed = [{"id": str(n), "properties": p} for n, p in enumerate(taken)]
                return json.dumps({"comments": listed, "result": [], "ticket": {"id": 1}}).encode()

            self._answer(200, answer=listing)

        def log_message(self, *args):
            pass

    def orphaned():
        while os.getppid() == parent:
            time.sleep(1)
        os._exit(0)

    threading.Thread(target=orphaned, daemon=True).start()
    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    server.request_queue_size = 256
    server.serve_forever()
    """
)


def old_tree(commit: str, workdir: Path) -> Path:
    """The code at `commit`, unpacked beside the benchmark's files (run with `python -m connector`
    from there, it is the code that runs: the current directory comes first on sys.path)."""
    tree = workdir / f"old-{commit[:10]}"
    tree.mkdir()
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", commit], check=True, capture_output=True)
    subprocess.run(["tar", "-x", "-C", str(tree)], input=archive.stdout, check=True)
    return tree


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, proc: subprocess.Popen, what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"{what} exited at start-up (code {proc.returncode})")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"{what} did not listen on port {port}")


class FakeJira:
    def __init__(self, workdir: Path, delay: float):
        self.port, self.log = free_port(), workdir / f"jira-{uuid.uuid4().hex[:6]}.log"
        self.log.touch()
        self.proc = subprocess.Popen(
            [sys.executable, "-c", FAKE_JIRA, str(self.port), str(self.log), str(os.getpid()), str(delay)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        wait_port(self.port, self.proc, "the fake Jira")

    def arrivals(self) -> list[tuple[float, str, str]]:
        out = []
        for line in self.log.read_text().splitlines():
            at, method, path = line.split(" ", 2)
            out.append((float(at), method, path))
        return out

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


def store_history(engine, finished: int, platforms: list[str], at: datetime) -> None:
    """`finished` delivered rows (status done), the platforms in turn, on 5,000 tickets: what the inbox
    keeps for `retention` days (50,000 is about a week at 300 deliveries an hour)."""
    from connector.store import inbox
    from connector.store.db import writing

    for start in range(0, finished, 5000):
        rows = [
            {**inbox.new_row(platforms[n % len(platforms)], f"history-{n}", "updated", f"h-{n % 5000}",
                             False, b"{}", at),
             "status": inbox.DONE}
            for n in range(start, min(finished, start + 5000))
        ]  # fmt: skip
        with writing(engine) as conn:
            inbox.store_rows(conn.connection.dbapi_connection, conn.dialect, rows)


@contextmanager
def scratch_database(kind: str, workdir: Path, postgres: str | None):
    """A fresh database URL: a SQLite file in `workdir`, or a new PostgreSQL database dropped after."""
    if kind == "sqlite":
        yield f"sqlite:///{workdir / f'escalator-{uuid.uuid4().hex[:6]}.db'}"
        return
    from sqlalchemy import create_engine, text

    assert postgres is not None
    admin_url = postgres.replace("postgresql://", "postgresql+psycopg://", 1)
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    name = f"escalator_bench_{uuid.uuid4().hex[:10]}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield f"{postgres.rsplit('/', 1)[0]}/{name}"
    finally:
        admin.dispose()  # a new connection: the server may have restarted meanwhile (an outside test)
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def write_config(workdir: Path, database: str, jira_port: int, worker: dict, code: Path = ROOT) -> Path:
    """`worker` holds worker settings, and under "rate_limits" that section (today's code only)."""
    path = workdir / f"escalator-{uuid.uuid4().hex[:6]}.yaml"
    worker = dict(worker)
    rate_limits = worker.pop("rate_limits", None)
    settings = {"nice": 0, **worker}  # the load generator shares the cores: no priority games
    path.write_text(
        textwrap.dedent(
            f"""
            database: {database}
            policy: {code / "policies/examples/global-support.yaml"}
            dry_run: false
            worker: {json.dumps(settings)}
            platforms:
              jira:
                url: http://127.0.0.1:{jira_port}
                email: bench@example.test
                api_token: bench-token
                webhook_secret: {SECRET}
                account_id: escalator-bench-bot
            """
        )
        + (f"rate_limits: {json.dumps(rate_limits)}\n" if rate_limits is not None else "")
    )
    return path


_TEMPLATE = json.loads((ROOT / "tests/fixtures/jira/issue_created__outage.json").read_text())


def delivery(n: int, run: str) -> tuple[bytes, dict[str, str], str]:
    """Body, headers and issue key of a new outage on its own ticket (a write request at Jira)."""
    payload = json.loads(json.dumps(_TEMPLATE))
    # Created now: the recorded 2019 instants would start SLA clocks long breached (on older code),
    # and the timer events that follow would be decisions too.
    now = datetime.now(UTC)
    payload["timestamp"] = int(now.timestamp() * 1000)
    payload["issue"]["fields"]["created"] = payload["issue"]["fields"]["updated"] = now.isoformat(
        timespec="milliseconds"
    )
    key = f"B{run}-{n}"
    payload["issue"]["id"], payload["issue"]["key"] = str(1_000_000 + n), key
    body = json.dumps(payload).encode()
    headers = {
        "Content-Type": "application/json",
        "X-Hub-Signature": "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest(),
        "X-Atlassian-Webhook-Identifier": f"bench-{run}-{n}",
    }
    return body, headers, key


def machine_speed() -> str:
    """How fast this machine runs plain Python now, printed beside a CPU figure: one interpreter loop
    (ten million additions to a local), the best of three, in CPU seconds. Machines of the same kind
    have run plain Python 30-60 % apart from one hour to the next: a CPU figure compares only with
    figures taken beside a similar reading (or in one alternating run)."""
    return f"machine: a 10M-addition Python loop takes {loop_seconds():.2f} s of CPU"


def loop_seconds(tries: int = 3) -> float:
    """machine_speed()'s reading: CPU seconds of ten million additions to a local, the best of `tries`."""
    best = float("inf")
    for _ in range(tries):
        started = time.process_time()
        total = 0
        for n in range(10_000_000):
            total += n
        best = min(best, time.process_time() - started)
    return best


def percentile(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def _stat(pid: int) -> list[str]:
    """A process's /proc/PID/stat fields after its name: state, parent pid, … (Linux)."""
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(") ", 1)[1].split()


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process so far (Linux /proc)."""
    fields = _stat(pid)
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _pids(matches: Callable[[int], bool]) -> list[int]:
    """The processes on this machine for which `matches(pid)` holds (one gone meanwhile is skipped)."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if matches(int(entry)):
                    found.append(int(entry))
            except (OSError, IndexError, ValueError):
                continue
    return found


def children(pid: int) -> list[int]:
    """The processes `pid` started, e.g. the worker process of `escalator serve`."""
    return _pids(lambda other: int(_stat(other)[1]) == pid)


def postgres_server_pids() -> list[int]:
    """The PostgreSQL server's processes on this machine (postmaster, backends, WAL writer …)."""
    return _pids(lambda other: Path(f"/proc/{other}/comm").read_text().strip() == "postgres")


def cores_busy() -> tuple[int, int]:
    """This machine's CPU time so far, busy and in all, in clock ticks summed over its cores (Linux
    /proc/stat): two readings give the share of the cores that was busy between them, whoever used it."""
    fields = _cpu_ticks()
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle, iowait
    return sum(fields[:8]) - idle, sum(fields[:8])  # (guest time is counted in user already)


def stolen() -> tuple[int, int]:
    """Ticks the hypervisor gave this machine's cores to other machines (`steal` in /proc/stat), and
    all ticks: two readings give the share of the cores' time between them that was taken away."""
    fields = _cpu_ticks()
    return (fields[7] if len(fields) > 7 else 0), sum(fields[:8])


def _cpu_ticks() -> list[int]:
    with open("/proc/stat") as f:
        return [int(v) for v in f.readline().split()[1:]]


class CpuMeter:
    """CPU seconds spent by named groups of processes between start() and stop(): a process found
    only at stop() counts from zero (a backend that connected meanwhile), one gone by then is lost."""

    def __init__(self, groups: dict[str, Callable[[], list[int]]]):
        self.groups = groups
        self._before: dict[str, dict[int, float]] = {}

    def _read(self) -> dict[str, dict[int, float]]:
        seen: dict[str, dict[int, float]] = {}
        for name, pids in self.groups.items():
            seen[name] = {}
            for pid in pids():
                try:
                    seen[name][pid] = cpu_seconds(pid)
                except (OSError, IndexError, ValueError):
                    continue
        return seen

    def start(self) -> None:
        self._before = self._read()

    def stop(self) -> dict[str, float]:
        after = self._read()
        return {
            name: sum(spent - self._before.get(name, {}).get(pid, 0.0) for pid, spent in pids.items())
            for name, pids in after.items()
        }
