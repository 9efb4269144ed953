"""What an admin reads in the log when the database goes away for a moment: one warning line for each
thing it interrupted, not a traceback; anything else keeps its traceback."""

from __future__ import annotations

import io
import logging
import time

import pytest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from connector.logs import LostConnectionReset, TextFormatter
from connector.store.db import log_round_failed, make_engine, unavailable_because


def _capture(name: str) -> tuple[logging.Logger, io.StringIO, logging.Handler]:
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(TextFormatter())
    handler.addFilter(LostConnectionReset())
    logger = logging.getLogger(name)
    logger.addHandler(handler)
    return logger, out, handler


def _raised(exc: BaseException) -> BaseException:
    try:
        raise exc
    except BaseException as caught:
        return caught


def test_a_pool_reset_that_met_a_lost_connection_is_one_warning_line():
    logger, out, handler = _capture("sqlalchemy.pool.impl.QueuePool")
    try:
        lost = _raised(OperationalError("ROLLBACK", None, Exception("the connection is lost")))
        logger.error("Exception during reset or similar", exc_info=lost)
        other = _raised(ValueError("a bug"))
        logger.error("Exception during reset or similar", exc_info=other)
    finally:
        logger.removeHandler(handler)
    first, *rest = out.getvalue().splitlines()
    assert " WARNING " in first and "a pooled database connection was lost" in first
    assert "the connection is lost" in first
    assert rest[0].split(" ", 3)[2] == "ERROR" and "Traceback (most recent call last):" in rest
    assert rest[-1] == "ValueError: a bug"


def test_a_round_that_failed_for_want_of_the_database_says_so_in_one_line_else_shows_its_traceback():
    logger, out, handler = _capture("escalator.test-round")
    engine = make_engine("sqlite://")
    try:
        away = _raised(OperationalError("SELECT 1", None, Exception("server closed the connection\nmore")))
        log_round_failed(logger, engine, away, "claiming work failed; retrying in %.1fs", 1.0)
        bug = _raised(KeyError("ticket"))
        log_round_failed(logger, engine, bug, "SLA tick failed; trying again next tick")
    finally:
        logger.removeHandler(handler)
        engine.dispose()
    lines = out.getvalue().splitlines()
    assert " WARNING " in lines[0]
    assert "claiming work failed; retrying in 1.0s (the database is away: " in lines[0]
    assert "server closed the connection" in lines[0] and "more" not in lines[0]
    assert " ERROR " in lines[1] and "SLA tick failed" in lines[1]
    assert "Traceback (most recent call last):" in lines and lines[-1] == "KeyError: 'ticket'"


def test_the_same_round_failing_again_and_again_is_one_line_a_minute_that_counts_the_rest(monkeypatch):
    # A worker's claim tries again every second: a disk full for an hour was 3,600 warning lines.
    from connector.store import db

    monkeypatch.setattr(db, "_REPEATS", db._Repeats(window=0.2))
    logger, out, handler = _capture("escalator.test-repeats")
    engine, other = make_engine("sqlite://"), make_engine("sqlite://")
    try:
        away = _raised(OperationalError("SELECT 1", None, Exception("server closed the connection")))
        for _ in range(5):
            log_round_failed(logger, engine, away, "claiming work failed; retrying in %.1fs", 1.0)
        log_round_failed(logger, other, away, "claiming work failed; retrying in %.1fs", 1.0)  # its own
        log_round_failed(logger, engine, away, "SLA tick failed; trying again next tick")  # another round
        time.sleep(0.25)
        log_round_failed(logger, engine, away, "claiming work failed; retrying in %.1fs", 1.0)
    finally:
        logger.removeHandler(handler)
        engine.dispose()
        other.dispose()
    lines = out.getvalue().splitlines()
    assert len(lines) == 4 and all(" WARNING " in line for line in lines)
    assert "claiming work failed" in lines[0] and "more like it" not in lines[0]
    assert "SLA tick failed" in lines[2]
    assert lines[3].endswith("; 4 more like it since the last such line")


def test_a_full_disk_is_named_as_such_on_either_database():
    import sqlite3

    import psycopg.errors

    sqlite_full = sqlite3.connect(":memory:")
    sqlite_full.execute("CREATE TABLE t (x)")
    sqlite_full.execute(f"PRAGMA max_page_count = {sqlite_full.execute('PRAGMA page_count').fetchone()[0]}")
    with pytest.raises(sqlite3.OperationalError) as sqlite_error:
        sqlite_full.executemany("INSERT INTO t VALUES (?)", [("x" * 1000,)] * 100)
    postgres_error = psycopg.errors.DiskFull("could not extend file: No space left on device")
    for cause in (sqlite_error.value, postgres_error):
        wrapped = OperationalError("INSERT", None, cause)
        assert unavailable_because(wrapped).startswith("the database's disk is full, free space there: ")
    gone = OperationalError("SELECT 1", None, Exception("server closed the connection"))
    assert (
        unavailable_because(gone) == "the database is away: (builtins.Exception) server closed the connection"
    )


@pytest.mark.postgres
def test_a_pooled_connection_the_server_cut_is_given_back_with_a_warning_line(migrated_postgres_url):
    """The real pool, the real server: a connection whose backend was terminated mid-transaction is
    given back; its reset fails, and the log says so in one line."""
    _, out, handler = _capture("sqlalchemy.pool")
    engine, other = make_engine(migrated_postgres_url), make_engine(migrated_postgres_url)
    try:
        raw = engine.raw_connection()  # as the store's hot paths hold one
        cursor = raw.cursor()
        cursor.execute("SELECT pg_backend_pid()")  # a transaction open: giving it back rolls it back
        (pid,) = cursor.fetchone()
        with other.connect() as admin:
            assert admin.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid}).scalar_one()
        raw.close()  # back to the pool, whose reset meets the lost connection
        with engine.connect() as again:  # a new connection serves
            assert again.execute(text("SELECT 1")).scalar_one() == 1
    finally:
        logging.getLogger("sqlalchemy.pool").removeHandler(handler)
        engine.dispose()
        other.dispose()
    text_out = out.getvalue()
    assert "a pooled database connection was lost" in text_out, text_out
    assert "Traceback" not in text_out


@pytest.mark.parametrize(
    ("exc", "line"),
    [
        (OperationalError("SELECT 1", None, Exception("server closed\nthe connection")), None),
        (TimeoutError(), "TimeoutError"),  # says nothing: its type's name, not an IndexError in a handler
        (OSError("  \n"), "OSError"),
        (ValueError("one line"), "one line"),
    ],
)
def test_an_error_on_one_line_says_what_it_says_or_what_it_is(exc, line):
    from connector.errors import first_line

    found = first_line(exc)
    assert "\n" not in found and found
    assert found == line if line is not None else found.endswith("server closed")


def test_a_round_that_failed_with_a_silent_error_still_logs_one_line():
    logger, out, handler = _capture("escalator.test-silent")
    engine = make_engine("sqlite://")
    try:
        log_round_failed(logger, engine, _raised(OperationalError("", None, Exception())), "SLA tick failed")
    finally:
        logger.removeHandler(handler)
        engine.dispose()
    (line,) = out.getvalue().splitlines()
    assert " WARNING " in line and "SLA tick failed (the database is away: " in line


def test_a_line_break_in_a_logged_value_cannot_start_a_line_of_its_own():
    # A platform's error text, a ticket key or a multi-line policy error: one event stays one line, so
    # nothing a value carries reads as another event in the log. A traceback keeps its lines.
    logger, out, handler = _capture("escalator.test-one-line")
    try:
        forged = "Jira answered 400\n2026-12-02 09:00:00,000 INFO [web] escalator: all is well"
        logger.warning("rejected: %s", forged)
        logger.error("with a traceback", exc_info=_raised(ValueError("a bug")))
    finally:
        logger.removeHandler(handler)
    first, *rest = out.getvalue().splitlines()
    assert first.endswith(
        "rejected: Jira answered 400\\n2026-12-02 09:00:00,000 INFO [web] escalator: all is well"
    )
    assert "Traceback (most recent call last):" in rest and rest[-1] == "ValueError: a bug"
