"""Worker CPU per decision, end to end: claim, read, normalise, judge, send, audit and store.

    .venv/bin/python bench/worker_cpu.py [--deliveries 2000] [--database sqlite|postgres|URL]
                                         [--profile] [--shape mixed|outage] [--limiter]
                                         [--pool [--threads 8] [--concurrency 64]]
                                         [--history 50000] [--old-code COMMIT [--rounds 5] [--together]]

Fills the inbox with recorded webhook bodies of all three platforms (tests/fixtures; per ticket a
creation and three updates, as bench/replay.py does), then drains it with the real worker path
(`connector.worker.drain`: claim a batch, `pipeline.process` each) against a fake Jira, Zendesk
and ServiceNow that answer at once from another process, so only Escalator's own CPU is counted
(time.process_time over the drain, divided by the decisions made). `--database postgres` uses a
scratch database on ESCALATOR_TEST_POSTGRES_URL. A first round on other tickets warms the caches.

`--shape outage` sends instead what bench/worker_latency.py sends: each delivery a new P1 outage
on its own Jira ticket (a `PUT`, a JSM-internal note marked in flight first, new SLA timers), the
heaviest common decision; `--limiter` keeps the published rate limits on (Jira's per-issue windows
take a transaction per write). `--pool` drains with the real worker pool, sized by `--threads` and
`--concurrency` (the config's defaults otherwise): against a fake answering at once it shows what
handing the interpreter lock between many threads costs, beside the one-by-one figure (the CPU of
the benchmark's own thread, which counts the rows left every 0.1 s, is left out). User and
system CPU are printed apart (the lock's hand-overs are system time), and the transactions the
records and the notes' in-flight marks took: deliveries finishing together share one
(connector/store/group_commit.py). `--history N` stores N
finished deliveries of the three platforms first, as a desk's inbox holds them for `retention`
days (50,000 is a week at 300 deliveries an hour): a statement that walks them shows here.

`--old-code COMMIT` runs the same benchmark as separate processes, the code at COMMIT and this code
in turn, `--rounds` times each, and prints the median and the best of each and their ratio: on a
machine whose speed drifts, figures from one alternating run are the ones that compare.

Where the time goes is measured by wrapping the steps in place (thread CPU time around each):
claim, the ticket's memory read, normalise, judge (the pure decision), render, HTTP client (the
`send` of each platform client), the note's in-flight mark, and the audit record with the
ticket's memory, timers and inbox status (`_record`, one transaction). "other" is the rest. The
wrappers cost a little themselves: the total is measured without them first, then the split.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # the project, as the checkout has it

from sqlalchemy import func, select  # noqa: E402

from connector import pipeline  # noqa: E402
from connector.config import Config  # noqa: E402
from connector.runtime import build_runtime  # noqa: E402
from connector.store import inbox  # noqa: E402
from connector.store.db import make_engine, migrate, writing  # noqa: E402
from connector.store.inbox import new_row, store_rows  # noqa: E402
from connector.store.tables import audit_log  # noqa: E402
from connector.worker import WorkerPool, drain  # noqa: E402

sys.path.insert(1, str(ROOT / "bench"))
from replay import SOURCES, START, payload  # noqa: E402
from worker_support import FakeJira, machine_speed, old_tree, scratch_database, store_history  # noqa: E402
from worker_support import delivery as outage  # noqa: E402


@contextmanager
def database(which: str, tmp: str) -> Iterator[str]:
    """`--database`: sqlite, postgres (ESCALATOR_TEST_POSTGRES_URL), or a postgresql:// URL."""
    if which == "sqlite":
        with scratch_database("sqlite", Path(tmp), None) as url:
            yield url
        return
    admin_url = os.environ.get("ESCALATOR_TEST_POSTGRES_URL") if which == "postgres" else which
    if not admin_url:
        raise SystemExit("--database postgres needs ESCALATOR_TEST_POSTGRES_URL (postgresql://USER@HOST/db)")
    with scratch_database("postgresql", Path(tmp), admin_url) as url:
        yield url.replace("postgresql://", "postgresql+psycopg://", 1)


def config_for(url: str, fake: str, limiter: bool = False) -> Config:
    platforms = {
        "jira": {"url": fake, "email": "bot@acme.test", "api_token": "t", "account_id": "escalator-bot"},
        "zendesk": {"url": fake, "email": "bot@acme.test", "api_token": "t"},
        "servicenow": {"url": fake, "user": "escalator", "password": "p"},
    }
    # The rate limiter off: with Zendesk's published 100 writes a minute most of the drain would be
    # deferred, not decided (bench/burst.py measures the limiter).
    settings: dict[str, Any] = {"database": url, "dry_run": False, "platforms": platforms}
    if "rate_limits" in Config.model_fields and not limiter:  # (older versions have none)
        settings["rate_limits"] = {"enabled": False}
    return Config.model_validate(settings)


def fill(engine, deliveries: int, first_ticket: int, shape: str = "mixed") -> None:
    if shape == "outage":
        fill_outages(engine, deliveries, first_ticket)
        return
    rows = []
    platforms = list(SOURCES)
    for n in range(first_ticket, first_ticket + deliveries // 4):
        platform = platforms[n % 3]
        created, updated = SOURCES[platform]
        for step in range(4):
            body, event, ticket_id = payload(platform, created if step == 0 else updated, n)
            rows.append(new_row(platform, f"{ticket_id}:{step}", event, ticket_id, False,
                                json.dumps(body).encode(), START))  # fmt: skip
    with writing(engine) as conn:
        store_rows(conn.connection.dbapi_connection, conn.dialect, rows)


def fill_outages(engine, deliveries: int, first_ticket: int) -> None:
    """Each delivery a new P1 outage on its own Jira ticket, as bench/worker_latency.py sends them."""
    rows = []
    for n in range(first_ticket, first_ticket + deliveries):
        body, headers, _key = outage(n, "cpu")
        rows.append(new_row("jira", headers["X-Atlassian-Webhook-Identifier"], "jira:issue_created",
                            str(1_000_000 + n), False, body, START))  # fmt: skip
    with writing(engine) as conn:
        store_rows(conn.connection.dbapi_connection, conn.dialect, rows)


class Split:
    """CPU time per step, measured by wrapping the steps where the pipeline calls them."""

    def __init__(self) -> None:
        self.seconds: Counter[str] = Counter()
        self._undo: list[Callable[[], None]] = []
        self._local = threading.local()  # .depth: how deep in measured steps this thread is
        self._lock = threading.Lock()

    def wrap(self, owner: Any, name: str, label: str) -> None:
        original = getattr(owner, name)

        def timed(*args: Any, **kwargs: Any) -> Any:
            if getattr(self._local, "depth", 0):  # inside another measured step: counted there
                return original(*args, **kwargs)
            self._local.depth = 1
            started = time.thread_time()
            try:
                return original(*args, **kwargs)
            finally:
                spent = time.thread_time() - started
                self._local.depth = 0
                with self._lock:
                    self.seconds[label] += spent

        setattr(owner, name, timed)
        self._undo.append(lambda: setattr(owner, name, original))

    def undo(self) -> None:
        for step in reversed(self._undo):
            step()
        self._undo.clear()


def instrument(rt) -> Split:
    split = Split()
    split.wrap(inbox, "claim", "claim")
    split.wrap(pipeline.tickets, "load", "read ticket memory")
    split.wrap(pipeline, "judge", "judge (normalised event → plan)")
    split.wrap(pipeline, "_record", "audit record + store (one transaction)")
    split.wrap(inbox, "record_in_flight", "note in-flight mark")
    for installation in rt.installations.values():
        split.wrap(installation.provider, "normalise", "normalise payload")
        client = installation.client()
        split.wrap(client, "render", "render requests")
        split.wrap(client, "send", "HTTP client (send)")
    return split


def decisions(engine) -> int:
    with engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(audit_log)).scalar_one()


def outcome_counts(engine) -> Counter[str]:
    with engine.connect() as conn:
        query = select(audit_log.c.outcome, func.count()).group_by(audit_log.c.outcome)
        return Counter(dict(conn.execute(query).all()))


@dataclass(frozen=True)
class Drain:
    """How the deliveries are made and drained (the command line's choices)."""

    shape: str = "mixed"
    pool: bool = False
    threads: int | None = None
    concurrency: int | None = None


def measure(rt, deliveries: int, first_ticket: int, how: Drain) -> tuple[float, int, float, float]:
    """CPU seconds to drain `deliveries` new deliveries, the decisions recorded, and the user and
    system seconds of it. `how.pool`: with the real worker (many deliveries at once,
    connector/worker.py's WorkerPool) instead of one by one."""
    fill(rt.engine, deliveries, first_ticket, how.shape)
    before = decisions(rt.engine)
    started, times = time.process_time(), os.times()
    watching = (0.0, 0.0)  # this thread's CPU watching the pool drain: the benchmark's, not the worker's
    if how.pool:
        workers = WorkerPool(rt, listen=False, threads=how.threads, concurrency=how.concurrency)
        workers.start()
        watch = resource.getrusage(resource.RUSAGE_THREAD)
        while open_rows(rt.engine):  # a count over the rows left: ~1 ms of CPU with a thousand left
            time.sleep(0.1)
        watched = resource.getrusage(resource.RUSAGE_THREAD)
        watching = (watched.ru_utime - watch.ru_utime, watched.ru_stime - watch.ru_stime)
        workers.close(10)
    else:
        drain(rt)
    after = os.times()
    spent = time.process_time() - started - sum(watching)
    user, system = after.user - times.user - watching[0], after.system - times.system - watching[1]
    return spent, decisions(rt.engine) - before, user, system


def open_rows(engine) -> int:
    with engine.connect() as conn:
        pending = inbox.inbox.c.status.in_((inbox.PENDING, inbox.PROCESSING))
        return conn.execute(select(func.count()).where(pending)).scalar_one()


def run(args, url: str, fake: str):
    """Both drains (and the profile, if asked) against the fake platform at `fake`."""
    engine = make_engine(url)
    migrate(engine)
    rt = build_runtime(config_for(url, fake, args.limiter), engine=engine)
    how = Drain(args.shape, args.pool, args.threads, args.concurrency)
    profiler = None
    try:
        if args.history:
            store_history(engine, args.history, list(SOURCES), START)
        measure(rt, 200, 900_000, how)  # warm-up: imports, sessions, caches, prepared statements
        committed = rt.records.transactions  # the group commit's, for the records and in-flight marks
        total = measure(rt, args.deliveries, 0, how)
        transactions = rt.records.transactions - committed
        split = instrument(rt)
        split_total, split_made, _, _ = measure(rt, args.deliveries, 100_000, how)
        split.undo()
        if args.profile:
            from pyinstrument import Profiler

            profiler = Profiler(interval=0.0005)
            profiler.start()
            measure(rt, args.deliveries, 200_000, dataclasses.replace(how, pool=False))
            profiler.stop()
        outcomes = outcome_counts(engine)
    finally:
        rt.close()
    return outcomes, total, transactions, split, split_total, split_made, profiler


def alternate(args: argparse.Namespace) -> None:
    """`--old-code`: this benchmark run as separate processes, the code at the commit and this code in
    turn, `--rounds` times each, and the end-to-end figures side by side. This machine's speed drifts
    by 10-30 % from one minute to the next: only rounds run alternately compare, and the median and
    the best of each are printed with their ratio. `--together` runs each round's two at the same
    time instead, one a core, so that whatever slows the machine (another tenant's use of the shared
    caches, which a plain Python loop does not feel) slows both alike; their ratio per round is
    printed too."""
    own = [arg for arg in _without(sys.argv[1:], ("--old-code", "--rounds")) if arg != "--together"]
    figures: dict[str, list[float]] = {"old": [], "new": []}
    with tempfile.TemporaryDirectory() as tmp:
        trees = {"old": old_tree(args.old_code, Path(tmp)), "new": ROOT}
        for n in range(args.rounds):
            groups = [list(trees.items())] if args.together else [[item] for item in trees.items()]
            for group in groups:
                running = {
                    which: subprocess.Popen([sys.executable, "bench/worker_cpu.py", *own], cwd=tree,
                                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                    for which, tree in group
                }  # fmt: skip
                for which, process in running.items():
                    out, err = process.communicate()
                    found = re.search(r"end to end: ([0-9.]+) ms", out)
                    if process.returncode or found is None:
                        raise SystemExit(f"no figure from the {which} code:\n{out}{err}")
                    figures[which].append(float(found[1]))
                    print(f"round {n + 1}: {which} code {figures[which][-1]:.2f} ms", flush=True)
    old, new = figures["old"], figures["new"]
    how = "rounds side by side" if args.together else "alternating rounds"
    print(f"worker CPU per decision, {args.rounds} {how} ({' '.join(own)}); {machine_speed()}:")
    for label, seen in ((f"code at {args.old_code[:10]}", old), ("this code", new)):
        print(f"  {label + ':':<20} median {statistics.median(seen):.2f} ms, best {min(seen):.2f}")
    print(f"  ratio: {statistics.median(new) / statistics.median(old):.2f} (median), "
          f"{min(new) / min(old):.2f} (best)")  # fmt: skip
    if args.together:
        ratios = [b / a for a, b in zip(old, new, strict=True)]
        each = ", ".join(f"{r:.2f}" for r in ratios)
        print(f"  ratio per round: {each}; median {statistics.median(ratios):.2f}")


def _without(argv: list[str], options: tuple[str, ...]) -> list[str]:
    """`argv` without `options` and their values (`--option value` or `--option=value`)."""
    kept, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg in options:
            skip = True
        elif not arg.startswith(tuple(f"{option}=" for option in options)):
            kept.append(arg)
    return kept


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--deliveries", type=int, default=2000)
    parser.add_argument("--database", default="sqlite", help="sqlite, postgres, or a postgresql:// URL")
    parser.add_argument(
        "--pool",
        action="store_true",
        help="drain with the real worker pool (many at once) instead of one by one",
    )
    parser.add_argument("--delay", type=float, default=0.0, help="seconds the fake platform takes to answer")
    parser.add_argument("--profile", action="store_true", help="print a pyinstrument profile of one drain")
    parser.add_argument(
        "--shape", choices=("mixed", "outage"), default="mixed",
        help="mixed: recorded bodies of 3 platforms; outage: each a new P1 outage on Jira",
    )  # fmt: skip
    parser.add_argument("--limiter", action="store_true", help="keep the published rate limits on")
    parser.add_argument("--history", type=int, default=0, help="finished deliveries in the inbox first")
    parser.add_argument("--threads", type=int, help="with --pool: worker.threads (default: the config's)")
    parser.add_argument("--concurrency", type=int, help="with --pool: worker.concurrency (the config's)")
    parser.add_argument("--old-code", metavar="COMMIT", help="alternate with the code at COMMIT")
    parser.add_argument("--rounds", type=int, default=5, help="with --old-code: alternating rounds of each")
    parser.add_argument(
        "--together", action="store_true", help="with --old-code: each round's two runs at the same time"
    )
    args = parser.parse_args()
    if args.old_code:
        alternate(args)
        return
    with tempfile.TemporaryDirectory() as tmp, database(args.database, tmp) as url:
        platforms = FakeJira(Path(tmp), delay=args.delay)  # answers as Jira, Zendesk and ServiceNow do
        try:
            fake = f"http://127.0.0.1:{platforms.port}"
            outcomes, measured, transactions, split, split_total, split_made, profiler = run(args, url, fake)
            total, made, user, system = measured
        finally:
            platforms.stop()
    backend = "PostgreSQL" if url.startswith("postgresql") else "SQLite"
    how = "one by one"
    if args.pool:
        sizes = [f"{k} {v}" for k, v in (("threads", args.threads), ("concurrency", args.concurrency)) if v]
        how = "the worker pool" + (f" ({', '.join(sizes)})" if sizes else "")
    answering = f"in {args.delay * 1000:.0f} ms" if args.delay else "at once"
    shape = "3 platforms" if args.shape == "mixed" else "new P1 outages on Jira"
    limiter = ", rate limiter on" if args.limiter else ""
    history = f", {args.history:,} finished deliveries in the inbox" if args.history else ""
    print(f"worker CPU per decision, {backend}, {made} decisions, {how} "
          f"({shape}, fake answering {answering}{limiter}{history})")  # fmt: skip
    print(f"  end to end: {total / made * 1000:.2f} ms "
          f"(user {user / made * 1000:.2f}, system {system / made * 1000:.2f})")  # fmt: skip
    print(f"  writes after deciding: {transactions} transactions for {made} decisions")
    wrapped = split_total / split_made * 1000
    print(f"  where it goes (a second drain of {split_made}, wrapped: {wrapped:.2f} ms):")
    measured = sum(split.seconds.values())
    for label, seconds in split.seconds.most_common():
        print(f"    {label:<42} {seconds / split_made * 1000:6.3f} ms")
    other = (split_total - measured) / split_made * 1000
    print(f"    {'other (worker loop, pipeline glue, logs)':<42} {other:6.3f} ms")
    print(f"  outcomes: {dict(outcomes)}")
    print(f"  {machine_speed()}")
    if profiler is not None:
        print(profiler.output_text(unicode=False, color=False))


if __name__ == "__main__":
    main()
