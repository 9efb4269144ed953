"""The reconcile job's watermarks: per platform, the instant up to which changes were compared."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection, delete, insert, select, update

from connector.store.tables import reconcile_watermarks as table


def load(conn: Connection, platform: str) -> datetime | None:
    return conn.execute(select(table.c.watermark).where(table.c.platform == platform)).scalar_one_or_none()


def save(conn: Connection, platform: str, watermark: datetime, now: datetime) -> None:
    """Set the platform's watermark (inside the caller's transaction)."""
    changed = conn.execute(
        update(table).where(table.c.platform == platform).values(watermark=watermark, updated_at=now)
    )
    if changed.rowcount == 0:
        conn.execute(insert(table).values(platform=platform, watermark=watermark, updated_at=now))


def forget(conn: Connection, platform: str) -> None:
    conn.execute(delete(table).where(table.c.platform == platform))
