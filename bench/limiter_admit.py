"""What one rate-limiter grant costs: `Limiter.admit` alone, against the published limits.

    .venv/bin/python bench/limiter_admit.py [--database postgresql://…] [--threads 1,16] [--asks 2000]
                                            [--history 50000]

Each ask is one write on its own ticket (the worker benchmarks' shape): for Jira the account carries
only a block and each ticket has its two windows; for Zendesk the account's window is counted too
(configured here far above the published 100/min, so that every ask is granted and the grant's cost is
what is measured, not the wait). As in the worker, each grant is followed by the write's answer
(`Limiter.observe`) with the platform's count, RateLimit-Remaining falling by one a write. Figures:
grants per second of wall-clock time, and CPU ms per grant and answer (process_time, all threads), on
a fresh database each (SQLite file, and PostgreSQL when given). `--history N` stores N finished
deliveries of the platform first, as the inbox keeps them for `retention` days: a grant reads the
line of deliveries waiting, which must not walk those.
"""

from __future__ import annotations

import argparse
import itertools
import os
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


from connector.config import RateLimitsConfig  # noqa: E402
from connector.ratelimit import Ask, Limiter  # noqa: E402
from connector.store.db import make_engine, migrate  # noqa: E402
from platforms.base import RateLimitHeaders  # noqa: E402

sys.path.insert(1, str(ROOT / "bench"))
from worker_support import scratch_database, store_history  # noqa: E402

CONFIGS = {
    "jira (published)": ("jira", RateLimitsConfig()),
    "zendesk 100000/min": (
        "zendesk",
        RateLimitsConfig.model_validate(
            {
                "platforms": {
                    "zendesk": {
                        "account": [{"requests": 100_000, "seconds": 60}],
                        "ticket": [{"requests": 30, "seconds": 600}],
                    }
                }
            }  # fmt: skip
        ),
    ),
}


def run(url: str, platform: str, config: RateLimitsConfig, threads: int, asks: int,
        history: int = 0) -> tuple[float, float]:  # fmt: skip
    engine = make_engine(url)
    migrate(engine)
    if history:
        store_history(engine, history, [platform], datetime.now(UTC))
    limiter = Limiter(engine, config)
    ids = itertools.count(1)
    per_thread = asks // threads
    barrier = threading.Barrier(threads + 1)
    refused = []
    limit = min((w.requests for w in config.of(platform).account), default=None)

    def worker(k: int) -> None:
        barrier.wait()
        for _ in range(per_thread):
            n = next(ids)
            if limiter.admit(Ask(platform, f"{k}-{n}", n, 40, datetime.now(UTC), 1), datetime.now(UTC)):
                refused.append(n)
            if limit is not None:  # the write's answer: the platform counts one more
                answer = RateLimitHeaders(limit=limit, remaining=max(0, limit - n), reset_seconds=60.0)
                limiter.observe(platform, f"{k}-{n}", answer, datetime.now(UTC))

    pool = [threading.Thread(target=worker, args=(k,)) for k in range(threads)]
    for t in pool:
        t.start()
    barrier.wait()
    wall, cpu = time.perf_counter(), time.process_time()
    for t in pool:
        t.join()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    engine.dispose()
    if refused:
        raise SystemExit(f"{len(refused)} asks were refused: the benchmark measures grants")
    done = per_thread * threads
    return done / wall, cpu * 1000 / done


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--database", help="a PostgreSQL URL to make scratch databases on (also runs SQLite)")
    parser.add_argument("--threads", default="1,16")
    parser.add_argument("--asks", type=int, default=2000)
    parser.add_argument("--history", type=int, default=0, help="finished deliveries in the inbox first")
    args = parser.parse_args()
    print(f"load: {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f}"
          + (f"; {args.history:,} finished deliveries in the inbox" if args.history else ""))  # fmt: skip
    print(f"{'database':<11} {'limits':<20} {'threads':>7} {'grants/s':>9} {'CPU ms each':>12}")
    with tempfile.TemporaryDirectory(prefix="escalator-limiter-") as tmp:
        for kind in ["sqlite"] + (["postgresql"] if args.database else []):
            for label, (platform, config) in CONFIGS.items():
                for threads in (int(t) for t in args.threads.split(",")):
                    with scratch_database(kind, Path(tmp), args.database) as url:
                        rate, cpu = run(url, platform, config, threads, args.asks, args.history)
                    print(f"{kind:<11} {label:<20} {threads:>7} {rate:>9.0f} {cpu:>12.2f}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
