"""A burst of Zendesk tickets against a fake Zendesk that enforces its Update Ticket limit.

    .venv/bin/python bench/burst.py                      # the published limit: 100 a minute (~2 min a run)
    .venv/bin/python bench/burst.py --window 10          # the same 100, per 10 s (600/min): quick
    .venv/bin/python bench/burst.py --postgres postgresql://postgres@127.0.0.1:5432/postgres

300 tickets (P1..P4 interleaved, 75 each: tests/support/burst.py) arrive as webhooks at once; the real
worker pool (default threads) writes them back to a local fake Zendesk that takes at most `--limit`
updates in any `--window` seconds and answers 429 with Retry-After beyond it (and sends the
RateLimit-* headers, as Zendesk does). Each run is measured twice, side by side: the baseline with
`rate_limits.enabled: false` (writes as fast as Zendesk takes them, 429s retried), then with the limit
configured. Figures: 429s provoked, time from the burst to the last write (the limit's own floor beside
it), and the order: how many P4s were written before the last P1.
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import shutil
import sys
import tempfile
import threading
import time
import uuid
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import create_engine, text  # noqa: E402

from connector.app import create_app  # noqa: E402
from connector.config import Config  # noqa: E402
from connector.runtime import build_runtime  # noqa: E402
from connector.worker import WorkerPool  # noqa: E402
from tests.conformance.drivers import ZendeskDriver  # noqa: E402
from tests.support.burst import PRIORITY_OF, burst_spec, write_policy, zendesk_driver  # noqa: E402


class FakeZendesk:
    """Update Ticket at most `limit` times in any `window` seconds (a sliding log, the strictest reading
    of "per minute"); beyond it 429 with Retry-After (whole seconds, as Zendesk sends it)."""

    def __init__(self, limit: int, window: float):
        self.limit, self.window = limit, window
        self.lock = threading.Lock()
        self.taken: deque[float] = deque()
        self.writes: list[tuple[float, str, str]] = []  # (time, ticket id, priority)
        self.refused = 0
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # no wait for a delayed ACK (bench/worker_support.py)

            def do_PUT(self):
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
                ticket_id = self.path.rsplit("/", 1)[-1].split(".")[0]
                status, headers = fake.take(ticket_id, (body.get("ticket") or {}).get("priority", "low"))
                answer = json.dumps({"ticket": {"id": int(ticket_id)}} if status == 200 else
                                    {"error": "APIRateLimitExceeded"}).encode()  # fmt: skip
                self.send_response(status)
                for name, value in {**headers, "Content-Type": "application/json",
                                    "Content-Length": str(len(answer))}.items():  # fmt: skip
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def take(self, ticket_id: str, priority: str) -> tuple[int, dict[str, str]]:
        now = time.monotonic()
        with self.lock:
            while self.taken and self.taken[0] <= now - self.window:
                self.taken.popleft()
            reset = math.ceil(self.taken[0] + self.window - now) if self.taken else 0
            if len(self.taken) >= self.limit:
                self.refused += 1
                return 429, {"Retry-After": str(max(1, reset)), "ratelimit-limit": str(self.limit),
                             "ratelimit-remaining": "0", "ratelimit-reset": str(max(1, reset))}  # fmt: skip
            self.taken.append(now)
            self.writes.append((now, ticket_id, PRIORITY_OF.get(priority, "P4")))
            left = self.limit - len(self.taken)
            return 200, {"ratelimit-limit": str(self.limit), "ratelimit-remaining": str(left),
                         "ratelimit-reset": str(math.ceil(self.taken[0] + self.window - now))}  # fmt: skip

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def run(database: str, tickets: int, limit: int, window: float, limited: bool, threads: int | None) -> dict:
    fake = FakeZendesk(limit, window)
    folder = Path(tempfile.mkdtemp(prefix="escalator-burst-"))
    rate_limits = (
        {
            "platforms": {
                "zendesk": {
                    "account": [{"requests": limit, "seconds": window}],
                    "ticket": [{"requests": 30, "seconds": 600}],
                }
            }
        }  # fmt: skip
        if limited
        else {"enabled": False}
    )
    worker = {"backoff_initial_seconds": 2, "backoff_max_seconds": 900}
    if threads is not None:
        worker["threads"] = threads
    config = Config.model_validate(
        {
            "database": database,
            "policy": str(write_policy(folder)),
            "dry_run": False,
            "worker": worker,
            "platforms": {"zendesk": {**ZendeskDriver.settings, "url": fake.url}},
            "rate_limits": rate_limits,
        }
    )
    rt = build_runtime(config)
    driver = zendesk_driver(rt)
    http = create_app(rt).test_client()
    pool = WorkerPool(rt)
    try:
        started = time.monotonic()
        for n in range(tickets):
            delivery = driver.created(burst_spec(n), rt.clock())
            answer = http.post("/webhooks/zendesk", data=delivery.body, headers=delivery.headers)
            assert answer.status_code == 202, answer.get_data(as_text=True)
        accepted = time.monotonic() - started
        pool.start()
        deadline = started + 30 * window * math.ceil(tickets / limit) + 120
        while len(fake.writes) < tickets and time.monotonic() < deadline:
            time.sleep(0.05)
        pool.request_stop()
        pool.wait()
    finally:
        fake.stop()
        rt.close()
        shutil.rmtree(folder, ignore_errors=True)
    order = [p for _, _, p in fake.writes]
    last_p1 = max((i for i, p in enumerate(order) if p == "P1"), default=-1)
    return {
        "written": len(fake.writes),
        "refused": fake.refused,
        "accepted_s": accepted,
        "last_write_s": (fake.writes[-1][0] - started) if fake.writes else float("nan"),
        "p4_before_last_p1": sum(1 for p in order[:last_p1] if p == "P4"),
        "p1_all_before_p4": last_p1 < min((i for i, p in enumerate(order) if p == "P4"), default=len(order)),
    }


def fresh_postgres(url: str) -> tuple[str, callable]:
    name = f"escalator_burst_{uuid.uuid4().hex[:8]}"
    admin = create_engine(
        url.replace("postgresql://", "postgresql+psycopg://", 1), isolation_level="AUTOCOMMIT"
    )
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))

    def drop() -> None:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()

    return url.rsplit("/", 1)[0] + f"/{name}", drop


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tickets", type=int, default=300)
    parser.add_argument("--limit", type=int, default=100, help="updates the fake takes per window (100)")
    parser.add_argument("--window", type=float, default=60.0, help="the fake's window in seconds (60)")
    parser.add_argument("--threads", type=int, default=None, help="worker threads (default: the config's)")
    parser.add_argument("--postgres", metavar="URL", help="also run on a fresh database of this server")
    parser.add_argument("--only", choices=("baseline", "limited"), help="run one side only")
    args = parser.parse_args()
    floor = args.window * (math.ceil(args.tickets / args.limit) - 1)
    print(f"burst: {args.tickets} Zendesk tickets (P1..P4, {args.tickets // 4} each) against a fake taking "
          f"{args.limit} updates per {args.window:g} s ({args.limit * 60 / args.window:g}/min); "
          f"the limit's floor for the last write: {floor:g} s")  # fmt: skip
    backends = [("SQLite", None)] + ([("PostgreSQL", args.postgres)] if args.postgres else [])
    sides = [s for s in (("baseline (limiter off)", False), ("limiter on", True)) if
             args.only is None or (args.only == "limited") == s[1]]  # fmt: skip
    head = f"{'backend':<11} {'run':<23} {'written':>7} {'429s':>5} {'last write':>11}"
    print(f"{head} {'P4s before last P1':>19}")
    for backend, pg in backends:
        for label, limited in sides:
            if pg is None:
                folder = tempfile.mkdtemp(prefix="escalator-burst-db-")
                database = f"sqlite:///{folder}/burst.db"
                drop = functools.partial(shutil.rmtree, folder, ignore_errors=True)
            else:
                database, drop = fresh_postgres(pg)
            try:
                r = run(database, args.tickets, args.limit, args.window, limited, args.threads)
            finally:
                if drop is not None:
                    drop()
            order = f"{r['p4_before_last_p1']:>19}" + ("" if r["p1_all_before_p4"] else "  (P1s not first)")
            cells = f"{r['written']:>7} {r['refused']:>5} {r['last_write_s']:>9.1f} s"
            print(f"{backend:<11} {label:<23} {cells} {order}")
            sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
