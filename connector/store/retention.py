"""How long the inbox keeps finished deliveries (`inbox.retention_days`): `escalator replay` reads
their bodies, and their delivery ids answer late redeliveries as duplicates until then."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Engine, delete, select

from connector.store.db import writing
from connector.store.inbox import DONE, FAILED, IGNORED
from connector.store.tables import inbox

_BATCH = 1000


def prune_inbox(engine: Engine, *, before: datetime) -> int:
    """Delete finished deliveries (done, ignored, failed) that finished before `before`, in batches so
    the webhooks' writer lock is never held long. Pending and leased rows are never touched."""
    total = 0
    old = (
        select(inbox.c.id)
        .where(inbox.c.status.in_((DONE, IGNORED, FAILED)), inbox.c.finished_at < before)
        .limit(_BATCH)
    )
    while True:
        with writing(engine) as conn:
            ids = list(conn.execute(old).scalars())
            if ids:
                conn.execute(delete(inbox).where(inbox.c.id.in_(ids)))
        total += len(ids)
        if len(ids) < _BATCH:
            return total
