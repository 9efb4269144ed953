"""What the SLA timer benchmark's two parts share (bench/sla_timers.py runs them). Importing it
puts the project root on sys.path, so the bench's modules can import the project."""

from __future__ import annotations

import math
import random
import sys
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import Engine, insert  # noqa: E402

from connector.model import EventKind  # noqa: E402
from connector.store.db import writing  # noqa: E402
from connector.store.tables import timers as timers_table  # noqa: E402

LATE_AFTER = timedelta(seconds=30)  # SchedulerConfig.late_after_seconds' default


class BenchError(Exception):
    """The benchmark cannot go on (a subprocess died, a database is not a scratch one, …)."""


def timer_rows(count: int, now: datetime, *, prefix: str = "bg") -> Iterator[dict]:
    """`count` timer rows, one ticket each, due 1-30 days after `now` in random order (so the index
    is not filled in due order)."""
    rng = random.Random(count)
    for n in range(count):
        due_at = now + timedelta(days=1, seconds=rng.uniform(0, 29 * 86400))
        yield dict(
            platform="jira",
            ticket_id=f"{prefix}-{n}",
            key="resolution:sla.breached:100",
            kind=EventKind.SLA_BREACHED.value,
            metric="resolution",
            percent=100,
            target_seconds=14400.0,
            calendar="always",
            due_at=due_at,
            armed_at=now,
        )


def insert_timer_rows(engine: Engine, rows: Iterator[dict], chunk: int = 10_000) -> int:
    """Bulk insert (executemany), in transactions of `chunk` rows so a running worker is not held up."""
    total = 0
    while True:
        batch = [row for _, row in zip(range(chunk), rows, strict=False)]
        if not batch:
            return total
        with writing(engine) as conn:
            conn.execute(insert(timers_table), batch)
        total += len(batch)


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile of `values` (0 < p ≤ 100)."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


def ms(seconds: float) -> str:
    """Seconds as milliseconds, right-aligned in 9 characters."""
    return f"{seconds * 1000:9.2f}"
