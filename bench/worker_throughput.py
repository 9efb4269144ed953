"""Decisions per second against a platform that takes 200 ms to answer each request.

    .venv/bin/python bench/worker_throughput.py [--delay 0.2] [--deliveries 600] [--database postgresql://…]

N deliveries, each a new outage on its own ticket (a decision that writes: Jira's PUT and its
JSM-internal note, two requests one after the other), are stored first (through the receiver of
the code under test, `serve --no-worker`); then the real
`escalator work` starts and the clock runs from the first request reaching the fake Jira to the
last one answered. Each configuration runs on a fresh database: the worker's settings before this
change (2 at a time, poll 0.25 s, no wake-up; fewer deliveries, it is slow), today's defaults, and
optionally the code at an old commit. Also the worker process's CPU per decision (all of it:
claim, judgement, HTTP client, audit, transactions).
"""

from __future__ import annotations

import argparse
import http.client
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from sqlalchemy import func, select
from worker_support import (
    BASELINE,
    DEFAULTS,
    NO_PACING,
    ROOT,
    FakeJira,
    cpu_seconds,
    delivery,
    free_port,
    old_tree,
    scratch_database,
    wait_port,
    write_config,
)

sys.path.insert(0, str(ROOT))  # the project, as the checkout has it

from connector.store.db import make_engine  # noqa: E402
from connector.store.tables import inbox  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--delay", type=float, default=0.2, help="seconds the fake Jira takes per request")
    parser.add_argument("--deliveries", type=int, default=600, help="for the default settings")
    parser.add_argument("--baseline-deliveries", type=int, default=60, help="for the 2-at-a-time settings")
    parser.add_argument("--database", help="a PostgreSQL URL to make scratch databases on (also runs SQLite)")
    parser.add_argument("--skip-sqlite", action="store_true")
    parser.add_argument("--old-code", metavar="COMMIT", help="also run the worker as it was at COMMIT")
    parser.add_argument(
        "--also",
        action="append",
        default=[],
        metavar="KEY=VALUE,…",
        help="also run these worker settings, e.g. threads=8 (repeatable)",
    )
    args = parser.parse_args()
    kinds = ([] if args.skip_sqlite else ["sqlite"]) + (["postgresql"] if args.database else [])
    print(f"decisions/s against a fake Jira answering each request in {args.delay * 1000:.0f} ms "
          "(2 requests per decision, one after the other)")  # fmt: skip
    print(f"{'database':<11} {'worker':<28} {'decisions':>9} {'seconds':>8} {'per s':>7} {'CPU ms each':>12}")
    with tempfile.TemporaryDirectory(prefix="escalator-bench-") as tmp:
        workdir = Path(tmp)
        jira = FakeJira(workdir, delay=args.delay)
        variants = [
            ("before (2 at a time)", BASELINE, ROOT, args.baseline_deliveries),
            ("now (defaults)", DEFAULTS, ROOT, args.deliveries),
            ("now, rate limiter off", NO_PACING, ROOT, args.deliveries),
        ]
        for extra in args.also:
            pairs = (p.split("=") for p in extra.split(","))
            settings = {k: float(v) if "." in v else int(v) for k, v in pairs}
            variants.append((extra, settings, ROOT, args.deliveries))
        if args.old_code:
            tree = old_tree(args.old_code, workdir)
            variants.insert(0, (f"code at {args.old_code[:10]}", {}, tree, args.baseline_deliveries))
        try:
            for kind in kinds:
                for label, worker, code, n in variants:
                    with scratch_database(kind, workdir, args.database) as database:
                        r = run(workdir, jira, database, worker, code, n)
                    print(f"{kind:<11} {label:<28} {r['decided']:>9} {r['seconds']:>8.1f} {r['rate']:>7.1f} "
                          f"{r['cpu_ms']:>12.1f}", flush=True)  # fmt: skip
        finally:
            jira.stop()
    return 0


def run(workdir: Path, jira: FakeJira, database: str, worker: dict, code: Path, n: int) -> dict:
    config_path = write_config(workdir, database, jira.port, worker, code)
    run_id = f"t{time.monotonic_ns() % 10**8}"
    keys = _store(workdir, config_path, code, n, run_id)
    engine = make_engine(database)  # only read here: the code under test owns (and migrates) the schema
    before = len(jira.arrivals())
    log = (workdir / f"work-{run_id}.log").open("wb")
    work = subprocess.Popen(
        [sys.executable, "-m", "connector", "work", "--config", str(config_path),
         "--parent-pid", str(os.getpid())],
        cwd=code, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60 + n * 0.5
        cpu_start = None  # when the first request arrives: start-up (imports, migrations) left out
        while _open(engine) and time.monotonic() < deadline:
            if work.poll() is not None:
                raise SystemExit(f"escalator work exited (code {work.returncode}); see {log.name}")
            if cpu_start is None and len(jira.arrivals()) > before:
                cpu_start = cpu_seconds(work.pid)
            time.sleep(0.05)
        cpu = cpu_seconds(work.pid) - (cpu_start or 0.0)
    finally:
        work.terminate()
        try:
            work.wait(30)
        except subprocess.TimeoutExpired:
            work.kill()
        log.close()
    left = _open(engine)
    engine.dispose()
    arrivals = [a for a in jira.arrivals()[before:] if _key(a[2]) in keys]
    first, last = arrivals[0][0], arrivals[-1][0] + jira_delay(jira)
    decided = n - left
    return {"decided": decided, "seconds": last - first, "rate": decided / (last - first),
            "cpu_ms": cpu * 1000 / max(1, decided)}  # fmt: skip


def _key(path: str) -> str:
    """The issue key in /rest/api/2/issue/KEY or /rest/api/2/issue/KEY/comment."""
    return path.split("/rest/api/2/issue/", 1)[-1].split("/", 1)[0]


def jira_delay(jira: FakeJira) -> float:
    return float(jira.proc.args[-1])


def _store(workdir: Path, config: Path, code: Path, n: int, run_id: str) -> set[str]:
    """N deliveries stored through the webhook receiver of the code under test (`serve --no-worker`)."""
    port = free_port()
    log = (workdir / f"serve-{run_id}.log").open("wb")
    serve = subprocess.Popen(
        [sys.executable, "-m", "connector", "serve", "--no-worker", "--config", str(config),
         "--port", str(port)],
        cwd=code, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    keys = set()
    try:
        wait_port(port, serve, "escalator serve --no-worker")
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        for i in range(n):
            body, headers, key = delivery(i, run_id)
            conn.request("POST", "/webhooks/jira", body=body, headers=headers)
            answer = conn.getresponse()
            answer.read()
            if answer.status != 202:
                raise SystemExit(f"escalator answered {answer.status} to a delivery")
            keys.add(key)
        conn.close()
    finally:
        serve.terminate()
        serve.wait(30)
        log.close()
    return keys


def _open(engine) -> int:
    with engine.connect() as conn:
        return conn.execute(
            select(func.count()).where(inbox.c.status.in_(("pending", "processing")))
        ).scalar_one()


if __name__ == "__main__":
    sys.exit(main())
