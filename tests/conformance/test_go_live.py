"""Going live on an existing desk, on every platform: a ticket opened years ago and first seen now is
measured from the moment Escalator first saw it (unless the policy says `sla.start: created`), so
connecting Escalator does not escalate every old ticket on its next event."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from connector.config import Config
from connector.scheduler import tick
from connector.store import timers
from policies.sla import METRICS
from tests.conformance.drivers import DRIVERS, Spec, after, decide
from tests.support.harness import FakeClock, start

EXAMPLE = Config.model_fields["policy"].default
OPENED_2019 = datetime(2019, 3, 14, 10, 0, tzinfo=UTC)
OLD_OUTAGE = Spec(21, labels=("outage",), priority="P4", tier="L1", created=OPENED_2019)


def fire(esc) -> list[dict]:
    before = len(esc.audit())
    tick(esc.rt)
    esc.work()
    return esc.audit()[before:]


def labelled_outage_now(esc, driver, api) -> dict:
    """The 2019 ticket, never seen before, gets the label `outage` now: its first event."""
    driver.register_write(api)
    return decide(esc, driver, driver.edited(OLD_OUTAGE, "labels", "", esc.clock()))


def test_an_old_ticket_first_seen_now_gets_its_p1_l2_write_and_nothing_else(esc, driver, api):
    record = labelled_outage_now(esc, driver, api)

    assert record["outcome"] == "applied" and record["rules"] == ["outage-goes-to-l2", "p1-notice"]
    assert (record["priority"]["to"], record["tier"]["from"], record["tier"]["to"]) == ("P1", "L1", "L2")
    effect = driver.effect(driver.writes(api), OLD_OUTAGE)
    assert (effect.priority, effect.tier) == ("P1", "L2")
    assert len(driver.writes(api)) == driver.writes_per_decision(effect)  # exactly its one write
    api.calls.reset()

    with esc.rt.engine.connect() as conn:
        armed = timers.armed(conn, driver.platform, driver.ticket_id(OLD_OUTAGE))
    now = esc.clock()
    assert armed and min(armed.values()) > now  # nothing overdue: the clocks started now
    assert armed["first_response:sla.breached:100"] == now + timedelta(minutes=15)
    assert fire(esc) == []  # no breach, no reminder, no further escalation
    esc.clock.advance(60)
    assert fire(esc) == [] and driver.writes(api) == []


def example_with(tmp_path: Path, old: str, new: str) -> str:
    text = Path(EXAMPLE).read_text(encoding="utf-8")
    assert old in text
    policy = tmp_path / "edited-example.yaml"
    policy.write_text(text.replace(old, new, 1), encoding="utf-8")
    return str(policy)


@pytest.fixture
def launch_with(sqlite_url, tmp_path):
    """An Escalator like the suite's, under the example policy with one edit."""
    started = []

    def _launch(old: str, new: str):
        config = Config.model_validate(
            {
                "database": sqlite_url, "dry_run": False, "policy": example_with(tmp_path, old, new),
                "worker": {"backoff_initial_seconds": 2, "backoff_max_seconds": 60},
                "platforms": {name: dict(d.settings) for name, d in DRIVERS.items()},
            }
        )  # fmt: skip
        started.append(start(config, FakeClock()))
        return started[-1]

    yield _launch
    for escalator in started:
        escalator.rt.close()


def test_with_start_created_the_old_ticket_is_breached_at_once(launch_with, platform, api):
    esc = launch_with("  warn_at: 75%", "  start: created\n  warn_at: 75%")
    driver = DRIVERS[platform](esc.rt.policy.current.platforms[platform])
    first = labelled_outage_now(esc, driver, api)
    assert first["tier"]["to"] == "L2"
    ticket = after(OLD_OUTAGE, driver.effect(driver.writes(api), OLD_OUTAGE))
    api.calls.reset()

    fired = fire(esc)  # the very next tick

    breaches = [r for r in fired if r["trigger"]["kind"] == "sla.breached"]
    assert breaches, [r["trigger"]["kind"] for r in fired]
    assert {r["sla"]["metric"] for r in breaches} <= set(METRICS)
    assert breaches[0]["rules"] == ["sla-breach-escalates"] and breaches[0]["tier"] == {
        "from": "L2",
        "to": "L3",
    }
    assert all(r["sla"]["due"] < esc.clock().isoformat() for r in fired)  # all overdue since 2019
    assert {"action": "add_label", "label": "sla-breached"} in breaches[0]["actions_planned"]
    assert driver.effect(driver.writes(api), ticket).tier in ("L3", "management")  # written at once


SCOPE = "scope: 'ticket.created >= \"2026-01-01\"'  # only tickets opened since go-live\n"


def test_a_ticket_out_of_scope_is_audited_and_never_written(launch_with, platform, api):
    esc = launch_with("\nrules:\n", f"\n{SCOPE}\nrules:\n")
    driver = DRIVERS[platform](esc.rt.policy.current.platforms[platform])

    record = labelled_outage_now(esc, driver, api)

    assert record["outcome"] == "out_of_scope" and driver.writes(api) == []
    assert "scope does not hold" in record["detail"] and record["rules"] == []
    with esc.rt.engine.connect() as conn:
        assert timers.armed(conn, driver.platform, driver.ticket_id(OLD_OUTAGE)) == {}  # no clocks
    new = Spec(22, labels=("outage",), priority="P4", tier="L1")
    assert decide(esc, driver, driver.created(new, esc.clock()))["outcome"] == "applied"  # in scope
