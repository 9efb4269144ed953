"""The worker process's lease keeper (connector/lease_keeper.py): how often it renews, that it
renews this process's leases, and that a database refusing it is said once and outlived."""

from __future__ import annotations

import logging
from datetime import timedelta

from sqlalchemy.exc import OperationalError

from connector import lease_keeper
from connector.lease_keeper import LeaseKeeper
from connector.store import inbox
from tests.support.harness import jira_config, start


def test_it_renews_every_third_of_the_shorter_lease_and_extends_this_process_s_leases(sqlite_url):
    config = jira_config(sqlite_url)
    config = config.model_copy(update={
        "worker": config.worker.model_copy(update={"lease_seconds": 90.0}),
        "notifications": config.notifications.model_copy(update={"lease_seconds": 30.0}),
    })  # fmt: skip
    esc = start(config)
    try:
        keeper = LeaseKeeper(esc.rt)
        assert keeper.interval == 10.0
        inbox.accept(esc.rt.engine, inbox.new_row("jira", "d1", "jira:issue_updated", "A", False, b"{}",
                                                  esc.clock()))  # fmt: skip
        (item,) = inbox.claim(esc.rt.engine, owner=esc.rt.owner, now=esc.clock(), lease=timedelta(seconds=90),
                              limit=1)  # fmt: skip
        esc.clock.advance(80)
        assert keeper.renew()
        esc.clock.advance(80)  # 160 s after the claim: past its first lease, inside the renewed one
        assert inbox.claim(esc.rt.engine, owner="other", now=esc.clock(), lease=timedelta(seconds=90),
                           limit=1) == []  # fmt: skip
    finally:
        esc.rt.close()


def test_a_refusing_database_is_said_once_and_renewal_goes_on_when_it_answers(
    sqlite_url, monkeypatch, caplog
):
    esc = start(jira_config(sqlite_url))
    answers = [OperationalError("UPDATE inbox", {}, Exception("database is locked"))] * 2
    real = lease_keeper.leases.renew

    def renew(*args, **kwargs):
        if answers:
            raise answers.pop()
        return real(*args, **kwargs)

    monkeypatch.setattr(lease_keeper.leases, "renew", renew)
    try:
        keeper = LeaseKeeper(esc.rt)
        with caplog.at_level(logging.INFO, logger="escalator"):
            assert [keeper.renew(), keeper.renew(), keeper.renew()] == [False, False, True]
        warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
        assert len(warnings) == 1 and "could not renew this worker's leases" in warnings[0]
        assert "database is locked" in warnings[0]
        assert any("renewed again" in r.getMessage() for r in caplog.records if r.levelno == logging.INFO)
    finally:
        esc.rt.close()
