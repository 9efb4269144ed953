"""The CEL activation keeps only what the conditions read, and decides exactly as the full one does."""

from __future__ import annotations

import dataclasses
import itertools

from connector.model import Change, Comment, EventKind, Person, Priority, Status, TicketState
from policies import Policy, evaluate, load_policy, sla
from policies.activation import EVERYTHING, WHOLE, PolicyReads, Reads
from policies.conditions import compile_condition
from policies.variables import ROOTS_FOR_RULES, variable_schema, zero_sample
from tests.policies.policy_helpers import NOW, REQUESTER, event, policy_source, write_policy


def condition(source: str):
    schema = variable_schema(())
    decision = {"priority": "", "impact": "", "urgency": "", "priority_from": ""}
    sample = {**zero_sample(()), "decision": decision}
    compiled, errors = compile_condition(source, "test", ROOTS_FOR_RULES, schema, sample)
    assert compiled is not None, errors
    return compiled, sample


def test_the_example_reads_a_few_leaves_not_the_whole_ticket(example: Policy) -> None:
    reads = example.reads.event("ticket.created")
    tree = reads.tree
    assert tree is not None
    assert tree["ticket"]["labels"] is WHOLE
    assert tree["ticket"]["requester"] == {"tier": WHOLE, "region": WHOLE}
    assert "sla" not in tree  # no condition of the example reads the SLA signal: it is never converted
    assert "title" not in tree["ticket"] and "url" not in tree["ticket"]
    selected = reads.select({"ticket": {"title": "x", "labels": ["a"], "tier": "L1"}, "sla": {}})
    assert selected == {"ticket": {"labels": ["a"], "tier": "L1"}}


def test_an_event_converts_only_what_the_rules_on_its_kind_read(example: Policy) -> None:
    created, commented = example.reads.event("ticket.created").tree, example.reads.event("comment.added").tree
    assert created is not None and commented is not None
    # Only the manager rule (on comment.added) reads the comment; only p1-notice the event's changes.
    assert "comment" not in created and created["event"] == {"kind": WHOLE, "changed": WHOLE}
    assert commented["comment"] == {"by_requester": WHOLE, "text": WHOLE} and "event" not in commented
    # The priority's conditions run on every event, and the raise reads the decision.
    assert commented["decision"] == {"priority": WHOLE} and commented["ticket"]["labels"] is WHOLE
    assert example.reads.event("not.a.kind").everything


def test_the_clocks_and_the_scope_convert_only_what_their_conditions_read(example: Policy) -> None:
    assert example.reads.clocks.tree == {"ticket": {"requester": {"region": WHOLE}, "status": WHOLE}}
    assert example.reads.scope.tree == {}  # the example has no scope: nothing is converted


def test_a_policys_reads_are_its_own(example: Policy, tmp_path) -> None:
    rules = "  - {name: by-title, on: ticket.created, when: 'ticket.title == \"x\"', then: [{label: t}]}\n"
    other = load_policy(str(write_policy(tmp_path, policy_source(rules))))
    assert other.reads.event("ticket.created").tree["ticket"]["title"] is WHOLE
    assert "title" not in example.reads.event("ticket.created").tree["ticket"]
    assert "fields" not in other.reads.event("ticket.created").tree["ticket"]


def test_each_condition_is_proved_on_its_own_so_only_its_groups_read_everything() -> None:
    found, sample = condition('ticket.status == ""')
    missed = dataclasses.replace(found, source='ticket.priority == ""')  # the scanner "missed" status
    good, _ = condition('"x" in ticket.labels')
    reads = PolicyReads.of({"a": [good, missed], "b": [good]}, [], [found], sample)
    assert reads.event("a") is EVERYTHING
    assert reads.event("b").tree == {"ticket": {"labels": WHOLE}}
    assert reads.clocks.tree == {"ticket": {"status": WHOLE}} and reads.scope.tree == {}


def test_a_root_or_map_read_whole_is_kept_whole() -> None:
    indexed, sample = condition('ticket["labels"].size() > 0 && "priority" in event.changes')
    reads = Reads.of([indexed], sample)
    assert reads.tree == {"ticket": WHOLE, "event": {"changes": WHOLE}}


def test_a_path_the_scanner_cannot_see_makes_the_policy_read_everything() -> None:
    found, sample = condition('ticket.status == ""')
    # As if the scanner had missed what the condition reads: the proof on the zero sample catches it.
    missed = dataclasses.replace(found, source='ticket.priority == ""')
    assert Reads.of([missed], sample).everything


def test_decisions_equal_those_of_the_full_activation(example: Policy) -> None:
    """Every combination of what the example's conditions look at, judged both ways."""
    full = reading_everything(example)
    manager = Comment(id="c", text="I want a manager", author=Person(REQUESTER.id, "Ada"), by_requester=True)
    cases = itertools.product(
        tuple(EventKind),
        ((), ("outage",), ("security",), ("minor", "function-down")),
        (None, Priority.P1, Priority.P4),
        (Status.OPEN, Status.RESOLVED),
        ((), (Change("priority", "Low", "High"),)),
    )
    for kind, labels, priority, status, changes in cases:
        comment = manager if kind is EventKind.COMMENT_ADDED else None
        e = event(kind, labels=labels, priority=priority, status=status, changes=changes, comment=comment)
        pruned, whole = evaluate(example, e, TicketState(), NOW), evaluate(full, e, TicketState(), NOW)
        assert pruned == whole, (kind, labels, priority, status, changes)


def test_clocks_equal_those_of_the_full_activation(example: Policy) -> None:
    full = reading_everything(example)
    for status, region in itertools.product(tuple(Status), ("emea", "apac", "")):
        requester = dataclasses.replace(REQUESTER, region=region)
        e = event(EventKind.TICKET_UPDATED, status=status, requester=requester, priority=Priority.P2)
        pruned = sla.advance(example, sla.SlaState(), e, Priority.P2, NOW)
        assert pruned == sla.advance(full, sla.SlaState(), e, Priority.P2, NOW), (status, region)


def test_the_decision_is_seen_again_when_a_raise_or_a_person_changes_it(tmp_path) -> None:
    rules = """\
  - {name: p1, on: [ticket.created, ticket.updated], when: 'decision.priority == "P1"', then: [{label: p1}]}
  - {name: kept, on: ticket.updated, when: 'decision.priority_from == "person"', then: [{label: kept}]}
"""
    raises = "    - {when: '\"security\" in ticket.labels', by: 1, why: security}"
    policy = load_policy(str(write_policy(tmp_path, policy_source(rules, raises=raises))))
    # medium × high is P2 before the raise: the rule sees the raised P1
    raised = evaluate(policy, event(labels=("many", "urgent", "security")), TicketState(), NOW)
    assert raised.rules == ("p1",)
    # a person's P1 kept by raise_only: the same priority as the matrix's, but from a person
    person = event(
        EventKind.TICKET_UPDATED, labels=("outage", "urgent"), priority=Priority.P1,
        changes=(Change("priority", "High", "Highest"),),
    )  # fmt: skip
    assert evaluate(policy, person, TicketState(), NOW).rules == ("p1", "kept")


def reading_everything(policy: Policy) -> Policy:
    """The same policy, loaded again, converting every variable everywhere (the old full activation)."""
    full = load_policy(policy.path)
    assert full is not policy
    object.__setattr__(full, "reads", PolicyReads({}))
    return full


def test_a_policy_whose_rules_read_the_decision_sees_each_change_of_it(tmp_path) -> None:
    rules = """\
  - {name: raise-urgent, on: ticket.created, when: '"urgent" in ticket.labels', then: [{priority: P1}]}
  - {name: p1-label, on: ticket.created, when: 'decision.priority == "P1"', then: [{label: is-p1}]}
"""
    policy = load_policy(str(write_policy(tmp_path, policy_source(rules))))
    tree = policy.reads.event("ticket.created").tree
    assert tree is not None and tree["decision"] == {"priority": WHOLE}
    decision = evaluate(policy, event(labels=("urgent",)), TicketState(), NOW)
    assert decision.rules == ("raise-urgent", "p1-label")


def test_the_kinds_whose_decisions_read_the_remembered_last_reply(example: Policy, tmp_path) -> None:
    # The example quotes it in the hourly P1 update only (a timer event, which replay does not judge).
    assert example.kinds_reading("last_reply") == {"update.due"}
    rules = """\
  - {name: quote, on: comment.added, then: [{note: 'Last reply: {{ last_reply.text }}'}]}
  - {name: asks, on: ticket.updated, when: 'last_reply.by == "requester"', then: [{label: waiting}]}
"""
    policy = load_policy(str(write_policy(tmp_path, policy_source(rules))))
    assert policy.kinds_reading("last_reply") == {"comment.added", "ticket.updated"}
