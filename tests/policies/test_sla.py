"""SLA clock bookkeeping on the example policy: advance() through a ticket's life, timers() after each step.

The example's emea calendar is Europe/Berlin, mon-fri 08:00-18:00 (CEST = UTC+2 in May 2026); P3 targets
are first_response 4h, next_response 8h, resolution 20h; P1 runs on the 24x7 calendar (15m, update 1h,
4h); warn_at 75 %; pending and on_hold pause every clock.
"""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime, timedelta

from connector.model import (
    Comment,
    EventKind,
    Person,
    Priority,
    Requester,
    SlaSignal,
    Status,
    TicketEvent,
)
from policies import Policy, load_policy
from policies.sla import METRICS, SlaState, Timer, advance, current_timer, timers
from tests.policies.policy_helpers import EXAMPLE, REQUESTER, event, policy_source, write_policy

EXAMPLE_TEXT = EXAMPLE.read_text(encoding="utf-8")
H = timedelta(hours=1)
MON = datetime(2026, 5, 4, 6, tzinfo=UTC)  # Monday 08:00 CEST: the emea office opens
AGENT = Person(id="agent-7", name="Agent Seven")
CUSTOMER = Person(id=REQUESTER.id, name=REQUESTER.name)


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def at(when: datetime, kind: EventKind = EventKind.TICKET_UPDATED, **kwargs) -> TicketEvent:
    """An event on the example ticket created MON, occurring at `when`."""
    comment = kwargs.pop("comment", None)
    sla = kwargs.pop("sla", None)
    e = event(kind, comment=comment, **kwargs)
    return dataclasses.replace(
        e, ticket=dataclasses.replace(e.ticket, created_at=MON), occurred_at=when, sla=sla
    )


def reply(when: datetime, *, public: bool = True, by_requester: bool = False, **kwargs) -> TicketEvent:
    author = CUSTOMER if by_requester else AGENT
    comment = Comment(id="c", text="…", author=author, public=public, by_requester=by_requester)
    return at(when, EventKind.COMMENT_ADDED, comment=comment, **kwargs)


def fired(kind: EventKind, metric: str, due: datetime, when: datetime, percent: int = 100) -> TicketEvent:
    signal = SlaSignal(metric, H, due, when, percent, "emea")
    return at(when, kind, sla=signal)


def table(policy: Policy, state: SlaState) -> list[tuple[str, datetime]]:
    return [(t.key, t.due) for t in timers(policy, state)]


def created_p3(example: Policy) -> SlaState:
    return advance(example, SlaState(), at(MON, EventKind.TICKET_CREATED), Priority.P3, MON)


def test_created_p3_arms_warning_and_breach_timers(example: Policy) -> None:
    state = created_p3(example)
    assert state.started_at == MON and state.calendar == "emea" and state.priority is Priority.P3
    assert table(example, state) == [
        ("first_response:sla.warning:75", utc(2026, 5, 4, 9)),  # 3h: 11:00 CEST
        ("first_response:sla.breached:100", utc(2026, 5, 4, 10)),
        ("resolution:sla.warning:75", utc(2026, 5, 5, 11)),  # 15h: Mon 10h + Tue 5h → 13:00 CEST
        ("resolution:sla.breached:100", utc(2026, 5, 5, 16)),  # 20h: Tue 18:00 CEST
    ]
    [first] = timers(example, state)[:1]
    assert first == Timer("first_response", EventKind.SLA_WARNING, 75, utc(2026, 5, 4, 9), 4 * H, "emea")


def test_the_clock_starts_when_the_ticket_is_first_seen(example: Policy) -> None:
    later = advance(example, SlaState(), at(MON + 2 * H), Priority.P3, MON + 2 * H)
    assert later.started_at == MON + 2 * H  # first seen two hours after it was created: from then
    e = at(MON)
    unknown = dataclasses.replace(e, ticket=dataclasses.replace(e.ticket, created_at=None))
    assert advance(example, SlaState(), unknown, Priority.P3, MON + H).started_at == MON


def test_with_start_created_the_clock_starts_at_the_tickets_creation(example: Policy, tmp_path) -> None:
    text = EXAMPLE_TEXT.replace("  warn_at: 75%", "  start: created\n  warn_at: 75%")
    policy = load_policy(write_policy(tmp_path, text))
    later = advance(policy, SlaState(), at(MON + 2 * H), Priority.P3, MON + 2 * H)
    assert later.started_at == MON
    e = at(MON + H)
    unknown = dataclasses.replace(e, ticket=dataclasses.replace(e.ticket, created_at=None))
    assert (
        advance(policy, SlaState(), unknown, Priority.P3, MON + H).started_at == MON + H
    )  # no date: first seen


def test_a_reply_the_first_payload_shows_has_given_the_first_response(example: Policy) -> None:
    e = at(MON + 2 * H)
    answered = dataclasses.replace(e, ticket=dataclasses.replace(e.ticket, first_reply_at=MON + H))
    state = advance(example, SlaState(), answered, Priority.P3, MON + 2 * H)
    assert state.clocks["first_response"].stopped_at == MON + 2 * H  # answered before Escalator saw it
    assert "first_response:sla.breached:100" not in dict(table(example, state))


def test_raised_to_p1_is_retargeted_from_the_start(example: Policy) -> None:
    now = utc(2026, 5, 4, 8, 30)
    state = advance(example, created_p3(example), at(now), Priority.P1, now)
    assert table(example, state) == [
        ("first_response:sla.breached:100", MON + timedelta(minutes=15)),  # past: fires at once
        ("update_every:update.due:100", MON + H),
        ("resolution:sla.warning:75", MON + 3 * H),
        ("resolution:sla.breached:100", MON + 4 * H),
    ]  # the first-response warning (06:11:15Z) had passed when the target changed: not sent
    assert {t.calendar for t in timers(example, state)} == {"always"}


def test_pending_pauses_and_open_resumes_with_the_remainder(example: Policy) -> None:
    state = created_p3(example)
    pending = advance(example, state, at(MON + H, status=Status.PENDING), Priority.P3, MON + H)
    assert pending.paused_since == MON + H and timers(example, pending) == ()
    resumed_at = utc(2026, 5, 5, 8)  # Tue 10:00 CEST
    resumed = advance(example, pending, at(resumed_at, status=Status.OPEN), Priority.P3, resumed_at)
    assert resumed.pauses == ((MON + H, resumed_at),) and resumed.paused_since is None
    assert table(example, resumed)[:2] == [
        ("first_response:sla.warning:75", utc(2026, 5, 5, 10)),  # 1h used, 2h more: 12:00 CEST
        ("first_response:sla.breached:100", utc(2026, 5, 5, 11)),  # 3h left: 13:00 CEST
    ]
    on_hold = advance(
        example, resumed, at(resumed_at + H, status=Status.ON_HOLD), Priority.P3, resumed_at + H
    )
    assert timers(example, on_hold) == ()


def test_a_public_agent_reply_stops_first_response(example: Policy) -> None:
    state = advance(example, created_p3(example), reply(MON + H), Priority.P3, MON + H)
    assert state.clocks["first_response"].stopped_at == MON + H
    assert [k for k, _ in table(example, state)] == [
        "resolution:sla.warning:75",
        "resolution:sla.breached:100",
    ]


def test_internal_notes_and_requester_comments_do_not_stop_it(example: Policy) -> None:
    state = created_p3(example)
    for e in (reply(MON + H, public=False), reply(MON + H, by_requester=True)):
        assert advance(example, state, e, Priority.P3, MON + H).clocks["first_response"].stopped_at is None


def test_next_response_runs_from_a_requester_comment_to_the_next_agent_reply(example: Policy) -> None:
    answered = advance(example, created_p3(example), reply(MON + H), Priority.P3, MON + H)
    asked = advance(example, answered, reply(MON + 2 * H, by_requester=True), Priority.P3, MON + 2 * H)
    again = advance(example, asked, reply(MON + 3 * H, by_requester=True), Priority.P3, MON + 3 * H)
    assert again.clocks["next_response"].started_at == MON + 2 * H  # the first unanswered comment counts
    assert table(example, again)[:2] == [
        ("next_response:sla.warning:75", utc(2026, 5, 4, 14)),  # 10:00 CEST + 6h
        ("next_response:sla.breached:100", utc(2026, 5, 4, 16)),  # 18:00 CEST
    ]
    done = advance(example, again, reply(MON + 4 * H), Priority.P3, MON + 4 * H)
    assert not any(t.metric == "next_response" for t in timers(example, done))


def test_resolution_stops_every_clock_and_reopening_resumes_it(example: Policy) -> None:
    state = created_p3(example)
    solved = advance(example, state, at(MON + 2 * H, status=Status.RESOLVED), Priority.P3, MON + 2 * H)
    assert timers(example, solved) == () and solved.resolved_at == MON + 2 * H
    reopened_at = utc(2026, 5, 5, 6)  # Tue 08:00 CEST: 2h of 20h were used on Monday
    reopened = advance(example, solved, at(reopened_at, status=Status.OPEN), Priority.P3, reopened_at)
    assert table(example, reopened) == [
        ("resolution:sla.warning:75", utc(2026, 5, 6, 9)),  # 13h left of 15h: Tue 10h + Wed 3h → 11:00
        ("resolution:sla.breached:100", utc(2026, 5, 6, 14)),  # 18h left: Wed 16:00 CEST
    ]  # the first response is not owed again


def test_update_due_rearms_the_next_reminder(example: Policy) -> None:
    p1 = advance(example, SlaState(), at(MON, EventKind.TICKET_CREATED), Priority.P1, MON)
    assert dict(table(example, p1))["update_every:update.due:100"] == MON + H
    on_time = advance(example, p1, fired(EventKind.UPDATE_DUE, "update_every", MON + H, MON + H), Priority.P1,
                      MON + H + timedelta(seconds=20))  # fmt: skip
    assert dict(table(example, on_time))["update_every:update.due:100"] == MON + 2 * H
    late_at = MON + 3.5 * H  # the connector was down: one reminder now, the next an hour later
    late = advance(
        example, p1, fired(EventKind.UPDATE_DUE, "update_every", MON + H, late_at), Priority.P1, late_at
    )
    assert dict(table(example, late))["update_every:update.due:100"] == late_at + H
    replied = advance(example, on_time, reply(MON + 1.5 * H), Priority.P1, MON + 1.5 * H)
    assert dict(table(example, replied))["update_every:update.due:100"] == MON + 2.5 * H


def test_warning_and_breach_are_not_armed_again(example: Policy) -> None:
    state = created_p3(example)
    warning = fired(EventKind.SLA_WARNING, "first_response", MON + 3 * H, MON + 3 * H, 75)
    warned = advance(example, state, warning, Priority.P3, MON + 3 * H)
    assert "first_response:sla.warning:75" not in dict(table(example, warned))
    breach = fired(EventKind.SLA_BREACHED, "first_response", MON + 4 * H, MON + 4 * H)
    breached = advance(example, warned, breach, Priority.P3, MON + 4 * H)
    assert breached.clocks["first_response"].breached
    # its instant is kept (the SLA board sorts by it without calendar arithmetic), and round-trips
    assert breached.clocks["first_response"].due == MON + 4 * H
    assert SlaState.from_json(breached.to_json()).clocks["first_response"].due == MON + 4 * H
    assert "due" not in breached.to_json()["clocks"]["resolution"]  # only a breach keeps one
    assert not any(t.metric == "first_response" for t in timers(example, breached))
    assert any(t.metric == "resolution" for t in timers(example, breached))


def test_a_due_passed_before_a_pause_still_fires(example: Policy) -> None:
    # pending at 10:30Z: the first-response breach (10:00Z) had not fired yet (connector down) → stays armed
    state = created_p3(example)
    when = utc(2026, 5, 4, 10, 30)
    paused = advance(example, state, at(when, status=Status.PENDING), Priority.P3, when)
    assert table(example, paused) == [
        ("first_response:sla.warning:75", utc(2026, 5, 4, 9)),
        ("first_response:sla.breached:100", utc(2026, 5, 4, 10)),
    ]


def test_requester_region_picks_the_calendar(example: Policy) -> None:
    apac = Requester(id="r-2", name="Budi", region="apac")
    start = utc(2026, 8, 14, 2)  # Fri 14 Aug 09:00 WIB; Mon 17 Aug is Independence Day
    e = at(start, EventKind.TICKET_CREATED, requester=apac)
    e = dataclasses.replace(e, ticket=dataclasses.replace(e.ticket, created_at=start))
    state = advance(example, SlaState(), e, Priority.P4, start)
    assert state.calendar == "apac"
    # P4 first response 8h: all of Friday (09:00-17:00 WIB) → due Fri 17:00 WIB = 10:00Z
    assert dict(table(example, state))["first_response:sla.breached:100"] == utc(2026, 8, 14, 10)
    # resolution 40h = five working days: Fri, Tue 18, Wed 19, Thu 20, Fri 21 → Fri 21 Aug 17:00 WIB
    assert dict(table(example, state))["resolution:sla.breached:100"] == utc(2026, 8, 21, 10)


def test_no_priority_no_timers(example: Policy) -> None:
    state = advance(example, SlaState(), at(MON, EventKind.TICKET_CREATED), None, MON)
    assert state.started_at == MON and timers(example, state) == ()


def test_time_never_runs_backwards(example: Policy) -> None:
    state = advance(example, created_p3(example), reply(MON + 2 * H), Priority.P3, MON + 2 * H)
    older = advance(example, state, at(MON + H, status=Status.PENDING), Priority.P3, MON + 2 * H)
    assert older.paused_since == MON + 2 * H  # an event delivered late does not rewrite the past
    future = advance(example, state, at(MON + 9 * H, status=Status.PENDING), Priority.P3, MON + 3 * H)
    assert future.paused_since == MON + 3 * H  # nor one stamped in the future (clock skew)


def test_current_timer_says_whether_a_fired_timer_still_applies(example: Policy) -> None:
    state = created_p3(example)
    assert current_timer(example, state, "first_response:sla.breached:100").due == utc(2026, 5, 4, 10)
    answered = advance(example, state, reply(MON + H), Priority.P3, MON + H)
    assert current_timer(example, answered, "first_response:sla.breached:100") is None


def test_json_round_trip(example: Policy) -> None:
    state = created_p3(example)
    for e, now in [
        (reply(MON + H), MON + H),
        (reply(MON + 2 * H, by_requester=True), MON + 2 * H),
        (at(MON + 3 * H, status=Status.PENDING), MON + 3 * H),
        (at(MON + 5 * H, status=Status.OPEN), MON + 5 * H),
        (fired(EventKind.SLA_WARNING, "next_response", MON + 6 * H, MON + 6 * H, 75), MON + 6 * H),
        (at(MON + 7 * H, status=Status.ON_HOLD), MON + 7 * H),
    ]:
        state = advance(example, state, e, Priority.P2, now)
    data = json.loads(json.dumps(state.to_json()))
    assert SlaState.from_json(data) == state
    assert timers(example, SlaState.from_json(data)) == timers(example, state)
    assert SlaState.from_json(None) == SlaState() == SlaState.from_json({})
    assert SlaState().to_json() == {}


def test_deterministic(example: Policy) -> None:
    a, b = created_p3(example), created_p3(example)
    assert a == b and timers(example, a) == timers(example, b)
    assert list(METRICS) == ["first_response", "next_response", "update_every", "resolution"]


def test_a_policy_without_sla_keeps_the_state(tmp_path) -> None:
    policy = load_policy(write_policy(tmp_path, policy_source()))
    assert policy.sla is None
    state = SlaState(started_at=MON)
    assert advance(policy, state, at(MON), Priority.P1, MON) is state
    assert timers(policy, state) == ()


def test_the_readme_worked_example(example: Policy) -> None:
    """policies/README.md, "Worked example: two regions" — keep both in step."""

    def step(state: SlaState, when: datetime, priority: Priority, **kwargs) -> SlaState:
        kind = kwargs.pop("kind", EventKind.TICKET_UPDATED)
        comment = kwargs.pop("comment", None)
        e = event(kind, comment=comment, **kwargs)
        e = dataclasses.replace(e, ticket=dataclasses.replace(e.ticket, created_at=created), occurred_at=when)
        return advance(example, state, e, priority, when)

    # Ada (emea), P3, Friday 23 Oct 2026 16:30 CEST; the clocks go back on Sunday 25 Oct
    created = utc(2026, 10, 23, 14, 30)
    ada = step(SlaState(), created, Priority.P3, kind=EventKind.TICKET_CREATED)
    assert table(example, ada) == [
        ("first_response:sla.warning:75", utc(2026, 10, 26, 8, 30)),
        ("first_response:sla.breached:100", utc(2026, 10, 26, 9, 30)),
        ("resolution:sla.warning:75", utc(2026, 10, 27, 10, 30)),
        ("resolution:sla.breached:100", utc(2026, 10, 27, 15, 30)),
    ]
    answer = Comment(id="c1", text="We are on it", author=AGENT, public=True)
    ada = step(ada, utc(2026, 10, 26, 8), Priority.P3, kind=EventKind.COMMENT_ADDED, comment=answer)
    ada = step(ada, utc(2026, 10, 26, 10), Priority.P3, status=Status.PENDING)
    assert timers(example, ada) == ()
    ada = step(ada, utc(2026, 10, 27, 13), Priority.P3, status=Status.OPEN)
    assert table(example, ada) == [
        ("resolution:sla.warning:75", utc(2026, 10, 28, 13, 30)),
        ("resolution:sla.breached:100", utc(2026, 10, 29, 8, 30)),
    ]

    # Budi (apac), P2, Friday 14 Aug 2026 15:00 WIB; Monday 17 Aug is Independence Day
    created = utc(2026, 8, 14, 8)
    apac = Requester(id="r-2", name="Budi", region="apac")
    budi = step(SlaState(), created, Priority.P2, kind=EventKind.TICKET_CREATED, requester=apac)
    assert table(example, budi) == [
        ("first_response:sla.warning:75", utc(2026, 8, 14, 8, 45)),
        ("first_response:sla.breached:100", utc(2026, 8, 14, 9)),
        ("resolution:sla.warning:75", utc(2026, 8, 18, 6)),
        ("resolution:sla.breached:100", utc(2026, 8, 18, 8)),
    ]
    budi = step(budi, utc(2026, 8, 14, 8, 20), Priority.P1, requester=apac)
    assert table(example, budi) == [
        ("first_response:sla.breached:100", utc(2026, 8, 14, 8, 15)),
        ("update_every:update.due:100", utc(2026, 8, 14, 9)),
        ("resolution:sla.warning:75", utc(2026, 8, 14, 11)),
        ("resolution:sla.breached:100", utc(2026, 8, 14, 12)),
    ]


def test_a_stored_state_with_no_clocks_started_reads_as_empty() -> None:
    """A ticket the policy keeps no clocks for is stored with the armed timers' digest alone: its
    next event reads that as no clocks (it was a KeyError, failing every later event on the ticket)."""
    assert SlaState.from_json({"armed": "0" * 64}) == SlaState()
    assert SlaState.from_json(None) == SlaState.from_json({}) == SlaState()
