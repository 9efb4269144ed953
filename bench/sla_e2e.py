"""Part 2 of the SLA timer benchmark: how late a due timer's write reaches a fake Jira, with the real
`escalator work` running, and the worker's memory (see sla_timers.py)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sla_support import LATE_AFTER, ROOT, BenchError, insert_timer_rows, percentile, timer_rows
from sqlalchemy import Engine, insert

from connector import audit
from connector.codec import ticket_to_json
from connector.config import EXAMPLE_POLICY
from connector.model import EventKind, Priority, Requester, Ticket, TicketEvent, TicketRef
from connector.store import timers
from connector.store.db import make_engine, writing
from connector.store.tables import tickets as tickets_table
from policies import Policy, load_policy, sla
from policies.sla import SlaState

SETTLE_SECONDS = 10.0  # after the last foreground timer is due, before the worker is stopped
WARNING_KEY = "first_response:sla.warning:75"  # the foreground tickets' first timer

# A Jira that takes every edit and comment; one line per request: "<arrival time.time()> <method> <path>".
# It exits when the benchmark that started it is gone, so a crash never leaves it listening.
FAKE_JIRA = textwrap.dedent(
    """
    import os, re, sys, threading, time
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    port, log_path, parent = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
    log = open(log_path, "a", buffering=1)
    lock = threading.Lock()
    ISSUE = re.compile(r"^/rest/api/2/issue/[^/]+$")
    COMMENT = re.compile(r"^/rest/api/2/issue/[^/]+/comment$")

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as Jira Cloud does
        disable_nagle_algorithm = True  # the body does not wait for a delayed ACK (bench/worker_support.py)

        def _answer(self, pattern, status, body):
            arrived = time.time()
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            with lock:
                log.write(f"{arrived:.6f} {self.command} {self.path}\\n")
            if not pattern.match(self.path):
                status, body = 404, b'{"errorMessages": ["not faked"]}'
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_PUT(self):
            self._answer(ISSUE, 204, b"")

        def do_POST(self):
            self._answer(COMMENT, 201, b'{"id": "1"}')

        def do_GET(self):
            self._answer(re.compile("^$"), 404, b"")

        def log_message(self, *args):
            pass

    def orphaned():
        while os.getppid() == parent:
            time.sleep(1)
        os._exit(0)

    threading.Thread(target=orphaned, daemon=True).start()
    ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()
    """
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_fake_jira(workdir: Path) -> tuple[subprocess.Popen, int, Path]:
    """The fake Jira process, its port, and the file it logs requests to."""
    port, log = free_port(), workdir / "jira-requests.log"
    log.touch()
    proc = subprocess.Popen(
        [sys.executable, "-c", FAKE_JIRA, str(port), str(log), str(os.getpid())],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise BenchError(f"the fake Jira exited at start-up (code {proc.returncode})")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return proc, port, log
        except OSError:
            time.sleep(0.05)
    raise BenchError(f"the fake Jira did not listen on port {port}")


def write_config(workdir: Path, jira_port: int) -> Path:
    config = workdir / "escalator.yaml"
    config.write_text(
        textwrap.dedent(
            f"""
            database: sqlite:///{workdir / "escalator.db"}
            policy: {EXAMPLE_POLICY}
            dry_run: false
            platforms:
              jira:
                url: http://127.0.0.1:{jira_port}
                email: bench@example.test
                api_token: bench-token
                webhook_secret: bench-secret
                account_id: escalator-bench-bot
            """
        )
    )
    return config


class Worker:
    """The real `escalator work` in a subprocess, its log in a file."""

    def __init__(self, workdir: Path, config: Path):
        self.log = workdir / "worker.log"
        self._log_file = self.log.open("wb")
        command = [sys.executable, "-m", "connector", "work", "--config", str(config)]
        # --parent-pid: the worker stops by itself if this benchmark dies without cleaning up.
        command += ["--parent-pid", str(os.getpid())]
        self.proc = subprocess.Popen(command, cwd=ROOT, stdout=self._log_file, stderr=subprocess.STDOUT)

    def wait_started(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while "worker started" not in self.log.read_text(errors="replace"):
            self.check_alive()
            if time.monotonic() > deadline:
                raise BenchError(
                    f"the worker did not log 'worker started' within {timeout:.0f}s{self.tail()}"
                )
            time.sleep(0.1)

    def check_alive(self) -> None:
        if self.proc.poll() is not None:
            raise BenchError(f"the worker exited with code {self.proc.returncode}{self.tail()}")

    def memory_kib(self) -> dict[str, int]:
        """VmRSS and VmHWM (peak RSS) of the worker process, in KiB."""
        values = {}
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            name, _, rest = line.partition(":")
            if name in ("VmRSS", "VmHWM"):
                values[name] = int(rest.split()[0])
        return values

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(40)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self._log_file.close()

    def tail(self, lines: int = 30) -> str:
        text_ = self.log.read_text(errors="replace").splitlines()[-lines:]
        return "\nworker log (last lines):\n" + "\n".join(f"  | {line}" for line in text_)

    def errors(self) -> list[str]:
        return [line for line in self.log.read_text(errors="replace").splitlines() if " ERROR " in line]


def foreground_ticket(policy: Policy, n: int, created_at: datetime) -> Ticket:
    """A P1 outage ticket (Jira "Highest", label outage) with the L2 on-call, created at `created_at`."""
    return Ticket(
        ref=TicketRef("jira", str(200_000 + n), f"BEN-{n}"),
        title=f"benchmark outage {n}",
        platform_priority="Highest",
        labels=frozenset({"outage"}),
        assignee=_l2_assignee(policy, created_at),
        requester=Requester(f"requester-{n}", region="emea"),
        created_at=created_at,
    )


def _l2_assignee(policy: Policy, at: datetime) -> str | None:
    """L2's assignee on Jira; the example policy's L2 follows the sun: the team working at `at`."""
    target = policy.platforms["jira"].tiers["L2"]
    return target.rota.choose(at).team.target.assignee if target.rota is not None else target.assignee


def clocks_of(policy: Policy, ticket: Ticket, now: datetime) -> tuple[SlaState, tuple[sla.Timer, ...]]:
    """The SLA state and timers the pipeline would keep after the ticket's creation event."""
    event = TicketEvent(EventKind.TICKET_CREATED, ticket, occurred_at=now)
    state = sla.advance(policy, SlaState.from_json(None), event, Priority.P1, now)
    return state, sla.timers(policy, state)


def first_timer_offset(policy: Policy) -> tuple[timedelta, int]:
    """How long after a P1 ticket's creation its earliest timer is due, and how many timers it arms."""
    now = datetime.now(UTC)
    created = now - timedelta(minutes=1)
    _, armed = clocks_of(policy, foreground_ticket(policy, 0, created), now)
    if armed[0].key != WARNING_KEY:
        raise BenchError(f"the example policy's first P1 timer is {armed[0].key}, not {WARNING_KEY}")
    return armed[0].due - created, len(armed)


def arm_foreground(
    engine: Engine, policy: Policy, count: int, t0: datetime, rate: float
) -> dict[str, datetime]:
    """Store `count` tickets as the pipeline would and arm their timers; BEN-n's first is due t0 + n/rate.
    Returns ticket key → that due instant."""
    offset, _ = first_timer_offset(policy)
    wanted: dict[str, datetime] = {}
    for start in range(0, count, 100):
        with writing(engine) as conn:
            now = datetime.now(UTC)
            for n in range(start, min(count, start + 100)):
                due = t0 + timedelta(seconds=n / rate)
                ticket = foreground_ticket(policy, n, due - offset)
                state, armed = clocks_of(policy, ticket, now)
                if armed[0].key != WARNING_KEY or abs((armed[0].due - due).total_seconds()) > 1e-3:
                    raise BenchError(
                        f"{ticket.ref.key}: first timer {armed[0].key} due {armed[0].due}, "
                        f"wanted {WARNING_KEY} due {due}"
                    )
                # the row inbox._lease_ticket creates, as tickets.save then fills it
                conn.execute(
                    insert(tickets_table).values(
                        platform="jira",
                        ticket_id=ticket.ref.id,
                        ticket_key=ticket.ref.key,
                        requester_id=ticket.requester.id if ticket.requester else None,
                        tier="L2",
                        priority="P1",
                        priority_pinned=False,
                        updated_at=now,
                        snapshot=ticket_to_json(ticket),
                        sla=state.to_json(),
                    )
                )
                timers.reconcile(conn, "jira", ticket.ref.id, armed, now)
                wanted[ticket.ref.key] = armed[0].due
    return wanted


def first_comment_per_key(log: Path) -> tuple[dict[str, float], Counter]:
    """The arrival time of each ticket's first POST …/comment, and request counts by kind."""
    first: dict[str, float] = {}
    kinds: Counter = Counter()
    for line in log.read_text().splitlines():
        arrived, method, path = line.split(" ", 2)
        parts = path.strip("/").split("/")  # rest api 2 issue KEY [comment]
        kind = f"{method} {'…/comment' if parts[-1] == 'comment' else '…/issue/KEY'}"
        kinds[kind] += 1
        if method == "POST" and parts[-1] == "comment":
            first.setdefault(parts[-2], float(arrived))
    return first, kinds


def end_to_end(args) -> dict:
    """Part 2: run the worker against the fake Jira with --armed timers; prints lateness and memory."""
    policy = load_policy(str(EXAMPLE_POLICY))
    count = int(args.rate * args.window)
    _, per_ticket = first_timer_offset(policy)
    background = max(0, args.armed - count * per_ticket)
    print(
        f"\n2. end to end: `escalator work` (default tick, workers; SQLite), {args.armed:,} armed timers:\n"
        f"   {background:,} background + {count:,} tickets × {per_ticket} timers; the tickets' first timers"
        f" come due at {args.rate:g}/s for {args.window:g}s",
        flush=True,
    )
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        jira, worker, engine = None, None, None
        try:
            jira, port, requests_log = start_fake_jira(workdir)
            worker = Worker(workdir, write_config(workdir, port))
            worker.wait_started()
            time.sleep(1.0)  # the scheduler and worker threads start just after the log line
            memory = {"after start-up (nothing armed)": worker.memory_kib()}
            engine = make_engine(f"sqlite:///{workdir / 'escalator.db'}")

            started = time.perf_counter()
            insert_timer_rows(engine, timer_rows(background, datetime.now(UTC)))
            background_s = time.perf_counter() - started
            lead = 3.0 + count * 0.005  # arming is ~1-2 ms a ticket; the first must not come due before
            t0 = datetime.now(UTC) + timedelta(seconds=lead)
            started = time.perf_counter()
            wanted = arm_foreground(engine, policy, count, t0, args.rate)
            foreground_s = time.perf_counter() - started
            if datetime.now(UTC) >= t0:
                raise BenchError("arming the tickets took longer than the lead before the first was due")
            armed = timers.counts(engine)["armed"]
            worker.check_alive()
            memory[f"after arming {armed:,} timers"] = worker.memory_kib()
            print(
                f"   armed {background:,} background timers in {background_s:.1f}s, {count:,} tickets in "
                f"{foreground_s:.1f}s; first due {(t0 - datetime.now(UTC)).total_seconds():.1f}s later",
                flush=True,
            )

            end = t0 + timedelta(seconds=args.window + SETTLE_SECONDS)
            while datetime.now(UTC) < end:
                worker.check_alive()
                time.sleep(0.5)
            still_armed = timers.counts(engine)["armed"]
            memory[f"at the end ({still_armed:,} armed)"] = worker.memory_kib()
        finally:
            if worker is not None:
                worker.stop()
            if jira is not None:
                jira.terminate()
                jira.wait(10)

        records = list(audit.records(engine))
        db_bytes = sum(p.stat().st_size for p in workdir.glob("escalator.db*"))
        errors = worker.errors()
        engine.dispose()
        arrivals, kinds = first_comment_per_key(requests_log)
    return report_end_to_end(wanted, arrivals, kinds, records, memory, still_armed, db_bytes, errors)


def report_end_to_end(wanted, arrivals, kinds, records, memory, still_armed, db_bytes, errors) -> dict:
    """Print part 2's tables; returns the due → request lateness of every warning written."""
    fired_at: dict[str, datetime] = {}
    for record in records:
        if record.get("sla") and record["trigger"]["kind"] == EventKind.SLA_WARNING.value:
            fired_at.setdefault(record["ticket"]["key"], datetime.fromisoformat(record["sla"]["fired_at"]))
    total, tick, worker = [], [], []
    for key, due in wanted.items():
        if key not in arrivals:
            continue
        total.append(arrivals[key] - due.timestamp())
        if key in fired_at:
            tick.append((fired_at[key] - due).total_seconds())
            worker.append(arrivals[key] - fired_at[key].timestamp())
    print(
        f"\n   warnings written: {len(total):,} / {len(wanted):,} expected; Jira got "
        + ", ".join(f"{n:,} {kind}" for kind, n in sorted(kinds.items()))
    )
    print(f"   {'lateness (s)':<34} {'p50':>7} {'p90':>7} {'p99':>7} {'max':>7}")
    for name, values in (
        ("due → write request at Jira", total),
        ("  due → fired (the tick)", tick),
        ("  fired → request (inbox + worker)", worker),
    ):
        if values:
            cells = " ".join(f"{percentile(values, p):7.3f}" for p in (50, 90, 99, 100))
            print(f"   {name:<34} {cells}")
    outcomes = Counter(r["outcome"] for r in records)
    late = sum(1 for r in records if (r.get("sla") or {}).get("late"))
    print(
        f"   audit: {len(records):,} records, outcomes "
        + ", ".join(f"{o} {n:,}" for o, n in sorted(outcomes.items()))
        + f"; sla.late (fired > {LATE_AFTER.total_seconds():.0f}s after due): {late:,}"
    )
    if errors:
        print(f"   worker logged {len(errors)} error(s), first: {errors[0]}")
    print(f"\n   worker process memory {'VmRSS':>10}")
    for when, kib in memory.items():
        print(f"     {when:<32} {kib['VmRSS'] / 1024:8.1f} MiB")
    print(f"     {'peak (VmHWM)':<32} {list(memory.values())[-1]['VmHWM'] / 1024:8.1f} MiB")
    print(
        f"   database files (where the {still_armed:,} still-armed timers live): {db_bytes / 2**20:.1f} MiB"
    )
    return {"total": total, "expected": len(wanted)}
