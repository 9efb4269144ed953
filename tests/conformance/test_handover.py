"""Follow the sun end to end on every platform, with a controllable clock: the example policy's L2 is
worked from Jakarta (06:00-16:00 WIB), Berlin (08:00-18:00) and New York (09:00-19:00), each on its own
public holidays. An escalation goes to the open team; at a team's close the scheduler's tick fires its
tickets' handover timers and the worker hands each over in one write with one audit record.

The handed-over tickets are P4 questions (first response 8 business hours on the emea calendar), so no
SLA event interferes within the hours the tests walk through; weekends and holidays keep it that way."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from connector.config import EXAMPLE_POLICY, Config
from connector.retarget import retarget_all
from connector.scheduler import tick
from connector.store import tickets, timers
from tests.conformance.drivers import DRIVERS, OUTAGE, Spec, decide
from tests.support.harness import FakeClock, start

HANDOVER = "handover"


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def armed(esc, driver, spec):
    with esc.rt.engine.connect() as conn:
        return timers.armed(conn, driver.platform, driver.ticket_id(spec))


def fire(esc) -> list[dict]:
    """One scheduler tick, then the worker; the audit records it produced."""
    before = len(esc.audit())
    tick(esc.rt)
    esc.work()
    return esc.audit()[before:]


def question(n: int, team: str, status: str = "open") -> Spec:
    """A P4 ticket that sits with `team` of L2 (someone escalated it there earlier)."""
    return Spec(n, "Where is my invoice?", priority="P4", tier="L2", team=team, status=status)


def hand_over(esc, driver, api, spec: Spec, close: str, to: str) -> Spec:
    """Move the clock to `close`: exactly one handover of `spec`, to `to`, in one write; the ticket after."""
    sla_before = {k: v for k, v in armed(esc, driver, spec).items() if k != HANDOVER}
    assert armed(esc, driver, spec)[HANDOVER] == at(close)
    api.calls.reset()
    esc.clock.now = at(close)
    records = [r for r in fire(esc) if r["ticket"]["id"] == driver.ticket_id(spec)]
    assert [(r["trigger"]["kind"], r["outcome"]) for r in records] == [(HANDOVER, "applied")]
    (record,) = records
    handed = [a for a in record["actions_planned"] if a["action"] == "hand_over"]
    assert handed == [{"action": "hand_over", "tier": "L2", "team": to, "from_team": spec.team}]
    assert any(r.startswith(f"handover L2: {spec.team} closed at") for r in record["reasons"])
    writes = driver.writes(api)
    effect = driver.effect(writes, spec)
    assert (effect.team, effect.tier, effect.priority) == (to, "L2", None)
    assert len(writes) == driver.writes_per_decision(effect)  # one write (Jira: + its internal note)
    assert effect.note_internal is True
    text = " ".join(effect.note_text.split())
    assert f"Escalator handover: {spec.team} → {to}" in text and "Priority P4, tier L2" in text
    assert "first response (8h): due" in text and "Due next:" in text and "Last public reply" in text
    # The SLA clocks are not reset: their timers are where they were.
    assert {k: v for k, v in armed(esc, driver, spec).items() if k != HANDOVER} == sla_before
    return Spec(spec.n, spec.title, spec.labels, spec.priority, "L2", spec.status, spec.created, team=to)


@pytest.mark.parametrize(("hour", "team"), [(3, "apac"), (11, "emea"), (19, "amer")])
def test_an_escalation_goes_to_the_team_that_is_open(esc, driver, api, hour: int, team: str):
    driver.register_write(api)
    esc.clock.now = at(f"2026-11-03 {hour:02d}:00")  # a Tuesday
    record = decide(esc, driver, driver.created(OUTAGE, esc.clock()))
    assert (record["tier"]["to"], record["outcome"]) == ("L2", "applied")
    assert any(r.startswith(f"L2 follows the sun: to {team}, {team} is open") for r in record["reasons"])
    effect = driver.effect(driver.writes(api), OUTAGE)
    assert (effect.tier, effect.team) == ("L2", team)


def test_each_region_hands_over_at_its_close_on_a_weekday(esc, driver, api):
    driver.register_write(api)
    esc.clock.now = at("2026-11-03 08:30")  # Tuesday, 15:30 in Jakarta
    early = question(60, "apac")
    decide(esc, driver, driver.created(early, esc.clock()))
    hand_over(esc, driver, api, early, "2026-11-03 09:00", "emea")  # 16:00 WIB
    # (that ticket's first response is due 16:30 UTC: its breach escalates it to L3, out of the rota)
    esc.clock.now = at("2026-11-03 16:30")
    assert [r["rules"] for r in fire(esc)] == [["sla-warning-to-assignee"], ["sla-breach-escalates"]]
    late = question(64, "emea")
    decide(esc, driver, driver.created(late, esc.clock()))
    late = hand_over(esc, driver, api, late, "2026-11-03 17:00", "amer")  # 18:00 CET
    late = hand_over(esc, driver, api, late, "2026-11-04 00:00", "apac")  # 19:00 EST
    assert armed(esc, driver, late)[HANDOVER] == at("2026-11-04 09:00")


def test_handovers_follow_each_region_across_a_dst_change(esc, driver, api):
    driver.register_write(api)
    # Saturday 24 October 2026, Berlin still on summer time: 18:00 there is 16:00 UTC.
    esc.clock.now = at("2026-10-24 15:30")
    spec = question(61, "emea")
    decide(esc, driver, driver.created(spec, esc.clock()))
    spec = hand_over(esc, driver, api, spec, "2026-10-24 16:00", "amer")  # 19:00 EDT is 23:00 UTC
    spec = hand_over(esc, driver, api, spec, "2026-10-24 23:00", "apac")
    spec = hand_over(esc, driver, api, spec, "2026-10-25 09:00", "emea")
    # Berlin left summer time that night: its 18:00 close is now 17:00 UTC, an hour later than Saturday's.
    spec = hand_over(esc, driver, api, spec, "2026-10-25 17:00", "amer")


def test_a_public_holiday_hands_over_to_the_region_that_opens_next(esc, driver, api):
    driver.register_write(api)
    esc.clock.now = at("2026-04-05 22:00")  # Easter Sunday evening in New York
    spec = question(62, "amer")
    decide(esc, driver, driver.created(spec, esc.clock()))
    spec = hand_over(esc, driver, api, spec, "2026-04-05 23:00", "apac")
    # Easter Monday is a German holiday: Berlin's shift is closed, New York opens first (09:00 EDT).
    spec = hand_over(esc, driver, api, spec, "2026-04-06 09:00", "amer")


def test_a_paused_ticket_is_not_handed_over_until_it_resumes(esc, driver, api):
    driver.register_write(api)
    esc.clock.now = at("2026-11-03 16:00")
    waiting = question(63, "emea", status="pending")
    decide(esc, driver, driver.created(waiting, esc.clock()))
    assert HANDOVER not in armed(esc, driver, waiting)
    api.calls.reset()
    esc.clock.now = at("2026-11-03 17:30")  # Berlin closed at 17:00
    assert [r for r in fire(esc) if r["trigger"]["kind"] == HANDOVER] == []
    assert driver.writes(api) == []
    # The customer answers at 18:00 UTC: the ticket is open again while Berlin is shut and New York works.
    esc.clock.now = at("2026-11-03 18:00")
    back = question(63, "emea")
    decide(esc, driver, driver.edited(back, "status", "pending", esc.clock()))
    assert armed(esc, driver, back)[HANDOVER] == at("2026-11-03 17:00")  # past due: fires at the next tick
    (record,) = [r for r in fire(esc) if r["trigger"]["kind"] == HANDOVER]
    assert record["outcome"] == "applied"
    assert driver.effect(driver.writes(api), back).team == "amer"
    assert fire(esc) == []  # once


# --- rules on handover, policy reloads, dry runs -----------------------------------------------------

RULE = """\
  - name: handover-is-labelled
    on: handover
    then:
      - label: followed-the-sun
      - note: "Rule {{ rule.name }}: the {{ decision.tier }} ticket changed hands."

"""


@pytest.fixture
def policy_file(tmp_path):
    path = tmp_path / "policy.yaml"
    text = EXAMPLE_POLICY.read_text()
    marker = "  # --- SLA time events"
    assert marker in text
    path.write_text(text.replace(marker, RULE + marker))
    return path


@pytest.fixture
def esc_with(policy_file, sqlite_url):
    def make(**settings):
        config = Config.model_validate(
            {
                "database": sqlite_url,
                "policy": str(policy_file),
                "platforms": {name: dict(driver.settings) for name, driver in DRIVERS.items()},
                **settings,
            }
        )
        escalator = start(config, FakeClock(at("2026-11-03 16:30")))
        made.append(escalator)
        return escalator

    made: list = []
    yield make
    for escalator in made:
        escalator.rt.close()


def test_rules_react_to_a_handover_in_the_same_write(esc_with, platform, api):
    esc = esc_with(dry_run=False)
    driver = DRIVERS[platform](esc.rt.policy.current.platforms[platform])
    driver.register_write(api)
    spec = question(70, "emea")
    decide(esc, driver, driver.created(spec, esc.clock()))
    api.calls.reset()
    esc.clock.now = at("2026-11-03 17:00")
    (record,) = fire(esc)
    assert record["rules"] == ["handover-is-labelled"] and record["outcome"] == "applied"
    effect = driver.effect(driver.writes(api), spec)
    assert (effect.team, effect.labels_added) == ("amer", frozenset({"followed-the-sun"}))
    assert len(driver.writes(api)) == driver.writes_per_decision(effect)
    text = " ".join(effect.note_text.split())
    assert "Escalator handover: emea → amer" in text
    assert "Rule handover-is-labelled: the L2 ticket changed hands." in text


def test_a_reload_that_moves_a_shift_moves_the_armed_handovers(esc_with, policy_file, api):
    esc = esc_with(dry_run=False)
    driver = DRIVERS["zendesk"](esc.rt.policy.current.platforms["zendesk"])
    driver.register_write(api)
    spec = question(71, "emea")
    decide(esc, driver, driver.created(spec, esc.clock()))
    assert armed(esc, driver, spec)[HANDOVER] == at("2026-11-03 17:00")
    shift = "      timezone: Europe/Berlin\n      hours: mon-sun 08:00-18:00"
    assert shift in policy_file.read_text()
    policy_file.write_text(policy_file.read_text().replace(shift, shift.replace("18:00", "19:30")))
    assert timers.ARMED_KEY in _stored_sla(esc, driver, spec)  # the worker's digest of what it armed
    esc.rt.policy.reload()
    assert retarget_all(esc.rt).changed == 1
    assert armed(esc, driver, spec)[HANDOVER] == at("2026-11-03 18:30")
    # The SLA clocks did not move, the handover did: the digest is dropped, the next decision looks.
    assert timers.ARMED_KEY not in _stored_sla(esc, driver, spec)
    esc.clock.now = at("2026-11-03 17:00")
    assert fire(esc) == []  # the old close has passed: nothing is handed over


def _stored_sla(esc, driver, spec) -> dict:
    with esc.rt.engine.connect() as conn:
        return tickets.load(conn, driver.platform, driver.ticket_id(spec)).sla or {}


def test_a_dry_run_hands_over_on_paper_once(esc_with, api):
    esc = esc_with(dry_run=True)
    driver = DRIVERS["servicenow"](esc.rt.policy.current.platforms["servicenow"])
    driver.register_write(api)
    spec = question(72, "emea")
    decide(esc, driver, driver.created(spec, esc.clock()))
    esc.clock.now = at("2026-11-03 17:00")
    (record,) = fire(esc)
    assert (record["trigger"]["kind"], record["outcome"]) == (HANDOVER, "dry_run")
    assert record["requests"] and driver.writes(api) == []
    esc.clock.now = at("2026-11-03 17:10")
    assert fire(esc) == []  # the ticket still shows Berlin's group, but its handover is not fired again
