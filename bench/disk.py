"""Disk per processed delivery, table by table, before and after the inbox's retention prunes it.

    .venv/bin/python bench/disk.py                       # SQLite, 2000 deliveries
    .venv/bin/python bench/disk.py --postgres postgresql://postgres@127.0.0.1:5432/postgres

Jira and Zendesk webhooks in turn (new tickets of the conformance story: outage, security, minor,
question) go through the real pipeline with the example policy; the writes are faked with `responses`.
Measured three times in one run: as processed (bodies as received: the baseline), once the hourly
retention job compressed the finished bodies, and once the clock passed `inbox.retention_days` and the
job pruned them. Sizes: SQLite's pages in
use per table with its indexes (dbstat), and the file; PostgreSQL's pg_total_relation_size per table
(heap, indexes and TOAST). Each measurement compacts first (VACUUM; VACUUM FULL on PostgreSQL).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import uuid
from pathlib import Path

import responses

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import create_engine, text  # noqa: E402

from connector.config import Config  # noqa: E402
from connector.store import retention  # noqa: E402
from connector.store.tables import metadata  # noqa: E402
from tests.conformance.drivers import DRIVERS, MINOR, OUTAGE, QUESTION, SECURITY, Spec, post  # noqa: E402
from tests.support.harness import FakeClock, start  # noqa: E402

STORY = (OUTAGE, SECURITY, MINOR, QUESTION)


def table_bytes(engine) -> dict[str, int]:
    """Bytes each table takes with its indexes (and TOAST on PostgreSQL)."""
    with engine.connect() as conn:
        if engine.dialect.name == "sqlite":
            owner = dict(
                conn.execute(
                    text("SELECT name, tbl_name FROM sqlite_master WHERE type IN ('table', 'index')")
                ).all()
            )
            sizes: dict[str, int] = {}
            for name, size in conn.execute(text("SELECT name, SUM(pgsize) FROM dbstat GROUP BY name")).all():
                table = owner.get(name, name.split("_autoindex_")[0].removeprefix("sqlite_autoindex_"))
                sizes[table] = sizes.get(table, 0) + int(size)
            return sizes
        return {
            t.name: int(conn.execute(text("SELECT pg_total_relation_size(:t)"), {"t": t.name}).scalar_one())
            for t in metadata.sorted_tables
        }


def in_use(engine, path: Path | None) -> tuple[int, int]:
    """(bytes in use, bytes on disk): SQLite's pages minus its free list, and its file (+ WAL)."""
    with engine.connect() as conn:
        if engine.dialect.name == "sqlite":
            conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
            page = conn.exec_driver_sql("PRAGMA page_size").scalar_one()
            pages = conn.exec_driver_sql("PRAGMA page_count").scalar_one()
            free = conn.exec_driver_sql("PRAGMA freelist_count").scalar_one()
            on_disk = sum(p.stat().st_size for p in path.parent.glob(path.name + "*") if p.is_file())
            return (pages - free) * page, on_disk
        size = conn.execute(text("SELECT pg_database_size(current_database())")).scalar_one()
        return sum(table_bytes(engine).values()), int(size)


def vacuum(engine) -> None:
    """Compact first, as the steady state does (space freed by one hour's compression or pruning is
    reused by the next hour's deliveries): VACUUM on SQLite, VACUUM FULL on PostgreSQL."""
    full = "VACUUM FULL" if engine.dialect.name == "postgresql" else "VACUUM"
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.exec_driver_sql(full)


def report(
    label: str, engine, path: Path | None, deliveries: int, before: dict[str, int] | None = None
) -> dict:
    vacuum(engine)
    sizes = table_bytes(engine)
    used, on_disk = in_use(engine, path)
    print(f"  {label}: {used / deliveries / 1024:.2f} KB per delivery in tables ({used / 1e6:.1f} MB), "
          f"{on_disk / deliveries / 1024:.2f} KB per delivery on disk ({on_disk / 1e6:.1f} MB)")  # fmt: skip
    for table, size in sorted(sizes.items(), key=lambda kv: -kv[1])[:8]:
        was = f"  (was {before[table] / deliveries:,.0f})" if before and table in before else ""
        print(f"      {table:<26} {size / deliveries:>8,.0f} B/delivery{was}")
    return sizes


def run(database: str, path: Path | None, deliveries: int) -> None:
    config = Config.model_validate(
        {"database": database, "dry_run": False, "rate_limits": {"enabled": False},  # disk, not pacing
         "platforms": {name: dict(driver.settings) for name, driver in DRIVERS.items()}}
    )  # fmt: skip
    clock = FakeClock()
    esc = start(config, clock)
    drivers = [DRIVERS[p](esc.rt.policy.current.platforms[p]) for p in ("jira", "zendesk")]
    try:
        with responses.RequestsMock(assert_all_requests_are_fired=False) as api:
            for driver in drivers:
                driver.register_write(api)
            for n in range(deliveries):
                driver = drivers[n % len(drivers)]
                base = STORY[(n // len(drivers)) % len(STORY)]
                spec = Spec(100 + n, base.title, base.labels, base.priority, base.tier)
                assert post(esc, driver, driver.created(spec, clock())).status_code == 202
                clock.advance(0.05)
                if n % 50 == 49:
                    esc.work()
            esc.work()
        engine = esc.rt.engine
        before = report(f"{deliveries} processed, bodies as received (baseline)", engine, path, deliveries)
        compressed = retention.compress_bodies(engine)
        report(f"{compressed} finished bodies compressed (kept so for inbox.retention_days)", engine, path,
               deliveries, before)  # fmt: skip
        clock.advance(esc.rt.config.inbox.retention_days * 86400 + 3600)
        done = retention.tidy(engine, now=clock(), retention_days=esc.rt.config.inbox.retention_days,
                              longest_window=esc.rt.config.rate_limits.longest_window)  # fmt: skip
        report(f"after the retention job pruned {done.pruned}", engine, path, deliveries, before)
    finally:
        esc.rt.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--deliveries", type=int, default=2000)
    parser.add_argument("--postgres", metavar="URL", help="also measure on a fresh database of this server")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="escalator-disk-"))
    path = folder / "disk.db"
    print("SQLite")
    run(f"sqlite:///{path}", path, args.deliveries)
    if args.postgres:
        name = f"escalator_disk_{uuid.uuid4().hex[:8]}"
        admin = create_engine(args.postgres.replace("postgresql://", "postgresql+psycopg://", 1),
                              isolation_level="AUTOCOMMIT")  # fmt: skip
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        try:
            print("PostgreSQL")
            run(args.postgres.rsplit("/", 1)[0] + f"/{name}", None, args.deliveries)
        finally:
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            admin.dispose()
    print(f"(machine shared with other work; pid {os.getpid()})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
