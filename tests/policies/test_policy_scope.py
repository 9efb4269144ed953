"""`scope`: which tickets the policy governs, a CEL condition on the ticket alone, checked at load."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

from policies import load_policy
from policies.scope import out_of_scope
from tests.policies.policy_helpers import event, line, only, policy_source, write_policy


def with_scope(condition: str) -> str:
    return policy_source().replace("tiers: [L1", f"scope: '{condition}'\ntiers: [L1", 1)


def test_a_ticket_the_scope_excludes_says_why(tmp_path):
    policy = load_policy(write_policy(tmp_path, with_scope('ticket.created >= "2026-01-01"')))
    e = event()
    old = dataclasses.replace(
        e, ticket=dataclasses.replace(e.ticket, created_at=datetime(2019, 3, 1, tzinfo=UTC))
    )
    new = dataclasses.replace(
        e, ticket=dataclasses.replace(e.ticket, created_at=datetime(2026, 3, 1, tzinfo=UTC))
    )

    assert out_of_scope(policy, old) == 'the policy\'s scope does not hold: ticket.created >= "2026-01-01"'
    assert out_of_scope(policy, new) is None


def test_projects_and_groups_can_be_scoped(tmp_path):
    policy = load_policy(write_policy(tmp_path, with_scope('ticket.key.startsWith("SHOP-")')))
    assert out_of_scope(policy, event()) is None  # the helper's ticket is SHOP-1
    other = load_policy(write_policy(tmp_path, with_scope('ticket.key.startsWith("OPS-")'), "other.yaml"))
    assert out_of_scope(other, event()) is not None


def test_no_scope_governs_every_ticket(tmp_path):
    assert out_of_scope(load_policy(write_policy(tmp_path, policy_source())), event()) is None


def test_a_scope_reading_the_tier_or_an_unknown_field_is_refused_at_its_line(tmp_path):
    text = with_scope('ticket.tier == "L1"')
    problem = only(tmp_path, text)
    assert "ticket has no field 'tier'" in problem.message and problem.line == line(text, "scope:")
    text = with_scope("ticket.projekt == 1")
    assert "ticket has no field 'projekt'" in only(tmp_path, text).message
