"""Part 1 of the SLA timer benchmark: what one tick costs as the armed timers grow (see sla_timers.py)."""

from __future__ import annotations

import statistics
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sla_support import LATE_AFTER, BenchError, insert_timer_rows, ms, timer_rows
from sqlalchemy import Engine, delete, func, select, text, update

from connector.store import timers
from connector.store.db import make_engine, migrate, writing
from connector.store.tables import inbox as inbox_table
from connector.store.tables import timers as timers_table

DUE_COUNTS = (0, 10, 100, 500)
REPETITIONS = 20  # timed fire_due calls per size and due count, in each of two passes
WARM_UP = 3  # untimed calls first: connection, statement cache, pages
FIRE_LIMIT = 500  # SchedulerConfig.batch's default


@contextmanager
def scratch_engine(url: str | None, tmp: Path, name: str) -> Iterator[Engine]:
    """A migrated, empty database: a new SQLite file in `tmp`, or the given scratch database (emptied
    of the benchmark's rows on the way out)."""
    engine = make_engine(url or f"sqlite:///{tmp / name}")
    try:
        migrate(engine)
        if url:
            with engine.connect() as conn:
                used = {
                    table.name: conn.execute(select(func.count()).select_from(table)).scalar()
                    for table in (timers_table, inbox_table)
                }
            if any(used.values()):
                raise BenchError(
                    f"{_safe_url(url)} is not a scratch database ({used}); the benchmark deletes every "
                    "timer and inbox row it has. Create an empty one for it."
                )
        yield engine
    finally:
        if url:
            _empty(engine)
        engine.dispose()


def _empty(engine: Engine) -> None:
    with writing(engine) as conn:
        conn.execute(delete(inbox_table))
        conn.execute(delete(timers_table))


def _safe_url(url: str) -> str:
    return url.split("@", 1)[-1] if "@" in url else url


def fill(engine: Engine, armed: int, now: datetime) -> list[tuple[int, datetime]]:
    """`armed` timer rows, all due days ahead; returns (id, due_at) of the rows, in id order."""
    _empty(engine)
    insert_timer_rows(engine, timer_rows(armed, now, prefix="t"))
    if engine.dialect.name == "postgresql":
        with writing(engine) as conn:  # autovacuum would have analysed a table this size by now
            conn.execute(text("ANALYZE timers"))
    else:  # start from a checkpointed WAL, not with the bulk insert's pages still in it
        with writing(engine) as conn:
            conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    with engine.connect() as conn:
        return [(row.id, row.due_at) for row in conn.execute(
            select(timers_table.c.id, timers_table.c.due_at).order_by(timers_table.c.id)
        )]  # fmt: skip


def time_fire_due(engine: Engine, rows: list[tuple[int, datetime]], due: int, now: datetime) -> list[float]:
    """Seconds taken by each of REPETITIONS fire_due calls while `due` of `rows` are due at `now`."""
    chosen = rows[:: max(1, len(rows) // due)][:due] if due else []  # spread over the table
    with writing(engine) as conn:
        for n, (id_, _) in enumerate(chosen):
            conn.execute(
                update(timers_table)
                .where(timers_table.c.id == id_)
                .values(due_at=now - timedelta(seconds=1 + n * 0.001))
            )
    took: list[float] = []
    try:
        for call in range(WARM_UP + REPETITIONS):
            started = time.perf_counter()
            fired = timers.fire_due(engine, now=now, limit=FIRE_LIMIT, late_after=LATE_AFTER)
            elapsed = time.perf_counter() - started
            if len(fired) != min(due, FIRE_LIMIT):
                raise BenchError(f"fire_due fired {len(fired)} timers, expected {min(due, FIRE_LIMIT)}")
            if call >= WARM_UP:
                took.append(elapsed)
            with writing(engine) as conn:  # un-fire them, and forget the inbox rows the firing made
                ids = [id_ for id_, _ in chosen]
                conn.execute(update(timers_table).where(timers_table.c.id.in_(ids)).values(fired_at=None))
                conn.execute(delete(inbox_table))
    finally:
        with writing(engine) as conn:  # due days ahead again
            for id_, due_at in chosen:
                conn.execute(update(timers_table).where(timers_table.c.id == id_).values(due_at=due_at))
    return took


def tick_cost(args) -> dict[tuple[int, int], tuple[float, float]]:
    """Part 1: (armed, due) → (median, max) seconds of one fire_due call; prints the table."""
    sizes = (max(1, args.armed // 100), args.armed)
    dues = [due for due in DUE_COUNTS if due <= sizes[0]]
    backend = f"PostgreSQL {_safe_url(args.database)}" if args.database else "SQLite (temp file)"
    print(
        f"\n1. tick cost: one fire_due(limit={FIRE_LIMIT}) call, {backend}, "
        f"median / max of {2 * REPETITIONS} (ms)"
    )
    samples: dict[tuple[int, int], list[float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for n, armed in enumerate((*sizes, *reversed(sizes))):
            with scratch_engine(args.database, Path(tmp), f"tick-{n}.db") as engine:
                now = datetime.now(UTC)
                rows = fill(engine, armed, now)
                for due in dues:
                    samples.setdefault((armed, due), []).extend(time_fire_due(engine, rows, due, now))
    results = {key: (statistics.median(took), max(took)) for key, took in samples.items()}
    small, big = sizes
    print(
        f"  {'due now':>8} | {f'{small:,} armed':>19} | {f'{big:,} armed':>19} |"
        f" {'median':>9} | {'per due':>9}"
    )
    print(
        f"  {'':>8} | {'median':>9} {'max':>9} | {'median':>9} {'max':>9} | {'big/small':>9} | {'timer':>9}"
    )
    for due in dues:
        (m1, x1), (m2, x2) = results[small, due], results[big, due]
        per = f"{m2 / due * 1e6:6.0f} µs" if due else "-"
        print(f"  {due:>8} | {ms(m1)} {ms(x1)} | {ms(m2)} {ms(x2)} | {m2 / m1:>9.2f} | {per:>9}")
    return results
