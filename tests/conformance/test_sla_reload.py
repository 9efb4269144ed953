"""A policy reload that moves an SLA target re-arms the timers already armed, on every platform:
after the reload the worker's pass re-arms every ticket, and a timer that fires stale re-arms
its own ticket (example policy: P1 first response 15 min on a 24x7 calendar, warning at 75 %)."""

from __future__ import annotations

import logging
from datetime import timedelta

import pytest

from connector import pipeline
from connector.config import EXAMPLE_POLICY, Config
from connector.retarget import Retargeter, Summary, retarget_all
from connector.scheduler import tick
from tests.conformance.drivers import DRIVERS, OUTAGE, QUESTION, SECURITY, decide
from tests.conformance.test_sla_timers import armed, fire
from tests.support.harness import FakeClock, start

MINUTE = 60
P1_FIRST_RESPONSE = "P1: {first_response: 15m,"
WARNING, BREACH = "first_response:sla.warning:75", "first_response:sla.breached:100"


@pytest.fixture
def policy_file(tmp_path):
    path = tmp_path / "policy.yaml"
    path.write_text(EXAMPLE_POLICY.read_text())
    assert P1_FIRST_RESPONSE in path.read_text()
    return path


@pytest.fixture
def esc(db_url, policy_file):  # SQLite and PostgreSQL: the pass pages with row values, FOR UPDATE
    config = Config.model_validate(
        {
            "database": db_url,
            "dry_run": False,
            "policy": str(policy_file),
            "platforms": {name: dict(driver.settings) for name, driver in DRIVERS.items()},
        }
    )
    escalator = start(config, FakeClock())
    yield escalator
    escalator.rt.close()


def reload_with_p1_first_response(esc, policy_file, minutes: int) -> None:
    text = policy_file.read_text().replace(P1_FIRST_RESPONSE, f"P1: {{first_response: {minutes}m,")
    policy_file.write_text(text)
    esc.rt.policy.reload()


def test_a_loosened_target_moves_the_armed_timers(esc, driver, api, policy_file):
    driver.register_write(api)
    created = esc.clock()
    decide(esc, driver, driver.created(OUTAGE, created))
    assert armed(esc, driver, OUTAGE)[BREACH] == created + timedelta(minutes=15)

    reload_with_p1_first_response(esc, policy_file, 30)
    assert retarget_all(esc.rt) == Summary(tickets=1, changed=1)
    timers = armed(esc, driver, OUTAGE)
    assert (timers[WARNING], timers[BREACH]) == (
        created + timedelta(minutes=22.5),
        created + timedelta(minutes=30),
    )

    esc.clock.advance(16 * MINUTE)
    assert fire(esc) == []  # the old breach instant has passed: nothing fires
    esc.clock.advance(7 * MINUTE)
    (warning,) = fire(esc)
    assert warning["outcome"] == "applied" and warning["sla"]["target_seconds"] == 1800.0
    esc.clock.advance(8 * MINUTE)
    (breach,) = fire(esc)
    assert breach["outcome"] == "applied" and breach["trigger"]["kind"] == "sla.breached"
    assert breach["sla"]["due"] == (created + timedelta(minutes=30)).isoformat()


def test_a_tightened_target_sends_the_breach_and_no_late_warning(esc, driver, api, policy_file):
    driver.register_write(api)
    created = esc.clock()
    decide(esc, driver, driver.created(OUTAGE, created))
    esc.clock.advance(6 * MINUTE)

    reload_with_p1_first_response(esc, policy_file, 5)
    assert retarget_all(esc.rt) == Summary(tickets=1, changed=1)
    timers = armed(esc, driver, OUTAGE)
    assert WARNING not in timers  # 75 % of 5 min passed before the reload: not sent late
    assert timers[BREACH] == created + timedelta(minutes=5)

    (breach,) = fire(esc)
    assert breach["outcome"] == "applied" and breach["trigger"]["kind"] == "sla.breached"
    assert breach["sla"]["late"] is True and breach["sla"]["target_seconds"] == 300.0
    assert fire(esc) == []


def test_without_the_pass_a_stale_timer_re_arms_its_ticket(esc, driver, api, policy_file):
    """E.g. a restart with an edited policy file, or an event recorded across the reload."""
    driver.register_write(api)
    created = esc.clock()
    decide(esc, driver, driver.created(OUTAGE, created))
    reload_with_p1_first_response(esc, policy_file, 30)

    esc.clock.advance(12 * MINUTE)
    (stale,) = fire(esc)  # the warning armed for 11m15s under the old target
    assert stale["outcome"] == "ignored" and "no longer armed" in stale["detail"]
    timers = armed(esc, driver, OUTAGE)
    assert (timers[WARNING], timers[BREACH]) == (
        created + timedelta(minutes=22.5),
        created + timedelta(minutes=30),
    )

    esc.clock.advance(11 * MINUTE)
    (warning,) = fire(esc)
    assert warning["outcome"] == "applied" and warning["sla"]["target_seconds"] == 1800.0


def test_the_pass_pages_through_every_ticket_and_changes_only_what_moved(esc, driver, api, policy_file):
    driver.register_write(api)
    for spec in (OUTAGE, SECURITY, QUESTION):
        decide(esc, driver, driver.created(spec, esc.clock()))
    others = {spec.n: armed(esc, driver, spec) for spec in (SECURITY, QUESTION)}

    reload_with_p1_first_response(esc, policy_file, 30)
    assert retarget_all(esc.rt, page=2) == Summary(tickets=3, changed=1)  # only the P1's target moved
    assert {spec.n: armed(esc, driver, spec) for spec in (SECURITY, QUESTION)} == others
    assert retarget_all(esc.rt, page=2) == Summary(tickets=3, changed=0)  # a second pass finds nothing to do


def test_a_warning_already_fired_and_queued_is_still_sent_after_a_pass(esc, driver, api, policy_file):
    """The pass runs while the warning waits in the inbox: its instant did not move, so it stays."""
    driver.register_write(api)
    decide(esc, driver, driver.created(OUTAGE, esc.clock()))
    esc.clock.advance(12 * MINUTE)
    assert tick(esc.rt) == 1  # the 75 % warning is in the inbox, not handled yet

    reload_with_p1_first_response(esc, policy_file, 15)  # an unrelated edit: same targets
    assert retarget_all(esc.rt) == Summary(tickets=1, changed=0)
    esc.work()
    warning = esc.audit()[-1]
    assert warning["outcome"] == "applied" and warning["trigger"]["kind"] == "sla.warning"


def test_a_pass_that_fails_is_logged_and_leaves_the_timers_to_re_arm_as_they_fire(esc, caplog, monkeypatch):
    from connector import retarget

    def database_gone(*args, **kwargs):
        raise RuntimeError("database is locked")

    monkeypatch.setattr(retarget, "retarget_all", database_gone)
    with caplog.at_level(logging.ERROR, logger="escalator.retarget"):
        assert Retargeter(esc.rt)._run() is None
    assert "re-arming SLA timers after the policy reload failed" in caplog.text
    assert "database is locked" in caplog.text


def test_a_decision_whose_timers_are_those_armed_last_touches_none_and_a_pass_makes_it_look_again(
    esc, driver, api, policy_file, monkeypatch
):
    """The worker keeps a digest of the timers it armed with the ticket's clocks and, while it wants
    the same ones, neither reads nor writes them. A pass that re-armed the ticket drops the digest."""
    driver.register_write(api)
    created = esc.clock()
    decide(esc, driver, driver.created(OUTAGE, created))
    reconciled = []
    real = pipeline.timers.reconcile
    monkeypatch.setattr(
        pipeline.timers, "reconcile", lambda *a, **k: reconciled.append(a[2]) or real(*a, **k)
    )

    # The same ticket sent again, twice: the first still shows the group our write replaced (the fake
    # platform does not apply it), so its handover timer goes; the second changes nothing.
    for _ in range(2):
        reconciled.clear()
        esc.clock.advance(MINUTE)
        decide(esc, driver, driver.created(OUTAGE, esc.clock()))
    assert reconciled == []
    assert armed(esc, driver, OUTAGE)[BREACH] == created + timedelta(minutes=15)

    reload_with_p1_first_response(esc, policy_file, 30)
    assert retarget_all(esc.rt) == Summary(tickets=1, changed=1)  # re-armed by the pass, not the worker
    reconciled.clear()
    esc.clock.advance(MINUTE)
    decide(esc, driver, driver.created(OUTAGE, esc.clock()))
    assert reconciled, "the pass left the worker's digest in place: it would trust timers it did not arm"
    assert armed(esc, driver, OUTAGE)[BREACH] == created + timedelta(minutes=30)
    reconciled.clear()
    esc.clock.advance(MINUTE)
    decide(esc, driver, driver.created(OUTAGE, esc.clock()))
    assert reconciled == []  # kept again
