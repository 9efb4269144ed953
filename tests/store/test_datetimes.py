"""Datetimes in the store: aware in, aware UTC out, on both databases; on SQLite written as the same
text SQLAlchemy's own DateTime writes, by one function instead of two."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import select
from sqlalchemy.dialects import sqlite
from sqlalchemy.types import TypeDecorator

from connector.store.tables import UTCDateTime, inbox


def _both_ways():
    """(the fused SQLite processor, TypeDecorator's chain of process_bind_param and DateTime's own)."""
    dialect = sqlite.dialect()
    impl = UTCDateTime().dialect_impl(dialect)
    return impl.bind_processor(dialect), TypeDecorator.bind_processor(impl, dialect)


def test_sqlite_text_is_what_sqlalchemy_writes_for_any_aware_datetime():
    fused, chained = _both_ways()
    assert fused is not chained
    edges = [
        datetime(2026, 3, 29, 1, 0, tzinfo=UTC),
        datetime(2026, 3, 29, 3, 0, 0, 1, tzinfo=timezone(timedelta(hours=2))),
        datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
        datetime(1, 1, 2, 0, 0, tzinfo=timezone(timedelta(hours=14))),
        datetime(999, 6, 1, 12, 0, tzinfo=timezone(timedelta(hours=-9, minutes=-30))),
    ]
    rng = random.Random(18)
    drawn = [
        datetime(
            rng.randint(2, 9998),
            rng.randint(1, 12),
            rng.randint(1, 28),
            rng.randint(0, 23),
            rng.randint(0, 59),
            rng.randint(0, 59),
            rng.choice([0, rng.randint(0, 999_999)]),
            tzinfo=timezone(timedelta(minutes=rng.randint(-24 * 60 + 1, 24 * 60 - 1))),
        )  # fmt: skip
        for _ in range(5000)
    ]
    for value in [*edges, *drawn]:
        assert fused(value) == chained(value), value
    assert fused(None) is None


def test_a_naive_datetime_is_refused_the_same_way():
    fused, chained = _both_ways()
    for process in (fused, chained):
        with pytest.raises(ValueError, match="naive datetime"):
            process(datetime(2026, 1, 1, 9, 0))


def test_an_aware_datetime_comes_back_in_utc_on_both_databases(engine):
    at = datetime(2026, 11, 30, 23, 30, 0, 250, tzinfo=timezone(timedelta(hours=-5)))
    row = dict(platform="jira", delivery_id="dt-1", event_type="jira:issue_updated", ticket_id="A",
               ignored=False, body=b"{}", received_at=at, status="pending", attempts=0,
               next_attempt_at=at)  # fmt: skip
    with engine.begin() as conn:
        conn.execute(inbox.insert(), row)
        stored = conn.execute(select(inbox.c.received_at).where(inbox.c.delivery_id == "dt-1")).scalar_one()
    assert stored == at and stored.tzinfo is UTC
    assert stored.hour == 4 and stored.day == 1  # 23:30 at -05:00 is 04:30 UTC the next day
