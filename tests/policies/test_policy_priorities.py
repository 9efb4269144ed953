"""Priorities the policy does not own: several platform names per level, names the mapping does not know
(never overwritten in raise_only), and ServiceNow's own computed priority when the pair is unlisted."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from connector.judgement import judge
from connector.model import Priority, TicketState
from connector.store.tickets import StoredTicket
from platforms import jira, servicenow
from policies import load_policy
from tests.policies.policy_helpers import EXAMPLE, check, line, only, policy_source, write_policy
from tests.support.fixtures import load_fixture

NOW = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


def decide(policy, platform, provider, payload):
    """The worker's judgement of one payload on a ticket Escalator has never seen."""
    event = provider.normalise(payload, provider.identify({}, payload))
    return judge(
        policy, policy.platforms[platform], provider.capabilities, StoredTicket(TicketState(), None),
        event, NOW,
    )  # fmt: skip


def server_issue(priority: str, labels: list[str]) -> dict:
    """A Jira Server issue_created body (third-party capture) showing `priority` and `labels`."""
    payload = load_fixture("jira", "thirdparty/mm__webhook-server-issue-updated-many-fields")
    payload["webhookEvent"], payload["issue_event_type_name"] = "jira:issue_created", "issue_created"
    payload["issue"]["fields"]["priority"] = {"name": priority, "id": "10000"}
    payload["issue"]["fields"]["labels"] = labels
    return payload


@pytest.mark.parametrize("name", ["Blocker", "Major", "Minor", "Not Prioritized"])
@pytest.mark.parametrize("labels", [["outage"], [], ["minor"]])
def test_a_priority_name_the_mapping_does_not_know_is_never_overwritten_in_raise_only(name, labels):
    policy = load_policy(EXAMPLE)
    verdict = decide(policy, "jira", jira.provider, server_issue(name, labels))

    assert verdict.plan.priority is None
    assert not any(type(a).__name__ == "SetPriority" for a in verdict.decision.actions)
    assert f"priority '{name}' is not in the jira mapping; left as it is" in verdict.decision.priority_why


def test_an_unknown_name_does_not_stop_the_escalation(tmp_path):
    verdict = decide(load_policy(EXAMPLE), "jira", jira.provider, server_issue("Blocker", ["outage"]))
    assert verdict.decision.tier_after == "L2" and verdict.plan.assignee is not None  # still goes to L2
    assert verdict.plan.priority is None


def test_enforce_owns_the_priority_even_over_an_unknown_name(tmp_path):
    text = EXAMPLE.read_text().replace("mode: raise_only", "mode: enforce")
    policy = load_policy(write_policy(tmp_path, text))
    verdict = decide(policy, "jira", jira.provider, server_issue("Blocker", ["outage"]))
    assert verdict.plan.priority == "Highest"


def several_names(tmp_path: Path):
    text = EXAMPLE.read_text().replace(
        "priorities: {P1: Highest, P2: High, P3: Medium, P4: Low}",
        "priorities: {P1: [Highest, Blocker], P2: [High, Critical], P3: [Medium, Major], "
        "P4: [Low, Minor, Trivial]}",
    )
    return load_policy(write_policy(tmp_path, text))


def test_several_names_read_as_one_level_and_the_first_is_written(tmp_path):
    policy = several_names(tmp_path)
    mapping = policy.platforms["jira"]
    assert [mapping.priority_of(n) for n in ("blocker", "Highest", "Major", "Trivial")] == [
        Priority.P1, Priority.P1, Priority.P3, Priority.P4,
    ]  # fmt: skip
    assert mapping.priorities[Priority.P4] == "Low" and mapping.names_of(Priority.P4) == (
        "Low",
        "Minor",
        "Trivial",
    )

    blocker = decide(policy, "jira", jira.provider, server_issue("Blocker", ["outage"]))
    assert blocker.decision.priority_before == Priority.P1 and blocker.plan.priority is None  # P1 already
    major = decide(policy, "jira", jira.provider, server_issue("Major", ["outage"]))
    assert major.plan.priority == "Highest"  # a raise from P3 writes the level's first name


def test_a_name_listed_under_two_levels_is_refused_at_its_line(tmp_path):
    text = policy_source().replace(
        "{P1: Highest, P2: High, P3: Medium, P4: Low}",
        "{P1: [Highest, Blocker], P2: High, P3: [Medium, blocker], P4: Low}",
    )
    problem = only(tmp_path, text)
    assert "P1 and P3 both map to 'blocker'" in problem.message
    assert problem.line == line(text, "P1: [Highest")


def test_zendesk_names_in_a_list_are_checked_and_an_empty_list_is_refused(tmp_path):
    zendesk = """\
  zendesk:
    priorities: {P1: [urgent, critical], P2: high, P3: normal, P4: low}
    tiers: {L1: {group: "1"}, L2: {group: "2"}, L3: {group: "3"}, management: {group: "4"}}
"""
    assert "'critical' is not a Zendesk priority" in only(tmp_path, policy_source() + zendesk).message
    empty = zendesk.replace("P4: low", "P4: []")
    assert "at least one" in " | ".join(p.message for p in check(tmp_path, policy_source() + empty))


def incident(impact: str, urgency: str, priority: str, labels: str = "") -> dict:
    payload = load_fixture("servicenow", "incident_inserted__basic")
    payload.update(impact=impact, urgency=urgency, priority=priority)
    payload["extra_fields"] = {**payload.get("extra_fields", {}), "u_escalator_labels": labels}
    return payload


def test_servicenow_default_incident_3_3_gets_no_patch_in_raise_only():
    policy = load_policy(EXAMPLE)
    verdict = decide(policy, "servicenow", servicenow.provider, incident("3", "3", "5"))
    assert verdict.decision.priority_before == Priority.P4  # the instance's 5 - Planning reads as P4
    assert verdict.plan.is_empty


def test_servicenow_reads_the_instance_priority_when_the_pair_is_not_listed():
    policy = load_policy(EXAMPLE)
    verdict = decide(policy, "servicenow", servicenow.provider, incident("2", "1", "2"))  # 2 × 1 → 2 - High
    assert verdict.decision.priority_before == Priority.P2 and verdict.plan.is_empty  # P4 computed: kept
    raised = decide(policy, "servicenow", servicenow.provider, incident("3", "3", "5", labels="outage"))
    assert raised.plan.fields["impact"] == "1" and raised.plan.fields["urgency"] == "1"  # a raise is written
