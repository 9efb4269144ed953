"""Evaluation semantics on small purpose-built policies."""

from __future__ import annotations

from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from connector.model import (
    AddLabel,
    AddNote,
    AssignGroup,
    AssignTier,
    AssignUser,
    Change,
    EventKind,
    Priority,
    RemoveLabel,
    SetPriority,
    TicketState,
)
from policies import Policy, evaluate, load_policy
from tests.policies.policy_helpers import NOW, event, policy_source, write_policy


def load(tmp_path: Path, rules: str = "", **kwargs: str) -> Policy:
    return load_policy(write_policy(tmp_path, policy_source(rules, **kwargs)))


# --- priority and modes -------------------------------------------------------------------------------


def test_raise_only_never_lowers(tmp_path: Path) -> None:
    policy = load(tmp_path)
    d = evaluate(policy, event(labels={"minor"}, priority=Priority.P1), TicketState(), NOW)
    assert d.priority_after is Priority.P1
    assert d.actions == ()
    assert "raise_only keeps P1" in d.priority_why


def test_raise_only_raises(tmp_path: Path) -> None:
    d = evaluate(load(tmp_path), event(labels={"outage", "urgent"}, priority=Priority.P3), TicketState(), NOW)
    assert (d.priority_before, d.priority_after) == (Priority.P3, Priority.P1)
    assert d.actions == (SetPriority(Priority.P1),)


def test_unknown_priority_is_always_set(tmp_path: Path) -> None:
    d = evaluate(load(tmp_path), event(priority=None), TicketState(), NOW)
    assert d.priority_after is Priority.P4 and d.actions == (SetPriority(Priority.P4),)


def test_person_changing_priority_is_kept(tmp_path: Path) -> None:
    e = event(
        EventKind.TICKET_UPDATED,
        labels={"outage", "urgent"},
        priority=Priority.P3,
        changes=[Change("priority", "High", "Medium")],
    )
    d = evaluate(load(tmp_path), e, TicketState(), NOW)
    assert d.priority_after is Priority.P3 and d.actions == ()
    assert d.priority_why.endswith("priority set by a person; raise_only keeps it")


def test_pinned_priority_is_kept(tmp_path: Path) -> None:
    e = event(EventKind.TICKET_UPDATED, labels={"outage", "urgent"}, priority=Priority.P4)
    d = evaluate(load(tmp_path), e, TicketState(priority_pinned=True), NOW)
    assert d.priority_after is Priority.P4 and d.actions == ()


def test_enforce_lowers_and_ignores_pins(tmp_path: Path) -> None:
    policy = load(tmp_path, mode="enforce")
    d = evaluate(
        policy, event(labels={"minor"}, priority=Priority.P1), TicketState(priority_pinned=True), NOW
    )
    assert d.priority_after is Priority.P4 and d.actions == (SetPriority(Priority.P4),)


def test_raises_add_up_and_cap_at_p1(tmp_path: Path) -> None:
    raises = (
        "    - {when: '\"security\" in ticket.labels', by: 2, why: security}\n"
        "    - {when: 'ticket.fields.vip', by: 3, why: vip}"
    )
    policy = load(tmp_path, raises=raises)
    d = evaluate(policy, event(labels={"security"}, fields={"customfield_1": "yes"}), TicketState(), NOW)
    assert d.priority_after is Priority.P1
    assert d.priority_why == "impact low × urgency medium → P4; raised 2 (security) → P2; raised 3 (vip) → P1"


def test_raise_conditions_see_the_matrix_priority(tmp_path: Path) -> None:
    policy = load(
        tmp_path, raises='    - {when: \'decision.priority == "P4" && decision.impact == "low"\', by: 1}'
    )
    assert evaluate(policy, event(), TicketState(), NOW).priority_after is Priority.P3
    assert evaluate(policy, event(labels={"many"}), TicketState(), NOW).priority_after is Priority.P3


def test_rule_priority_follows_the_mode(tmp_path: Path) -> None:
    rules = "  - {name: to-p2, on: ticket.created, then: [{priority: P2}]}"
    raise_only, enforce = load(tmp_path, rules), load(tmp_path / "..", rules, mode="enforce")
    assert evaluate(raise_only, event(priority=Priority.P1), TicketState(), NOW).priority_after is Priority.P1
    assert evaluate(raise_only, event(priority=Priority.P3), TicketState(), NOW).priority_after is Priority.P2
    assert evaluate(enforce, event(priority=Priority.P1), TicketState(), NOW).priority_after is Priority.P2


def test_rules_see_the_priority_decided_so_far(tmp_path: Path) -> None:
    rules = (
        "  - {name: p1, on: ticket.created, when: '\"x\" in ticket.labels', then: [{priority: P1}]}\n"
        "  - {name: p1-to-l2, on: ticket.created, when: 'decision.priority == \"P1\"',\n"
        "     then: [{escalate: L2}]}"
    )
    d = evaluate(load(tmp_path, rules), event(labels={"x"}), TicketState(), NOW)
    assert d.rules == ("p1", "p1-to-l2") and d.tier_after == "L2"


# --- rules and escalation -----------------------------------------------------------------------------

ESCALATIONS = """\
  - {name: next, on: ticket.created, when: '"next" in ticket.labels', then: [{escalate: next}]}
  - {name: to-l2, on: ticket.created, when: '"l2" in ticket.labels', then: [{escalate: L2}]}
  - {name: to-l3, on: ticket.created, when: '"l3" in ticket.labels', then: [{escalate: L3}]}
  - {name: to-l1, on: ticket.created, when: '"l1" in ticket.labels', then: [{escalate: L1}]}
"""


def test_escalate_next_moves_one_up(tmp_path: Path) -> None:
    policy = load(tmp_path, ESCALATIONS)
    assert evaluate(policy, event(labels={"next"}), TicketState(), NOW).tier_after == "L2"
    assert evaluate(policy, event(labels={"next"}), TicketState(tier="L3"), NOW).tier_after == "management"


def test_escalate_next_stays_at_the_top(tmp_path: Path) -> None:
    d = evaluate(load(tmp_path, ESCALATIONS), event(labels={"next"}), TicketState(tier="management"), NOW)
    assert d.tier_after == "management" and d.actions[-1:] != (AssignTier("management"),)


def test_highest_escalation_wins(tmp_path: Path) -> None:
    d = evaluate(load(tmp_path, ESCALATIONS), event(labels={"l3", "l2", "next"}), TicketState(), NOW)
    assert d.tier_after == "L3"
    assert [a for a in d.actions if isinstance(a, AssignTier)] == [AssignTier("L3")]


def test_escalation_never_moves_down(tmp_path: Path) -> None:
    d = evaluate(load(tmp_path, ESCALATIONS), event(labels={"l1", "l2"}), TicketState(tier="L3"), NOW)
    assert (d.tier_before, d.tier_after) == ("L3", "L3")
    assert not any(isinstance(a, AssignTier) for a in d.actions)


def test_rules_fire_only_on_their_event_kinds(tmp_path: Path) -> None:
    d = evaluate(
        load(tmp_path, ESCALATIONS), event(EventKind.TICKET_UPDATED, labels={"l3"}), TicketState(), NOW
    )
    assert d.rules == () and d.tier_after == "L1"


def test_stop_skips_later_rules(tmp_path: Path) -> None:
    rules = (
        "  - {name: first, on: ticket.created, stop: true, then: [{label: a}]}\n"
        "  - {name: second, on: ticket.created, then: [{label: b}]}"
    )
    d = evaluate(load(tmp_path, rules), event(), TicketState(), NOW)
    assert d.rules == ("first",)
    assert AddLabel("a") in d.actions and AddLabel("b") not in d.actions


def test_stop_only_applies_when_the_rule_fires(tmp_path: Path) -> None:
    rules = (
        "  - {name: first, on: ticket.created, when: 'false', stop: true, then: [{label: a}]}\n"
        "  - {name: second, on: ticket.created, then: [{label: b}]}"
    )
    assert evaluate(load(tmp_path, rules), event(), TicketState(), NOW).rules == ("second",)


def test_actions_in_order_deduplicated_and_minus_what_the_ticket_shows(tmp_path: Path) -> None:
    rules = """\
  - name: one
    on: ticket.created
    then: [{label: new}, {label: have}, {unlabel: [triage, absent]}, {assign: {user: u-1}},
           {note: "n {{ rule.name }}"}]
  - name: two
    on: ticket.created
    then: [{labels: [new, other]}, {assign: {group: g-9}},
           {note: {text: "public {{ ticket.key }}", internal: false}}]
"""
    d = evaluate(
        load(tmp_path, rules), event(labels={"have", "triage"}, priority=Priority.P4), TicketState(), NOW
    )
    assert d.actions == (
        AddLabel("new"),
        RemoveLabel("triage"),
        AssignUser("u-1"),
        AddNote("n one", internal=True),
        AddLabel("other"),
        AssignGroup("g-9"),
        AddNote("public SHOP-1", internal=False),
    )


def test_note_context(tmp_path: Path) -> None:
    template = (
        "{{ decision.priority_before }}>{{ decision.priority }} "
        "{{ decision.tier_before }}>{{ decision.tier }} "
        "{{ decision.impact }}/{{ decision.urgency }} {{ rule.name }} "
        "{{ policy.name }} v{{ policy.version }} "
        "{{ event.kind }} {{ comment.text }}|{{ ticket.requester.name }}"
    )
    rules = f"  - {{name: r, on: ticket.created, then: [{{escalate: L2}}, {{note: '{template}'}}]}}"
    d = evaluate(
        load(tmp_path, rules), event(labels={"outage", "urgent"}, priority=Priority.P2), TicketState(), NOW
    )
    note = d.actions[-1]
    assert note == AddNote("P2>P1 L1>L2 high/high r test-policy v7 ticket.created |Ada Customer")


def test_runtime_cel_error_is_no_match_with_a_reason(tmp_path: Path) -> None:
    # fine on the load-time sample (no labels: && short-circuits), a KeyError on this event (no status change)
    when = '"x" in ticket.labels && event.changes.status.after == "open"'
    rules = (
        f"  - {{name: bad, on: ticket.created, when: '{when}', then: [{{label: x}}]}}\n"
        "  - {name: good, on: ticket.created, then: [{label: y}]}"
    )
    d = evaluate(load(tmp_path, rules), event(labels={"x"}), TicketState(), NOW)
    assert d.rules == ("good",)
    [reason] = [r for r in d.reasons if "could not be evaluated" in r]
    assert reason.startswith(f"rule 'bad': condition {when!r}")
    assert "KeyError" in reason and "treated as no match" in reason


def test_event_variables(tmp_path: Path) -> None:
    rules = (
        "  - {name: status, on: ticket.updated, "
        'when: \'"status" in event.changed && event.changes.status.after == "Done" && '
        'event.changes.status.before == "" && !event.actor.is_requester\', then: [{label: done}]}'
    )
    e = event(EventKind.TICKET_UPDATED, changes=[Change("status", None, "Done")])
    assert evaluate(load(tmp_path, rules), e, TicketState(), NOW).rules == ("status",)


def test_fields_are_read_through_the_platform_mapping(tmp_path: Path) -> None:
    policy = load(tmp_path, raises="    - {when: 'ticket.fields.vip', by: 1}")
    for raw, vip in [
        ({"value": "Yes"}, True),
        ("true", True),
        (1, True),
        ("no", False),
        ("garbage", False),
        ([{"value": "Yes"}], True),
        (None, False),
    ]:
        d = evaluate(policy, event(fields={"customfield_1": raw}), TicketState(), NOW)
        assert (d.priority_after is Priority.P3) is vip, raw


def test_same_input_twice_gives_equal_decisions(tmp_path: Path) -> None:
    policy = load(tmp_path, ESCALATIONS)
    e = event(labels={"l3", "next", "outage"})
    first, second = (evaluate(policy, e, TicketState(tier="L2"), NOW) for _ in range(2))
    assert first == second


# --- property -----------------------------------------------------------------------------------------

LABELS = ["outage", "many", "urgent", "minor", "function-down", "security", "cosmetic", "partial"]
PRIORITIES = st.one_of(st.none(), st.sampled_from(list(Priority)))


@settings(max_examples=200, deadline=None)
@given(
    labels=st.sets(st.sampled_from(LABELS)),
    current=PRIORITIES,
    scope=st.sampled_from(["", "all", "many", "few", "one"]),
    revenue=st.booleans(),
    pinned=st.booleans(),
    person_set=st.booleans(),
)
def test_raise_only_never_lowers_property(
    example: Policy,
    labels: set[str],
    current: Priority | None,
    scope: str,
    revenue: bool,
    pinned: bool,
    person_set: bool,
) -> None:
    changes = [Change("priority", "High", "Low")] if person_set else []
    fields = {"customfield_10052": scope, "customfield_10050": revenue}
    e = event(EventKind.TICKET_UPDATED, labels=labels, priority=current, fields=fields, changes=changes)
    d = evaluate(example, e, TicketState(priority_pinned=pinned), NOW)
    assert d.priority_before is current
    if current is not None:
        assert d.priority_after is not None and not current.outranks(d.priority_after)
    if pinned or person_set:
        assert d.priority_after is current


def test_initial_priority_of_a_created_ticket_is_not_a_persons_choice(tmp_path: Path) -> None:
    # Jira's issue_created changelog lists every initial field, priority included
    e = event(labels={"outage", "urgent"}, priority=Priority.P2, changes=[Change("priority", None, "High")])
    d = evaluate(load(tmp_path), e, TicketState(), NOW)
    assert d.priority_after is Priority.P1 and d.actions == (SetPriority(Priority.P1),)
