"""SLA clocks end to end on every platform, with a controllable clock: the scheduler's tick fires
due timers into the inbox and the worker acts on them like on webhooks (example policy: P1 runs on a
24x7 calendar, first response 15 min, warning at 75 %; P3 runs on the emea business calendar)."""

from __future__ import annotations

from datetime import timedelta

from connector.scheduler import SlaScheduler, tick
from connector.store import timers
from tests.conformance.drivers import OUTAGE, QUESTION, Effect, Spec, after, decide, post
from tests.support.harness import start

MINUTE = 60


def armed(esc, driver, spec):
    with esc.rt.engine.connect() as conn:
        return timers.armed(conn, driver.platform, driver.ticket_id(spec))


def fire(esc) -> list[dict]:
    """One scheduler tick, then the worker; the audit records it produced."""
    before = len(esc.audit())
    tick(esc.rt)
    esc.work()
    return esc.audit()[before:]


def test_warning_at_75_percent_then_breach_moves_the_ticket_one_tier_up(esc, driver, api):
    driver.register_write(api)
    created = esc.clock()
    decide(esc, driver, driver.created(OUTAGE, created))  # P1 at L2 now
    ticket = after(OUTAGE, driver.effect(driver.writes(api), OUTAGE))
    assert armed(esc, driver, OUTAGE)["first_response:sla.warning:75"] == created + timedelta(minutes=11.25)
    api.calls.reset()

    esc.clock.advance(11 * MINUTE)
    assert fire(esc) == []  # not yet
    esc.clock.advance(16)
    (warning,) = fire(esc)
    assert warning["outcome"] == "applied" and warning["rules"] == ["sla-warning-to-assignee"]
    assert warning["trigger"]["kind"] == "sla.warning"
    due = (created + timedelta(minutes=11.25)).isoformat()
    expected = {"metric": "first_response", "percent": 75, "late": False, "target_seconds": 900.0, "due": due}
    assert warning["sla"] == {**warning["sla"], **expected}
    note = driver.effect(driver.writes(api), ticket)
    assert note.note_internal is True and "75 %" in note.note_text and note.priority is None
    api.calls.reset()

    esc.clock.advance(4 * MINUTE)  # 15:16 after creation: the first response is overdue
    (breach,) = fire(esc)
    assert breach["outcome"] == "applied" and breach["rules"] == ["sla-breach-escalates"]
    assert (breach["tier"]["from"], breach["tier"]["to"]) == ("L2", "L3")
    effect = driver.effect(driver.writes(api), ticket)
    assert (effect.tier, effect.labels_added) == ("L3", frozenset({"sla-breached"}))
    assert effect.note_internal is True
    assert "first response target of 15m" in " ".join(effect.note_text.split())
    assert len(driver.writes(api)) == driver.writes_per_decision(effect)  # one write (Jira: + internal note)
    assert "first_response:sla.breached:100" not in armed(esc, driver, OUTAGE)
    assert fire(esc) == []  # each timer fires once


def test_a_paused_clock_resumes_with_the_time_it_had_left(esc, driver, api):
    driver.register_write(api)
    created = esc.clock()  # Monday 09:00 UTC = 10:00 in Berlin: the emea desk is open
    question = Spec(QUESTION.n, QUESTION.title, priority="P3", created=created)
    decide(esc, driver, driver.created(question, created))  # P3: first response 4 business hours
    assert armed(esc, driver, question)["first_response:sla.breached:100"] == created + timedelta(hours=4)

    esc.clock.advance(60 * MINUTE)  # one hour used, three left
    waiting = Spec(question.n, question.title, priority="P3", status="pending", created=created)
    paused = decide(esc, driver, driver.edited(waiting, "status", "open", esc.clock()))
    assert paused["outcome"] == "no_change"
    assert armed(esc, driver, question) == {}  # paused: nothing can fire

    esc.clock.advance(120 * MINUTE)
    assert fire(esc) == []  # 3 hours after creation: the breach would have been at 4 without the pause
    back = Spec(question.n, question.title, priority="P3", status="open", created=created)
    decide(esc, driver, driver.edited(back, "status", "pending", esc.clock()))
    assert armed(esc, driver, question)["first_response:sla.breached:100"] == esc.clock() + timedelta(hours=3)


def test_a_priority_raised_mid_way_is_measured_from_the_start(esc, driver, api):
    driver.register_write(api)
    created = esc.clock()
    question = Spec(50, "Checkout fails for us", priority="P4", created=created)
    decide(esc, driver, driver.created(question, created))
    assert armed(esc, driver, question)["first_response:sla.breached:100"] == created + timedelta(hours=8)

    esc.clock.advance(12 * MINUTE)
    outage = Spec(50, question.title, labels=("outage",), priority="P4", created=created)
    raised = decide(esc, driver, driver.edited(outage, "labels", "", esc.clock()))
    assert raised["priority"]["to"] == "P1"
    # P1's 15 minutes from the ticket's start, not from the change; the 75 % warning is already past.
    assert armed(esc, driver, question)["first_response:sla.breached:100"] == created + timedelta(minutes=15)
    assert "first_response:sla.warning:75" not in armed(esc, driver, question)


def test_timers_due_while_down_fire_once_at_start_up_marked_late(esc, driver, api):
    driver.register_write(api)
    decide(esc, driver, driver.created(OUTAGE, esc.clock()))
    ticket = after(OUTAGE, driver.effect(driver.writes(api), OUTAGE))
    api.calls.reset()
    config, clock = esc.rt.config, esc.clock
    esc.rt.close()  # the connector goes down …

    clock.advance(40 * MINUTE)  # … while the warning (11:15) and the breach (15:00) come due
    restarted = start(config, clock)
    try:
        scheduler = SlaScheduler(restarted.rt)
        scheduler.start()  # ticks at once, before the first interval
        scheduler.stop()
        restarted.work()
        records = restarted.audit()[1:]
        assert [(r["trigger"]["kind"], r["sla"]["late"]) for r in records] == [
            ("sla.warning", True), ("sla.breached", True),
        ]  # fmt: skip
        assert records[1]["sla"]["late_by_seconds"] == 25 * MINUTE
        effect = driver.effect(driver.writes(api), ticket)
        assert effect.tier == "L3"
        assert fire(restarted) == []  # never twice
    finally:
        restarted.rt.close()


def test_a_p1_without_public_update_gets_an_hourly_reminder(esc, driver, api):
    driver.register_write(api)
    created = esc.clock()
    decide(esc, driver, driver.created(OUTAGE, created))
    esc.clock.advance(15 * MINUTE + 1)
    fire(esc)  # the warning and the breach
    api.calls.reset()

    esc.clock.advance(45 * MINUTE)  # one hour after creation, no public reply
    (reminder,) = fire(esc)
    assert reminder["trigger"]["kind"] == "update.due" and reminder["rules"] == [
        "p1-hourly-update",
        "p1-hourly-update-reminder",
    ]
    assert armed(esc, driver, OUTAGE)["update_every:update.due:100"] == created + timedelta(hours=2)
    effect = driver.effect(driver.writes(api), after(OUTAGE, Effect("P1", "L3")))
    assert effect.note_internal is True and "no public update" in effect.note_text


def test_the_tick_hands_due_timers_to_the_inbox_not_the_platform(esc, driver, api):
    driver.register_write(api)
    decide(esc, driver, driver.created(OUTAGE, esc.clock()))
    api.calls.reset()
    esc.clock.advance(16 * MINUTE)
    assert tick(esc.rt) == 2  # warning + breach, queued
    assert len(api.calls) == 0  # nothing is sent by the scheduler itself
    assert post is not None and len(esc.audit()) == 1


def test_a_timer_whose_clock_changed_before_it_was_handled_is_dropped(esc, driver, api):
    driver.register_write(api)
    created = esc.clock()
    decide(esc, driver, driver.created(OUTAGE, created))
    now = after(OUTAGE, driver.effect(driver.writes(api), OUTAGE))
    api.calls.reset()

    esc.clock.advance(11 * MINUTE)  # the agent sets the ticket to pending; the worker has not run yet
    waiting = Spec(now.n, now.title, now.labels, now.priority, now.tier, status="pending", created=created)
    assert post(esc, driver, driver.edited(waiting, "status", "open", esc.clock())).status_code == 202
    esc.clock.advance(MINUTE)
    assert tick(esc.rt) == 1  # the 75 % warning came due meanwhile and is queued after the edit
    esc.work()

    paused, warning = esc.audit()[-2:]
    assert paused["outcome"] == "no_change"
    assert warning["outcome"] == "ignored" and "no longer armed" in warning["detail"]
    assert driver.writes(api) == []  # the paused ticket is not warned
