"""The worker process's lease keeper (connector/lease_keeper.py): how often it renews, that it renews
what the process works on and nothing else, that nothing is renewed for ever, and that a database
refusing it is said once and outlived."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

from sqlalchemy.exc import OperationalError

from connector import lease_keeper
from connector.lease_keeper import RENEWED_AT_MOST, Held, LeaseKeeper
from connector.store import inbox
from tests.support.harness import jira_config, start

LEASE = timedelta(seconds=90)
_SOME_END = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def _leases(sqlite_url, worker: float = 90.0, notifications: float = 30.0):
    config = jira_config(sqlite_url)
    config = config.model_copy(update={
        "worker": config.worker.model_copy(update={"lease_seconds": worker}),
        "notifications": config.notifications.model_copy(update={"lease_seconds": notifications}),
    })  # fmt: skip
    return start(config)


def _keeper_of_one_delivery(esc, monkeypatch, renew) -> LeaseKeeper:
    """A keeper of one claimed delivery whose renewals go through `renew` (leases.renew's stand-in)."""
    monkeypatch.setattr(lease_keeper.leases, "renew", renew)
    deliveries = Held()
    (item,) = _claim(esc, "A")
    deliveries.add([item.id], esc.clock() + LEASE)
    return LeaseKeeper(esc.rt, deliveries, Held())


def _claim(esc, *tickets: str) -> list[inbox.InboxItem]:
    for ticket in tickets:
        row = inbox.new_row("jira", f"d-{ticket}", "jira:issue_updated", ticket, False, b"{}", esc.clock())
        inbox.accept(esc.rt.engine, row)
    return inbox.claim(esc.rt.engine, owner=esc.rt.owner, now=esc.clock(), lease=LEASE, limit=len(tickets))


def test_it_renews_every_third_of_the_shorter_lease_what_is_held_and_nothing_else(sqlite_url):
    esc = _leases(sqlite_url)
    try:
        deliveries, notifications = Held(), Held()
        keeper = LeaseKeeper(esc.rt, deliveries, notifications)
        assert keeper.interval == 10.0
        worked_on, forgotten = _claim(esc, "A", "B")
        deliveries.add([worked_on.id], esc.clock() + LEASE)  # `forgotten`: the pool skipped it, say
        esc.clock.advance(80)
        assert keeper.renew()
        assert deliveries.until(worked_on.id) == esc.clock() + LEASE  # the pool's own check sees it
        esc.clock.advance(80)  # 160 s after the claim: past the first lease, inside the renewed one
        taken = inbox.claim(esc.rt.engine, owner="other", now=esc.clock(), lease=LEASE, limit=10)
        assert [i.id for i in taken] == [forgotten.id]
    finally:
        esc.rt.close()


def test_nothing_is_renewed_for_ever(sqlite_url, monkeypatch):
    """A thread stuck on a delivery (a bug, a server that trickles its answer) must not hold its
    ticket while the process lives: after RENEWED_AT_MOST leases it is left to run out."""
    clock = [1000.0]
    monkeypatch.setattr(lease_keeper.time, "monotonic", lambda: clock[0])
    held = Held()
    held.add([1, 2], until=_SOME_END)
    clock[0] += 50
    held.add([3], until=_SOME_END)
    clock[0] += RENEWED_AT_MOST * 90 - 60  # 1 and 2 held just under ten leases of 90 s; 3 for less
    assert held.to_renew(RENEWED_AT_MOST * 90) == [1, 2, 3]
    clock[0] += 20
    assert held.to_renew(RENEWED_AT_MOST * 90) == [3]
    held.drop([3])
    assert held.to_renew(RENEWED_AT_MOST * 90) == [] and len(held) == 2


def test_a_refusing_database_is_said_once_and_renewal_goes_on_when_it_answers(
    sqlite_url, monkeypatch, caplog
):
    esc = _leases(sqlite_url)
    answers = [OperationalError("UPDATE inbox", {}, Exception("database is locked"))] * 2
    real = lease_keeper.leases.renew

    def renew(*args, **kwargs):
        if answers:
            raise answers.pop()
        return real(*args, **kwargs)

    try:
        keeper = _keeper_of_one_delivery(esc, monkeypatch, renew)
        with caplog.at_level(logging.INFO, logger="escalator"):
            assert [keeper.renew(), keeper.renew(), keeper.renew()] == [False, False, True]
        warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
        assert len(warnings) == 1 and "could not renew this worker's leases" in warnings[0]
        assert "database is locked" in warnings[0]
        assert any("renewed again" in r.getMessage() for r in caplog.records if r.levelno == logging.INFO)
    finally:
        esc.rt.close()


def test_an_error_that_says_nothing_is_logged_by_its_name_not_raised_again(sqlite_url, monkeypatch, caplog):
    """A connection's OSError() or TimeoutError() carries no message: the keeper names it and goes on
    (reading its message's first line would itself fail inside the handler)."""
    esc = _leases(sqlite_url)

    def renew(*args, **kwargs):
        raise TimeoutError()

    try:
        keeper = _keeper_of_one_delivery(esc, monkeypatch, renew)
        with caplog.at_level(logging.INFO, logger="escalator"):
            assert keeper.renew() is False
        (warning,) = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
        assert "could not renew this worker's leases (TimeoutError)" in warning
    finally:
        esc.rt.close()
