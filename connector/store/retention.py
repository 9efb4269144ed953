"""How long the inbox keeps finished deliveries (`inbox.retention_days`): `escalator replay` reads
their bodies, and their delivery ids answer late redeliveries as duplicates until then. Until they go,
their bodies are kept compressed (tables.DeliveryBody). The worker's scheduler runs `tidy` hourly."""

from __future__ import annotations

import weakref
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Engine, LargeBinary, delete, func, select, type_coerce, update

from connector.store import ratewindows
from connector.store.db import writing
from connector.store.inbox import DONE, FAILED, IGNORED
from connector.store.tables import DeliveryBody, inbox

_BATCH = 1000
_FINISHED = (DONE, IGNORED, FAILED)
_RAW_BODY = type_coerce(inbox.c.body, LargeBinary)  # the stored bytes, compressed or not


@dataclass(frozen=True)
class Tidied:
    pruned: int  # finished deliveries past the retention, gone
    compressed: int  # finished deliveries whose bodies were compressed
    windows: int  # idle rate-limit windows dropped


def tidy(engine: Engine, *, now: datetime, retention_days: float, longest_window: float) -> Tidied:
    """The hourly housekeeping the worker's scheduler runs: prune what is past the retention, compress
    what finished since the last run, and drop rate-limit windows no write touched for a while."""
    pruned = prune_inbox(engine, before=now - timedelta(days=retention_days))
    compressed = compress_bodies(engine)
    windows = ratewindows.prune(engine, now=now, longest_window=longest_window)
    return Tidied(pruned, compressed, windows)


def prune_inbox(engine: Engine, *, before: datetime) -> int:
    """Delete finished deliveries (done, ignored, failed) that finished before `before`, in batches so
    the webhooks' writer lock is never held long. Pending and leased rows are never touched."""
    total = 0
    old = select(inbox.c.id).where(inbox.c.status.in_(_FINISHED), inbox.c.finished_at < before).limit(_BATCH)
    while True:
        with writing(engine) as conn:
            ids = list(conn.execute(old).scalars())
            if ids:
                conn.execute(delete(inbox).where(inbox.c.id.in_(ids)))
        total += len(ids)
        if len(ids) < _BATCH:
            return total


# Per database: the inbox id below which every body was looked at (finished ones compressed), so each
# run reads only the rows stored since, not the whole retention period.
_looked_through: weakref.WeakKeyDictionary[Engine, int] = weakref.WeakKeyDictionary()


def compress_bodies(engine: Engine, *, batch: int = 500) -> int:
    """Compress the bodies of finished deliveries still stored as received; returns how many.

    The CPU work happens outside any transaction; each batch is then written in one short one, and a
    body that changed meanwhile (erased by `audit forget`) is left for the next run."""
    after = _looked_through.get(engine, 0)
    resume: int | None = None  # the first row still unfinished: the next run starts there
    total = 0
    page = select(inbox.c.id, inbox.c.status, _RAW_BODY.label("raw")).order_by(inbox.c.id).limit(batch)
    while True:
        with engine.connect() as conn:
            rows = conn.execute(page.where(inbox.c.id > after)).all()
        packed = []
        for row in rows:
            if row.status not in _FINISHED:
                resume = row.id if resume is None else resume
                continue
            smaller = DeliveryBody.compressed(bytes(row.raw))
            if smaller is not None:
                packed.append((row.id, len(row.raw), smaller))
        if packed:
            with writing(engine) as conn:
                for row_id, size, smaller in packed:
                    result = conn.execute(
                        update(inbox)
                        .where(inbox.c.id == row_id, func.length(_RAW_BODY) == size)
                        .values(body=smaller)
                    )
                    total += result.rowcount or 0
        if rows:
            after = rows[-1].id
        if len(rows) < batch:
            break
    _looked_through[engine] = (resume - 1) if resume is not None else after
    return total
