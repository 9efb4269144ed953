"""Follow the sun in the policy: which team a tier's ticket goes to at an instant, when a holder's ticket
is handed over, and what `policy check` says about a rota. The example policy's L2 is worked from
Jakarta, Berlin and New York (each team `mon-sun`, on its own public holidays)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from connector.model import AssignTier, Decision, Priority
from connector.plan import make_plan
from platforms.base import CAP_ASSIGNEE, CAP_GROUP
from policies import Policy
from policies.follow_the_sun import handover_due
from tests.policies.policy_helpers import BASE_POLICY, check, line, policy_source, ticket


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def rota(example: Policy, platform: str = "jira"):
    return example.platforms[platform].tiers["L2"].rota


@pytest.mark.parametrize(
    ("when", "team"),
    [("2026-11-03 03:00", "apac"), ("2026-11-03 11:00", "emea"), ("2026-11-03 19:00", "amer")],
)
def test_a_weekday_escalation_goes_to_the_team_that_is_open(example: Policy, when: str, team: str) -> None:
    chosen = rota(example).choose(at(when))
    assert chosen.team.name == team
    assert chosen.why.startswith(f"{team} is open")


@pytest.mark.parametrize("platform", ["jira", "zendesk", "servicenow"])
def test_the_plan_assigns_the_open_team_on_every_platform(example: Policy, platform: str) -> None:
    mapping = example.platforms[platform]
    decision = Decision(Priority.P1, Priority.P1, "", "L1", "L2", actions=(AssignTier("L2"),))
    night_in_europe = at("2026-11-03 03:00")
    plan = make_plan(decision, ticket(platform=platform), mapping, {CAP_ASSIGNEE, CAP_GROUP}, night_in_europe)
    apac = rota(example, platform).team("apac").target
    assert (plan.assignee, plan.group) == (apac.assignee, apac.group)
    with pytest.raises(ValueError, match="follows the sun"):
        make_plan(decision, ticket(platform=platform), mapping, {CAP_ASSIGNEE, CAP_GROUP})


def test_the_ticket_tier_is_read_back_from_any_team(example: Policy) -> None:
    jira = example.platforms["jira"]
    for team in rota(example).teams:
        assert jira.tier_of(ticket(assignee=team.target.assignee)) == "L2"
        assert rota(example).holder(ticket(assignee=team.target.assignee)) == team
    assert rota(example).holder(ticket(assignee="someone-else")) is None


@pytest.mark.parametrize(
    ("holder", "now", "due", "to"),
    [
        ("apac", "2026-11-03 03:00", "2026-11-03 09:00", "emea"),  # 16:00 in Jakarta; Berlin works
        ("emea", "2026-11-03 11:00", "2026-11-03 17:00", "amer"),  # 18:00 in Berlin; New York works
        ("amer", "2026-11-03 19:00", "2026-11-04 00:00", "apac"),  # 19:00 in New York; Jakarta works
    ],
)
def test_each_region_hands_over_at_its_close(example: Policy, holder, now, due, to) -> None:
    r = rota(example)
    assert handover_due(r, r.team(holder), at(now)) == at(due)
    assert handover_due(r, r.team(holder), at(due)) == at(due)  # stable when asked again at the instant
    assert r.choose(at(due)).team.name == to


def test_a_close_follows_daylight_saving_time(example: Policy) -> None:
    r = rota(example)
    emea, amer = r.team("emea"), r.team("amer")
    # Berlin leaves summer time on Sunday 25 October 2026: 18:00 there is 16:00 UTC before, 17:00 after.
    assert handover_due(r, emea, at("2026-10-24 10:00")) == at("2026-10-24 16:00")
    assert handover_due(r, emea, at("2026-10-25 10:00")) == at("2026-10-25 17:00")
    # New York a week later: 19:00 there is 23:00 UTC on Saturday 31 October, 00:00 UTC a day later.
    assert handover_due(r, amer, at("2026-10-31 15:00")) == at("2026-10-31 23:00")
    assert handover_due(r, amer, at("2026-11-01 15:00")) == at("2026-11-02 00:00")
    # In the week between, Berlin is on winter time and New York still on summer time.
    assert r.choose(at("2026-10-26 13:30")).team.name == "emea"
    assert r.choose(at("2026-10-26 17:30")).team.name == "amer"


def test_a_public_holiday_hands_over_to_the_region_that_opens_next(example: Policy) -> None:
    r = rota(example)
    # Easter Monday (6 April 2026) is a holiday in Germany only: at Jakarta's close Berlin is shut,
    # so the ticket goes to New York, which opens first (09:00 EDT = 13:00 UTC).
    assert handover_due(r, r.team("apac"), at("2026-04-06 03:00")) == at("2026-04-06 09:00")
    choice = r.choose(at("2026-04-06 09:00"))
    assert choice.team.name == "amer" and "amer opens first" in choice.why
    # Thanksgiving (26 November 2026) in the US: Berlin's close hands over to Jakarta.
    assert handover_due(r, r.team("emea"), at("2026-11-26 11:00")) == at("2026-11-26 17:00")
    assert r.choose(at("2026-11-26 17:00")).team.name == "apac"
    # A ticket escalated on a holiday goes to the open team, not the closed one.
    assert r.choose(at("2026-04-06 11:00")).team.name == "amer"


def test_a_holder_that_closed_while_the_ticket_waited_hands_over_at_once(example: Policy) -> None:
    r = rota(example)
    # Jakarta closed at 09:00 UTC while the ticket was paused: due at that close, past, so it fires at
    # once; asked again later it is the same instant (a dry run's timer is not fired over and over).
    assert handover_due(r, r.team("apac"), at("2026-11-03 12:00")) == at("2026-11-03 09:00")
    assert handover_due(r, r.team("apac"), at("2026-11-03 12:05")) == at("2026-11-03 09:00")


# --- a rota of two teams that leave the night uncovered --------------------------------------------------

SLA = """\
sla:
  calendars:
    berlin: {timezone: Europe/Berlin, hours: mon-fri 08:00-18:00}
    jakarta: {timezone: Asia/Jakarta, hours: mon-fri 09:00-17:00}
  pick_calendar: berlin
  targets:
    P1: {first_response: 1h}
"""


def policy_with(l2: str, *, sla: str = SLA) -> str:
    return policy_source().replace("      L2: {assignee: a-l2, group: g-l2}\n", l2) + sla


TWO_TEAMS = """\
      L2:
        follow_the_sun:
          - {calendar: jakarta, assignee: a-apac}
          - {calendar: berlin, assignee: a-emea}
"""


def test_no_team_at_night_is_a_warning_naming_the_hours(tmp_path) -> None:
    text = policy_with(TWO_TEAMS)
    (problem,) = check(tmp_path, text)
    assert not problem.is_error and problem.line == line(text, "follow_the_sun:")
    assert "platforms.jira.tiers.L2.follow_the_sun: no team works" in problem.message
    # Berlin ends 17:00 UTC in winter, 16:00 in summer; Jakarta starts 02:00 UTC. Weekends: nobody.
    assert "fri 16:00-mon 02:00, mon 16:00-tue 02:00" in problem.message
    assert "thu 16:00-fri 02:00 (UTC" in problem.message


def test_the_team_that_opens_first_takes_the_night(tmp_path) -> None:
    from policies import load_policy
    from tests.policies.policy_helpers import write_policy

    policy = load_policy(write_policy(tmp_path, policy_with(TWO_TEAMS)))
    r = policy.platforms["jira"].tiers["L2"].rota
    choice = r.choose(at("2026-11-06 20:00"))  # Friday night: Jakarta opens Monday 09:00 WIB
    assert choice.team.name == "jakarta" and "opens first (Mon 09:00 Asia/Jakarta)" in choice.why


def test_a_named_fallback_takes_the_hours_no_team_works_and_silences_the_warning(tmp_path) -> None:
    from policies import load_policy
    from tests.policies.policy_helpers import write_policy

    text = policy_with(TWO_TEAMS + "        fallback: berlin\n")
    policy = load_policy(write_policy(tmp_path, text))
    assert policy.warnings == ()
    r = policy.platforms["jira"].tiers["L2"].rota
    choice = r.choose(at("2026-11-06 20:00"))
    assert choice.team.name == "berlin" and "fallback" in choice.why
    assert handover_due(r, r.team("berlin"), at("2026-11-06 12:00")) is None  # it keeps its tickets


def test_an_unknown_calendar_is_an_error_at_its_line(tmp_path) -> None:
    text = policy_with(TWO_TEAMS.replace("calendar: berlin", "calendar: berlni"))
    (problem,) = check(tmp_path, text)
    assert problem.is_error and problem.line == line(text, "berlni")
    assert problem.message == (
        "platforms.jira.tiers.L2.follow_the_sun[1].calendar: unknown calendar 'berlni' "
        "(calendars: berlin, jakarta)"
    )
    assert str(problem).startswith(f"{tmp_path / 'policy.yaml'}:{problem.line}: platforms.jira")


def test_a_rota_without_an_sla_section_is_an_error(tmp_path) -> None:
    text = policy_with(TWO_TEAMS, sla="")
    problems = check(tmp_path, text)
    assert [p.line for p in problems] == [line(text, "jakarta, assignee"), line(text, "berlin, assignee")]
    assert "this policy has no sla section" in problems[0].message


@pytest.mark.parametrize(
    ("l2", "marker", "message"),
    [
        (TWO_TEAMS + "        fallback: nobody\n", "fallback: nobody",
         "platforms.jira.tiers.L2.fallback: 'nobody' is not one of its teams (teams: jakarta, berlin)"),
        (TWO_TEAMS.replace("berlin, assignee", "jakarta, assignee"), "- {calendar: jakarta, assignee: a-emea",
         "two teams are called 'jakarta'"),
        ("      L2: {assignee: x, follow_the_sun: [{calendar: berlin, assignee: y}]}\n", "L2:",
         "names its assignee or group per team"),
        ("      L2: {follow_the_sun: [{calendar: berlin}]}\n", "L2:",
         "a follow_the_sun team needs an 'assignee' or a 'group'"),
        ("      L2: {assignee: x, fallback: berlin}\n", "L2:", "'fallback' names a team of 'follow_the_sun'"),
    ],
)  # fmt: skip
def test_rota_mistakes_are_errors_at_their_line(tmp_path, l2: str, marker: str, message: str) -> None:
    text = policy_with(l2)
    errors = [p for p in check(tmp_path, text) if p.is_error]
    assert len(errors) == 1, errors
    assert errors[0].line == line(text, marker) and message in errors[0].message


def test_team_ids_follow_the_platform_rules(tmp_path) -> None:
    text = (
        BASE_POLICY.replace("  jira:\n", "  zendesk:\n")
        .format(
            rules="  - {name: noop, on: comment.added, when: 'false', then: [{label: never}]}",
            mode="raise_only",
            raises=" []",
        )
        .replace("P1: Highest, P2: High, P3: Medium, P4: Low", "P1: urgent, P2: high, P3: normal, P4: low")
    )
    teams = TWO_TEAMS.replace("assignee", "group")
    text = text.replace("      L2: {assignee: a-l2, group: g-l2}\n", teams) + SLA
    problems = [p for p in check(tmp_path, text) if p.is_error and "follow_the_sun" in p.message]
    assert [p.message for p in problems] == [
        "platforms.zendesk.tiers.L2.follow_the_sun[0].group: a Zendesk group id is a number (got 'a-apac')",
        "platforms.zendesk.tiers.L2.follow_the_sun[1].group: a Zendesk group id is a number (got 'a-emea')",
    ]


def test_the_worker_judgement_records_which_team_and_why(example: Policy) -> None:
    from connector.judgement import judge
    from connector.model import TicketState
    from connector.store.tickets import StoredTicket
    from tests.policies.policy_helpers import event

    verdict = judge(
        example, example.platforms["jira"], {CAP_ASSIGNEE}, StoredTicket(TicketState(), None),
        event(labels={"outage"}, assignee="557058:l1-queue-account-id"), at("2026-11-03 19:00"),
    )  # fmt: skip
    assert verdict.plan.assignee == "557058:l2-amer-account-id"
    assert verdict.decision.reasons[-1] == (
        "L2 follows the sun: to amer, amer is open (Tue 14:00 America/New_York)"
    )


# --- handover, pure ---------------------------------------------------------------------------------------


def test_calendar_periods_open_close_and_last_close(example: Policy) -> None:
    berlin = example.sla.calendars["berlin-shift"]
    assert berlin.next_open(at("2026-11-03 03:00")) == at("2026-11-03 07:00")
    assert berlin.next_open(at("2026-11-03 08:00")) == at("2026-11-03 08:00")  # open: now
    assert berlin.next_close(at("2026-11-03 08:00")) == at("2026-11-03 17:00")
    assert berlin.last_close(at("2026-11-03 16:59")) == at("2026-11-02 17:00")
    assert berlin.last_close(at("2026-11-03 17:00")) == at("2026-11-03 17:00")
    assert berlin.next_open(at("2026-04-06 03:00")) == at("2026-04-07 06:00")  # Easter Monday: closed
    assert example.sla.calendars["always"].next_close(at("2026-11-03 03:00")) is None


def _clocks(example: Policy, created: datetime, *comments):
    from connector.model import Comment, EventKind, Person, TicketEvent
    from policies import sla
    from policies.sla import SlaState

    t = ticket(priority=Priority.P2, assignee="557058:l2-emea-account-id")
    clocks = sla.advance(
        example,
        SlaState(),
        TicketEvent(EventKind.TICKET_CREATED, t, occurred_at=created),
        Priority.P2,
        created,
    )
    for when, text, by_requester in comments:
        author = Person(
            "cust-1" if by_requester else "agent-7", "Ada Customer" if by_requester else "Sam Agent"
        )
        event = TicketEvent(
            EventKind.COMMENT_ADDED,
            t,
            comment=Comment("c", text, author, True, by_requester),
            occurred_at=when,
        )
        clocks = sla.advance(example, clocks, event, Priority.P2, when)
    return t, clocks


def test_a_handover_note_summarises_the_ticket_for_the_receiving_team(example: Policy) -> None:
    from policies import handover

    t, clocks = _clocks(
        example,
        at("2026-11-03 15:00"),
        (at("2026-11-03 15:20"), "We are looking into the failed payment now.", False),
    )
    found = handover.decide(
        example, example.platforms["jira"], "L2", t, clocks, at("2026-11-03 17:00"), at("2026-11-03 17:00")
    )
    assert [type(a).__name__ for a in found.actions] == ["HandOver", "AddNote"]
    assert found.actions[0].team == "amer" and found.actions[1].internal
    assert found.reason.startswith("handover L2: emea closed at 2026-11-03 17:00 UTC; to amer, amer is open")
    note = found.actions[1].text
    assert (
        "Escalator handover: emea → amer. emea's day ended at Tue 03 Nov 18:00 CET (2026-11-03 17:00 UTC)"
        in note
    )
    assert "Priority P2, tier L2, status open." in note
    assert "- first response (1h): met at Tue 03 Nov 10:20 EST" in note  # in New York's time
    assert "- resolution (8h): due Wed 04 Nov" in note
    assert "Last public reply: Tue 03 Nov 10:20 EST, by agent Sam Agent: “We are looking into" in note


def test_a_handover_timer_is_armed_only_for_open_unpaused_tickets_of_a_team(example: Policy) -> None:
    import dataclasses

    from connector.model import Status
    from policies import handover
    from policies.sla import SlaState

    t, clocks = _clocks(example, at("2026-11-03 15:00"))
    armed = handover.timer(example, "jira", "L2", t, clocks, at("2026-11-03 15:00"))
    assert (armed.key, armed.kind.value, armed.team, armed.due) == (
        "handover",
        "handover",
        "emea",
        at("2026-11-03 17:00"),
    )
    assert handover.timer(example, "jira", "L3", t, clocks, at("2026-11-03 15:00")) is None  # not a rota tier
    paused = dataclasses.replace(clocks, paused_since=at("2026-11-03 15:30"))
    assert handover.timer(example, "jira", "L2", t, paused, at("2026-11-03 16:00")) is None
    done = dataclasses.replace(t, status=Status.RESOLVED)
    assert handover.timer(example, "jira", "L2", done, clocks, at("2026-11-03 16:00")) is None
    no_clocks = SlaState()  # what the worker keeps of a ticket outside the policy's scope
    assert handover.timer(example, "jira", "L2", t, no_clocks, at("2026-11-03 16:00")) is None
    elsewhere = dataclasses.replace(t, assignee="someone-who-took-it")
    assert handover.timer(example, "jira", "L2", elsewhere, clocks, at("2026-11-03 16:00")) is None


def test_a_handover_rule_without_a_follow_the_sun_tier_is_a_warning(tmp_path) -> None:
    text = policy_source("  - {name: h, on: [ticket.created, handover], then: [{label: passed-on}]}") + SLA
    (problem,) = check(tmp_path, text)
    assert not problem.is_error and problem.line == line(text, "name: h")
    assert problem.message == "rule 'h': 'handover' never happens: no tier of platforms follows the sun"
    assert [p for p in check(tmp_path, policy_with(TWO_TEAMS + "        fallback: berlin\n").replace(
        "then: [{label: never}]", "then: [{label: never}]}\n  - {name: h, on: handover, then: [{label: x}]"
    )) if "never happens" in p.message] == []  # fmt: skip
