"""The example policy's promised behaviour, through `evaluate`."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

import pytest

from connector.model import (
    AddLabel,
    AddNote,
    AssignTier,
    Change,
    EventKind,
    Priority,
    RemoveLabel,
    SetPriority,
    SlaSignal,
    Status,
    TicketEvent,
    TicketState,
)
from policies import Policy, check_policy, evaluate
from tests.policies.policy_helpers import EXAMPLE, NOW, Requester, event, requester_comment


def notes(decision) -> list[str]:
    return [a.text for a in decision.actions if isinstance(a, AddNote)]


def test_example_checks_clean() -> None:
    assert check_policy(EXAMPLE) == []


def test_summary_names_the_policy(example: Policy) -> None:
    assert example.summary() == (
        "policy global-support v1: 11 rules, 4 tiers, platforms: jira, zendesk, servicenow, "
        "sla calendars: emea, apac, always, jakarta-shift, berlin-shift, new-york-shift"
    )
    assert len(example.sha256) == 64 and example.path == str(EXAMPLE)


def test_outage_is_p1_goes_straight_to_l2_with_label_and_internal_note(example: Policy) -> None:
    d = evaluate(example, event(labels={"outage"}), TicketState(), NOW)
    assert d.priority_after is Priority.P1
    assert (d.tier_before, d.tier_after) == ("L1", "L2")
    assert d.actions[:3] == (SetPriority(Priority.P1), AssignTier("L2"), AddLabel("escalated-l2"))
    [note] = [a for a in d.actions if isinstance(a, AddNote)]
    assert note.internal
    assert "total outage" in note.text and "P1" in note.text and "from L1 to L2" in note.text
    assert "outage-goes-to-l2" in note.text  # says why: the rule
    assert d.rules == ("outage-goes-to-l2", "p1-notice")  # p1-notice: the P1 protocol
    assert d.priority_why == "impact high × urgency high → P1"


def test_outage_already_at_l2_is_not_noted_again(example: Policy) -> None:
    d = evaluate(
        example,
        event(EventKind.TICKET_UPDATED, labels={"outage", "escalated-l2"}, priority=Priority.P1),
        TicketState(tier="L2"),
        NOW,
    )
    assert d.actions == () and d.tier_after == "L2"


def test_security_goes_to_l3_with_note(example: Policy) -> None:
    d = evaluate(example, event(labels={"security"}), TicketState(), NOW)
    assert d.tier_after == "L3"
    assert AssignTier("L3") in d.actions
    assert "security" in notes(d)[0] and "to L3" in notes(d)[0]
    assert "security-goes-to-l3" in d.rules


def test_security_raises_priority_one_level(example: Policy) -> None:
    d = evaluate(example, event(labels={"security"}), TicketState(), NOW)
    assert d.priority_after is Priority.P3  # low × medium = P4, raised 1
    assert d.priority_why == "impact low × urgency medium → P4; raised 1 (security risk) → P3"


def test_requester_asking_for_a_manager_goes_to_management(example: Policy) -> None:
    d = evaluate(
        example, requester_comment("I want to speak to your SUPERVISOR now"), TicketState(tier="L2"), NOW
    )
    assert (d.tier_before, d.tier_after) == ("L2", "management")
    assert AssignTier("management") in d.actions
    assert "manager" in notes(d)[0] and "from L2 to management" in notes(d)[0]


def test_agent_mentioning_a_manager_does_not_escalate(example: Policy) -> None:
    d = evaluate(example, event(EventKind.COMMENT_ADDED), TicketState(), NOW)
    assert d.tier_after == "L1" and d.rules == ()


def test_any_p1_goes_at_least_to_l2(example: Policy) -> None:
    # all customers hit (field, not the outage label) and money lost → P1 by the matrix
    fields = {"customfield_10052": "all", "customfield_10050": {"value": "Yes"}}
    d = evaluate(example, event(fields=fields), TicketState(), NOW)
    assert d.priority_after is Priority.P1
    assert d.tier_after == "L2"
    assert "p1-goes-to-l2" in d.rules and AddLabel("revenue-impact") in d.actions


def test_p1_rule_never_moves_a_higher_tier_down(example: Policy) -> None:
    fields = {"customfield_10052": "all", "customfield_10050": True}
    d = evaluate(example, event(fields=fields), TicketState(tier="L3"), NOW)
    assert d.tier_after == "L3" and not any(isinstance(a, AssignTier) for a in d.actions)


def test_priority_levels_of_the_example(example: Policy) -> None:
    many_down = evaluate(
        example, event(labels={"function-down"}, fields={"customfield_10052": "many"}), TicketState(), NOW
    )
    few_partial = evaluate(example, event(fields={"customfield_10051": "5"}), TicketState(), NOW)
    one_minor = evaluate(example, event(labels={"minor"}), TicketState(), NOW)
    assert [d.priority_after for d in (many_down, few_partial, one_minor)] == [
        Priority.P2,
        Priority.P3,
        Priority.P4,
    ]


def test_enterprise_customer_gets_at_least_p3(example: Policy) -> None:
    vip = Requester(id="r-9", name="Big Co", tier="enterprise")
    d = evaluate(example, event(requester=vip), TicketState(), NOW)
    assert d.priority_after is Priority.P3


def test_each_platform_reads_its_own_field_ids(example: Policy) -> None:
    jira_ids = {"customfield_10052": "all"}
    assert evaluate(
        example, event(platform="zendesk", fields=jira_ids), TicketState(), NOW
    ).priority_after is (
        Priority.P4  # another platform's field id is not read: the default applies
    )
    zendesk = event(platform="zendesk", fields={"360000000202": "all", "360000000200": "true"})
    servicenow = event(platform="servicenow", fields={"u_outage_scope": "all", "u_revenue_impact": "true"})
    for e in (zendesk, servicenow):
        assert evaluate(example, e, TicketState(), NOW).priority_after is Priority.P1


def test_same_input_gives_equal_decision(example: Policy) -> None:
    e = event(labels={"outage", "security", "triage"}, fields={"customfield_10050": "yes"})
    assert evaluate(example, e, TicketState(), NOW) == evaluate(example, e, TicketState(), NOW)


def test_person_changing_priority_is_kept_in_raise_only(example: Policy) -> None:
    change = Change("priority", "Highest", "Low")
    d = evaluate(
        example,
        event(
            EventKind.TICKET_UPDATED,
            labels={"outage", "escalated-l2"},
            priority=Priority.P4,
            changes=[change],
        ),
        TicketState(tier="L2"),
        NOW,
    )
    assert d.priority_after is Priority.P4
    assert not any(isinstance(a, SetPriority) for a in d.actions)
    assert "priority set by a person; raise_only keeps it" in d.priority_why


def test_unlabel_only_removes_labels_the_ticket_has(example: Policy) -> None:
    # the example has no unlabel; covered in test_policy_evaluate with its own policy
    d = evaluate(example, event(labels={"escalated-l2", "outage"}), TicketState(), NOW)
    assert AddLabel("escalated-l2") not in d.actions
    assert not any(isinstance(a, RemoveLabel) for a in d.actions)


# --- SLA time events -----------------------------------------------------------------------------------

DUE = datetime(2026, 10, 26, 9, tzinfo=UTC)  # 10:00 CET in Berlin


def timed(kind: EventKind, metric: str = "first_response", percent: int = 100, **ticket_args) -> TicketEvent:
    signal = SlaSignal(metric, timedelta(hours=4), DUE, DUE + timedelta(seconds=30), percent, "emea")
    return dataclasses.replace(event(kind, **ticket_args), sla=signal)


def test_breach_escalates_one_tier_labels_and_explains(example: Policy) -> None:
    d = evaluate(example, timed(EventKind.SLA_BREACHED, priority=Priority.P3), TicketState(tier="L1"), NOW)
    assert d.rules == ("sla-breach-escalates",) and (d.tier_before, d.tier_after) == ("L1", "L2")
    assert d.actions[:2] == (AssignTier("L2"), AddLabel("sla-breached"))
    assert notes(d) == [
        "Escalator: the first response target of 4h for this P3 ticket was missed (due 2026-10-26 10:00 CET, "
        "calendar emea), so it was moved from L1 to L2.\n"
        "Why: policy global-support v1, rule sla-breach-escalates."
    ]
    assert d.reasons[0] == (
        "sla first_response breached: target 4h on calendar emea, due 2026-10-26T09:00:00Z, "
        "fired 2026-10-26T09:00:30Z"
    )


def test_breach_at_the_top_tier_stays_there(example: Policy) -> None:
    e = timed(EventKind.SLA_BREACHED, priority=Priority.P3, labels={"sla-breached"})
    d = evaluate(example, e, TicketState(tier="management"), NOW)
    assert d.tier_after == "management" and not any(isinstance(a, AssignTier | AddLabel) for a in d.actions)
    assert "already with management, the top tier" in notes(d)[0]


def test_warning_mentions_the_assignee(example: Policy) -> None:
    jira = evaluate(
        example, timed(EventKind.SLA_WARNING, percent=75, assignee="557058:abc"), TicketState(), NOW
    )
    assert jira.rules == ("sla-warning-to-assignee",) and jira.tier_after == "L1"
    [text] = notes(jira)
    assert text.startswith(
        "[~accountid:557058:abc] Escalator: 75 % of the first response target (4h) is used"
    )
    assert "due 2026-10-26 10:00 CET" in text
    zendesk = timed(EventKind.SLA_WARNING, percent=75, assignee="9001", platform="zendesk")
    assert notes(evaluate(example, zendesk, TicketState(), NOW))[0].startswith(
        "Assignee 9001: Escalator: 75 %"
    )


def test_p1_update_reminder(example: Policy) -> None:
    e = timed(EventKind.UPDATE_DUE, metric="update_every", priority=Priority.P1)
    d = evaluate(example, e, TicketState(tier="L2"), NOW)
    assert d.rules == ("p1-hourly-update", "p1-hourly-update-reminder")
    assert [a.internal for a in d.actions if isinstance(a, AddNote)] == [True]
    assert "no public update for 4h" in notes(d)[0]
    assert (
        evaluate(example, timed(EventKind.UPDATE_DUE, priority=Priority.P2), TicketState(), NOW).rules == ()
    )


def test_time_rules_ignore_ticket_events(example: Policy) -> None:
    d = evaluate(example, event(EventKind.TICKET_UPDATED, priority=Priority.P3), TicketState(), NOW)
    assert not {"sla-breach-escalates", "sla-warning-to-assignee"} & set(d.rules)


@pytest.mark.parametrize("status", [Status.RESOLVED, Status.CLOSED])
def test_no_rule_acts_on_a_resolved_or_closed_ticket(example: Policy, status: Status) -> None:
    fields = {"customfield_10052": "all", "customfield_10050": True}
    for labels in ({"outage"}, {"security"}, set()):
        d = evaluate(example, event(EventKind.TICKET_UPDATED, labels=labels, fields=fields, status=status),
                     TicketState(), NOW)  # fmt: skip
        assert d.rules == () and d.tier_after == "L1", labels
    asks = requester_comment("I want your manager", status=status)
    assert evaluate(example, asks, TicketState(), NOW).rules == ()


def test_a_p1_note_says_the_priority_came_from_the_platform_not_the_matrix(example: Policy) -> None:
    # Already P1 on the platform; the matrix gives P4 (impact low, urgency medium): raise_only keeps P1.
    d = evaluate(example, event(EventKind.TICKET_UPDATED, priority=Priority.P1), TicketState(), NOW)
    (note,) = notes(d)
    assert "p1-goes-to-l2" in d.rules
    assert "P1 (as the ticket already showed it)" in " ".join(note.split()) and "impact" not in note


def test_a_p1_note_from_the_matrix_says_impact_and_urgency(example: Policy) -> None:
    fields = {"customfield_10052": "all", "customfield_10050": True}
    (note,) = notes(evaluate(example, event(fields=fields), TicketState(), NOW))
    assert "P1 (impact high, urgency high)" in " ".join(note.split())


def test_a_p1_note_after_a_person_chose_it_says_so(example: Policy) -> None:
    change = Change("priority", "Low", "Highest")
    d = evaluate(
        example, event(EventKind.TICKET_UPDATED, changes=[change], priority=Priority.P1), TicketState(), NOW
    )
    assert "P1 (set by a person)" in " ".join(notes(d)[0].split())


def test_an_outage_whose_priority_is_kept_does_not_claim_p1(example: Policy) -> None:
    e = event(EventKind.TICKET_UPDATED, labels={"outage"})
    unknown = dataclasses.replace(e, ticket=dataclasses.replace(e.ticket, platform_priority="Blocker"))
    d = evaluate(example, unknown, TicketState(), NOW)
    (note,) = notes(d)
    assert d.tier_after == "L2" and d.priority_after is None
    assert "its priority is left as the ticket shows it" in " ".join(note.split())
