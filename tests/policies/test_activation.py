"""The CEL activation keeps only what the conditions read, and decides exactly as the full one does."""

from __future__ import annotations

import dataclasses
import itertools

from connector.model import Change, Comment, EventKind, Person, Priority, Status, TicketState
from policies import Policy, evaluate, load_policy
from policies.activation import WHOLE, Reads
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
    tree = example.reads.tree
    assert tree is not None
    assert tree["ticket"]["labels"] is WHOLE
    assert tree["ticket"]["requester"] == {"tier": WHOLE, "region": WHOLE}
    assert "sla" not in tree  # no condition of the example reads the SLA signal: it is never converted
    assert "title" not in tree["ticket"] and "url" not in tree["ticket"]
    selected = example.reads.select({"ticket": {"title": "x", "labels": ["a"], "tier": "L1"}, "sla": {}})
    assert selected == {"ticket": {"labels": ["a"], "tier": "L1"}}


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
    full = load_policy(example.path)
    assert full is not example
    object.__setattr__(full, "reads", Reads(None))
    manager = Comment(id="c", text="I want a manager", author=Person(REQUESTER.id, "Ada"), by_requester=True)
    cases = itertools.product(
        (EventKind.TICKET_CREATED, EventKind.TICKET_UPDATED, EventKind.COMMENT_ADDED),
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


def test_a_policy_whose_rules_read_the_decision_sees_each_change_of_it(tmp_path) -> None:
    rules = """\
  - {name: raise-urgent, on: ticket.created, when: '"urgent" in ticket.labels', then: [{priority: P1}]}
  - {name: p1-label, on: ticket.created, when: 'decision.priority == "P1"', then: [{label: is-p1}]}
"""
    policy = load_policy(str(write_policy(tmp_path, policy_source(rules))))
    assert policy.reads.tree is not None and policy.reads.tree["decision"] == {"priority": WHOLE}
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
