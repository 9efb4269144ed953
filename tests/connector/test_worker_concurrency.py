"""Many deliveries in flight at once against a slow platform, each ticket's still one at a time and in
order, none handled twice; and a worker whose platform hangs still stops within its bound, also as
an orphaned `escalator work --parent-pid`."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from collections import Counter, defaultdict
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from sqlalchemy import func, insert, select

from connector import audit, cpu
from connector.app import create_app
from connector.config import Config
from connector.runtime import build_runtime
from connector.store import inbox
from connector.store.db import writing
from connector.store.tables import inbox as inbox_table
from connector.worker import WorkerPool
from tests.support.fixtures import fixture_bytes
from tests.support.harness import BOT, SECRET, sign
from tests.support.marks import ONE_AT_A_TIME

pytestmark = ONE_AT_A_TIME

TICKETS, ROUNDS = 12, 4


class SlowJira:
    """Answers every write after `delay` seconds; records, per issue, how many of its requests were
    in flight at once, and overall."""

    def __init__(self, delay: float):
        self.delay = delay
        self.lock = threading.Lock()
        self.in_flight: Counter[str] = Counter()
        self.most_per_issue = 0
        self.most_overall = 0
        self.requests: list[tuple[str, str, str]] = []  # (issue, method, body)
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # no wait for a delayed ACK (bench/worker_support.py)

            def _answer(self, status: int, body: bytes) -> None:
                sent = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
                issue = self.path.split("/rest/api/2/issue/", 1)[-1].split("/", 1)[0]
                with fake.lock:
                    fake.in_flight[issue] += 1
                    fake.most_per_issue = max(fake.most_per_issue, fake.in_flight[issue])
                    fake.most_overall = max(fake.most_overall, sum(fake.in_flight.values()))
                    fake.requests.append((issue, self.command, sent))
                time.sleep(fake.delay)
                with fake.lock:
                    fake.in_flight[issue] -= 1
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_PUT(self) -> None:  # noqa: N802 (http.server's name)
                self._answer(204, b"")

            def do_POST(self) -> None:  # noqa: N802
                self._answer(201, b'{"id": "1"}')

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _config(db_url: str, jira_url: str, **worker) -> Config:
    return Config.model_validate(
        {
            "database": db_url,
            "dry_run": False,
            "worker": {"poll_seconds": 0.2, **worker},
            "platforms": {
                "jira": {"url": jira_url, "email": "bot@acme.test", "api_token": "token",
                         "webhook_secret": SECRET, "account_id": BOT},
            },
        }
    )  # fmt: skip


def _body(ticket: int, round_: int) -> bytes:
    """Round 0 creates the outage (a write); later rounds change its labels (a write each: the
    policy's label for the new label set), each with a later `updated` so each is its own change."""
    payload = json.loads(fixture_bytes("jira", "issue_created__outage"))
    payload["issue"]["id"], payload["issue"]["key"] = str(70_000 + ticket), f"ORD-{ticket}"
    payload["issue"]["fields"]["updated"] = f"2019-02-15T22:{10 + round_:02d}:20.000-0800"
    payload["issue"]["fields"]["labels"] = [*payload["issue"]["fields"].get("labels", []), f"r{round_}"]
    return json.dumps(payload).encode()


def test_deliveries_run_side_by_side_but_each_ticket_in_order_and_once(db_url):
    jira = SlowJira(delay=0.1)
    rt = build_runtime(_config(db_url, jira.url, concurrency=16, threads=2))
    web = create_app(rt).test_client()
    sent: dict[str, list[str]] = defaultdict(list)  # ticket id → delivery ids, in the order sent
    for round_ in range(ROUNDS):
        for ticket in range(TICKETS):
            body, delivery = _body(ticket, round_), f"ord-{ticket}-{round_}-{uuid.uuid4().hex[:6]}"
            answer = web.post("/webhooks/jira", data=body, headers={
                "X-Hub-Signature": sign(body), "X-Atlassian-Webhook-Identifier": delivery})  # fmt: skip
            assert answer.status_code == 202
            sent[str(70_000 + ticket)].append(delivery)
    pool = WorkerPool(rt)
    pool.start()
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with rt.engine.connect() as conn:
                open_ = conn.execute(
                    select(func.count()).where(inbox_table.c.status.in_(("pending", "processing")))
                ).scalar_one()
            if not open_:
                break
            time.sleep(0.05)
        assert not open_, f"{open_} deliveries still open after 60 s"
    finally:
        assert pool.close(10)
    with rt.engine.connect() as conn:  # each ticket's deliveries in the order they were accepted
        rows = conn.execute(select(inbox_table.c.ticket_id, inbox_table.c.delivery_id)
                            .order_by(inbox_table.c.id)).all()  # fmt: skip
    accepted: dict[str, list[str]] = defaultdict(list)
    for ticket, delivery in rows:
        accepted[ticket].append(delivery)
    assert len(rows) == TICKETS * ROUNDS and sorted(accepted) == sorted(sent)
    handled: dict[str, list[str]] = defaultdict(list)  # … and in the order they were decided
    for record in audit.records(rt.engine):
        handled[record["ticket"]["id"]].append(record["trigger"]["delivery_id"])
    # Once each, and each ticket's in the order they arrived, one at a time at the platform.
    assert handled == accepted
    assert jira.most_per_issue == 1
    # And side by side across tickets: many requests were waiting on the slow platform at once.
    assert jira.most_overall >= 8
    puts = Counter(issue for issue, method, _ in jira.requests if method == "PUT")
    assert len(puts) == TICKETS
    jira.stop()
    rt.close()


# --- claiming only what the CPU can take -------------------------------------------------------------


def _stored(rt, count: int) -> None:
    """`count` deliveries of their own tickets, due now (their bodies are never read here)."""
    now = datetime.now(UTC)
    rows = [
        inbox.new_row("jira", f"cap-{n}-{uuid.uuid4().hex[:6]}", "jira:issue_updated", str(80_000 + n),
                      False, b"{}", now)
        for n in range(count)
    ]  # fmt: skip
    with writing(rt.engine) as conn:
        conn.execute(insert(inbox_table), rows)


def _drained(rt, pool: WorkerPool, handled: list, count: int) -> None:
    pool.start()
    try:
        deadline = time.monotonic() + 30
        while len(handled) < count and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        assert pool.close(10)
    assert len(handled) == count


@pytest.mark.parametrize("threads", [1, 2])
def test_deliveries_that_want_the_cpu_stay_in_the_inbox_beyond_twice_the_turns(db_url, monkeypatch, threads):
    """A platform answering at once, the CPU the bottleneck: claiming up to `concurrency` would only
    make each claimed delivery wait in memory, sharing the turns round-robin with all of them (each
    then took in-flight / rate). At most twice the turns are claimed and wanting the CPU at once; the
    rest wait in the inbox, in its order."""
    rt = build_runtime(_config(db_url, "http://127.0.0.1:9", concurrency=16, threads=threads))
    pool = WorkerPool(rt, listen=False)
    handled, wanting = [], []

    def compute(_rt, item) -> None:  # holds its turn the whole time, as judging and recording do
        wanting.append(pool._in_flight - pool.turns.away)
        time.sleep(0.01)
        handled.append(item.id)

    monkeypatch.setattr("connector.worker.process", compute)
    _stored(rt, 40)
    _drained(rt, pool, handled, 40)
    assert max(wanting) <= 2 * threads
    assert max(wanting) >= threads  # and the turns were kept busy: one was ready when another freed
    rt.close()


def test_deliveries_waiting_for_their_platform_do_not_count_against_the_cpu(db_url, monkeypatch):
    """The same worker with a slow platform: the deliveries in a platform request give their turn
    away, so the dispatcher claims on, up to `concurrency` in flight, woken as each steps away."""
    rt = build_runtime(_config(db_url, "http://127.0.0.1:9", concurrency=16, threads=1))
    pool = WorkerPool(rt, listen=False)
    handled, in_flight = [], []

    def wait_for_platform(_rt, item) -> None:
        with cpu.waiting():
            in_flight.append(pool._in_flight)
            time.sleep(0.3)
        handled.append(item.id)

    monkeypatch.setattr("connector.worker.process", wait_for_platform)
    _stored(rt, 32)
    started = time.monotonic()
    _drained(rt, pool, handled, 32)
    assert max(in_flight) >= 12  # not 2: waiting for a platform needs no turn
    # Side by side: 32 waits of 0.3 s took far less than one after the other (9.6 s), with the poll
    # (0.2 s) not the reason (a claim of 2 per poll would take 3.2 s).
    assert time.monotonic() - started < 3.0
    rt.close()


# --- stopping ----------------------------------------------------------------------------------------

HANGING_JIRA = textwrap.dedent(
    """
    import socket, sys, time
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(64)
    print(s.getsockname()[1], flush=True)
    conns = []
    while True:
        c, _ = s.accept()   # takes the request, never answers
        conns.append(c)
        print("request", flush=True)
    """
)


def test_a_worker_stuck_in_a_platform_request_stops_within_its_bound(sqlite_url):
    hang = subprocess.Popen([sys.executable, "-c", HANGING_JIRA], stdout=subprocess.PIPE, text=True)
    try:
        port = int(hang.stdout.readline())
        config = _config(sqlite_url, f"http://127.0.0.1:{port}", shutdown_seconds=1)
        rt = build_runtime(config.model_copy(update={"platforms": _slow(config, 60)}))
        body = _body(1, 0)
        create_app(rt).test_client().post("/webhooks/jira", data=body, headers={
            "X-Hub-Signature": sign(body), "X-Atlassian-Webhook-Identifier": "stuck-1"})  # fmt: skip
        pool = WorkerPool(rt)
        pool.start()
        assert hang.stdout.readline().strip() == "request"  # the worker now waits up to 60 s for it
        started = time.monotonic()
        assert pool.close(rt.config.worker.shutdown_seconds) is False  # one delivery was cut off
        assert time.monotonic() - started < 3
        rt.close()
    finally:
        hang.kill()
        hang.wait()
        hang.stdout.close()
    # The thread left behind ends once its request fails: not later, inside another test's fakes.
    for thread in pool._threads:
        thread.join(10)
    assert not any(thread.is_alive() for thread in pool._threads)


def _slow(config: Config, timeout: float):
    jira = config.platforms.jira.model_copy(update={"timeout": timeout})
    return config.platforms.model_copy(update={"jira": jira})


ORPHAN_PARENT = textwrap.dedent(
    """
    import os, subprocess, sys, time
    worker = subprocess.Popen([sys.executable, "-m", "connector", "work", "--config", sys.argv[1],
                               "--parent-pid", str(os.getpid())])
    print(worker.pid, flush=True)
    time.sleep(600)
    """
)


@pytest.mark.skipif(sys.platform != "linux", reason="reads /proc to see the orphan")
def test_an_orphaned_worker_stuck_in_a_request_exits_soon_after_its_parent_dies(tmp_path):
    hang = subprocess.Popen([sys.executable, "-c", HANGING_JIRA], stdout=subprocess.PIPE, text=True)
    parent = None
    try:
        port = int(hang.stdout.readline())
        db = f"sqlite:///{tmp_path / 'escalator.db'}"
        config_file = tmp_path / "escalator.yaml"
        config_file.write_text(textwrap.dedent(f"""
            database: {db}
            dry_run: false
            worker: {{shutdown_seconds: 2, nice: 0}}
            platforms:
              jira: {{url: "http://127.0.0.1:{port}", email: bot@acme.test, api_token: token,
                      webhook_secret: {SECRET}, account_id: {BOT}, timeout: 120}}
            """))  # fmt: skip
        rt = build_runtime(_config(db, f"http://127.0.0.1:{port}"))
        body = _body(2, 0)
        create_app(rt).test_client().post("/webhooks/jira", data=body, headers={
            "X-Hub-Signature": sign(body), "X-Atlassian-Webhook-Identifier": "orphan-1"})  # fmt: skip
        rt.close()
        parent = subprocess.Popen([sys.executable, "-c", ORPHAN_PARENT, str(config_file)],
                                  stdout=subprocess.PIPE, text=True, cwd=os.getcwd())  # fmt: skip
        worker_pid = int(parent.stdout.readline())
        assert hang.stdout.readline().strip() == "request"  # stuck: the fake never answers (120 s)
        parent.send_signal(signal.SIGKILL)
        parent.wait()
        started = time.monotonic()
        while _alive(worker_pid) and time.monotonic() - started < 30:
            time.sleep(0.1)
        gone_after = time.monotonic() - started
        assert not _alive(worker_pid), "the orphaned worker is still running 30 s after its parent died"
        assert gone_after < 1.5 + 2 + 3  # the parent check (1 s), shutdown_seconds (2), start-up slack
    finally:
        if parent is not None:
            if parent.poll() is None:
                parent.kill()
            parent.stdout.close()
        hang.kill()
        hang.wait()
        hang.stdout.close()


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ", 1)[1][0] != "Z"
    except FileNotFoundError:
        return False
