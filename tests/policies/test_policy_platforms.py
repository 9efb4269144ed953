"""Per-platform mapping rules: what each platform's API accepts, checked at load with the exact line."""

from __future__ import annotations

from pathlib import Path

import pytest

from connector.model import Priority, Ticket, TicketState
from policies import Policy, TierTarget, evaluate, load_policy
from tests.policies.policy_helpers import NOW, check, event, line, only, policy_source, ticket, write_policy

TIERS = """\
    tiers:
      L1: {group: "1"}
      L2: {group: "2"}
      L3: {group: "3"}
      management: {group: "4"}
"""

ZENDESK = """\
  zendesk:
    priorities: {P1: urgent, P2: high, P3: normal, P4: low}
""" + TIERS.replace('"1"', "360001").replace('"2"', '"360002"').replace('"3"', "360003").replace(
    '"4"', "360004"
)

SNOW_IDS = {t: f"{i:032x}" for i, t in enumerate(["L1", "L2", "L3", "management"], 1)}
SERVICENOW = (
    """\
  servicenow:
    priorities:
      P1: {impact: 1, urgency: 1}
      P2: {impact: "1", urgency: 2}
      P3: {impact: 2, urgency: 2}
      P4: {impact: 3, urgency: 2}
    tiers:
"""
    + "".join(f'      {t}: {{group: "{s}"}}\n' for t, s in SNOW_IDS.items())
    + """\
    fields: {vip: u_vip}
    labels_field: u_escalator_labels
"""
)


def source(extra: str = ZENDESK + SERVICENOW) -> str:
    return policy_source() + extra


def test_three_platforms_load(tmp_path: Path) -> None:
    policy = load_policy(write_policy(tmp_path, source()))
    assert list(policy.platforms) == ["jira", "zendesk", "servicenow"]
    zendesk, snow = policy.platforms["zendesk"], policy.platforms["servicenow"]
    assert zendesk.tiers["L1"] == TierTarget(group="360001")  # a YAML number is kept as its digits
    assert zendesk.priorities[Priority.P3] == "normal" and zendesk.labels_field is None
    assert dict(snow.priorities[Priority.P2]) == {"impact": "1", "urgency": "2"}  # as ServiceNow sends them
    assert snow.tiers["L2"].group == SNOW_IDS["L2"] and snow.labels_field == "u_escalator_labels"


# --- platform keys ----------------------------------------------------------------------------------


def test_unknown_platform_names_the_known_ones(tmp_path: Path) -> None:
    text = source(ZENDESK.replace("zendesk:", "zendisk:"))
    p = only(tmp_path, text)
    assert (p.line, p.message) == (
        line(text, "zendisk"),
        "platforms: unknown platform 'zendisk' (known: jira, zendesk, servicenow)",
    )


# --- priorities ---------------------------------------------------------------------------------------


def test_zendesk_accepts_only_its_four_priorities(tmp_path: Path) -> None:
    text = source(ZENDESK.replace("P1: urgent", "P1: critical"))
    p = only(tmp_path, text)
    assert (p.line, p.message) == (
        line(text, "critical"),
        "platforms.zendesk.priorities.P1: 'critical' is not a Zendesk priority "
        "(known: urgent, high, normal, low)",
    )


def test_zendesk_priority_one_per_line_names_that_line(tmp_path: Path) -> None:
    text = source(
        ZENDESK.replace(
            "priorities: {P1: urgent, P2: high, P3: normal, P4: low}",
            "priorities:\n      P1: urgent\n      P2: High\n      P3: normal\n      P4: {name: low}",
        )
    )
    found = check(tmp_path, text)
    assert [(p.line, p.message) for p in found] == [
        (line(text, "      P2: High"), "platforms.zendesk.priorities.P2: 'High' is not a Zendesk priority "
         "(known: urgent, high, normal, low)"),
        (line(text, "P4: {name"), "platforms.zendesk.priorities.P4: must be the name of a Zendesk priority "
         "(got a mapping)"),
    ]  # fmt: skip


def test_zendesk_priorities_must_differ(tmp_path: Path) -> None:
    text = source(ZENDESK.replace("P4: low", "P4: normal"))
    p = only(tmp_path, text)
    assert p.message == "platforms.zendesk.priorities: P3 and P4 both map to 'normal'"


def test_jira_priority_is_a_name_not_a_mapping(tmp_path: Path) -> None:
    text = policy_source().replace("P4: Low}", "P4: {impact: 3}}")
    p = only(tmp_path, text)
    assert (p.line, p.message) == (
        line(text, "P4: {impact"),
        "platforms.jira.priorities.P4: must be the name of a Jira priority (got a mapping)",
    )


def test_jira_priority_must_not_be_empty(tmp_path: Path) -> None:
    text = policy_source().replace("P4: Low}", 'P4: ""}')
    p = only(tmp_path, text)
    assert p.message.startswith("platforms.jira.priorities.P4: must be the platform's priority name")


def test_jira_accepts_custom_scheme_names(tmp_path: Path) -> None:
    text = policy_source().replace("{P1: Highest, P2: High, P3: Medium, P4: Low}", "{P1: Blocker, "
                                   "P2: Critical, P3: Major, P4: Trivial}")  # fmt: skip
    assert check(tmp_path, text) == []


def test_servicenow_priority_must_be_impact_and_urgency(tmp_path: Path) -> None:
    text = source(ZENDESK + SERVICENOW.replace("P1: {impact: 1, urgency: 1}", "P1: Critical"))
    p = only(tmp_path, text)
    assert (p.line, p.message) == (
        line(text, "P1: Critical"),
        "platforms.servicenow.priorities.P1: must be a mapping of the incident's impact and urgency, "
        "e.g. {impact: 1, urgency: 1} (got 'Critical')",
    )


def test_servicenow_priority_keys_and_levels(tmp_path: Path) -> None:
    text = source(
        ZENDESK
        + SERVICENOW.replace("P1: {impact: 1, urgency: 1}", "P1:\n        impact: 1\n        severity: 1")
        .replace("P3: {impact: 2, urgency: 2}", "P3: {impact: 2, urgency: 4}")
        .replace('P2: {impact: "1", urgency: 2}', 'P2: {impact: "high", urgency: 2}')
    )
    found = check(tmp_path, text)
    assert [(p.line, p.message) for p in found] == [
        (line(text, "      P1:\n"), "platforms.servicenow.priorities.P1: missing urgency (a ServiceNow "
         "priority is set through both impact and urgency)"),
        (line(text, "severity"), "platforms.servicenow.priorities.P1: unknown key 'severity' (known: impact, "
         "urgency; ServiceNow computes the priority from them)"),
        (line(text, '"high"'), "platforms.servicenow.priorities.P2.impact: must be 1, 2 or 3 (got 'high')"),
        (line(text, "urgency: 4"), "platforms.servicenow.priorities.P3.urgency: must be 1, 2 or 3 (got 4)"),
    ]  # fmt: skip


def test_servicenow_priorities_must_differ(tmp_path: Path) -> None:
    text = source(ZENDESK + SERVICENOW.replace("P4: {impact: 3, urgency: 2}", "P4: {urgency: 2, impact: 2}"))
    p = only(tmp_path, text)
    assert (p.line, p.message) == (
        line(text, "P4: {urgency"),
        "platforms.servicenow.priorities: P3 and P4 both map to 'impact: 2, urgency: 2'",
    )


# --- tiers --------------------------------------------------------------------------------------------


def test_every_tier_is_mapped_on_every_platform(tmp_path: Path) -> None:
    text = source(ZENDESK.replace("      L3: {group: 360003}\n", ""))
    p = only(tmp_path, text)
    assert (p.line, p.message) == (
        line(text, "L1: {group: 360001}") - 1,  # the zendesk section's `tiers:` line
        "platforms.zendesk.tiers: tier 'L3' is not mapped on platform 'zendesk' "
        "(every tier in 'tiers' needs a target on every platform)",
    )


def test_platform_without_tiers_names_each_missing_tier(tmp_path: Path) -> None:
    text = source("  zendesk:\n    priorities: {P1: urgent, P2: high, P3: normal, P4: low}\n")
    found = check(tmp_path, text)
    assert [p.line for p in found] == [line(text, "zendesk:")] * 4
    assert [p.message.split("'")[1] for p in found] == ["L1", "L2", "L3", "management"]


def test_zendesk_ids_are_numbers(tmp_path: Path) -> None:
    text = source(ZENDESK.replace('L2: {group: "360002"}', 'L2: {group: support, assignee: "12 "}'))
    p = only(tmp_path, text)
    assert (p.line, p.message) == (
        line(text, "group: support"),
        "platforms.zendesk.tiers.L2.group: a Zendesk group id is a number (got 'support')",
    )


def test_servicenow_id_that_is_no_sys_id_is_a_warning(tmp_path: Path) -> None:
    text = source(ZENDESK + SERVICENOW.replace(f'L3: {{group: "{SNOW_IDS["L3"]}"}}', "L3: {group: Network}"))
    p = only(tmp_path, text)
    assert (p.line, p.severity, p.message) == (
        line(text, "Network"),
        "warning",
        "platforms.servicenow.tiers.L3.group: 'Network' does not look like a sys_id (32 hex characters); "
        "ServiceNow's assignment_group expects the record's sys_id",
    )
    assert str(p).startswith(f"{tmp_path / 'policy.yaml'}:{p.line}: warning: ")
    policy = load_policy(tmp_path / "policy.yaml")  # a warning does not stop the policy
    assert policy.warnings == (p,)


def test_servicenow_tier_field_values_are_kept_as_text(tmp_path: Path) -> None:
    text = source(
        ZENDESK + SERVICENOW.replace(f'L1: {{group: "{SNOW_IDS["L1"]}"}}', "L1: {fields: {u_tier: 1}}")
    )
    policy = load_policy(write_policy(tmp_path, text))
    assert dict(policy.platforms["servicenow"].tiers["L1"].fields) == {"u_tier": "1"}


def test_bad_id_type(tmp_path: Path) -> None:
    text = source(ZENDESK.replace('L2: {group: "360002"}', "L2: {group: true}"))
    p = only(tmp_path, text)
    assert (p.line, p.message) == (
        line(text, "group: true"),
        "platforms.zendesk.tiers.L2.group: must be an id: a non-empty string or a number (got True)",
    )


# --- fields and labels_field ---------------------------------------------------------------------------


def test_zendesk_field_ids_may_be_numbers(tmp_path: Path) -> None:
    text = source(ZENDESK + "    fields: {vip: 360000000200}\n")
    policy = load_policy(write_policy(tmp_path, text))
    assert dict(policy.platforms["zendesk"].fields) == {"vip": "360000000200"}


@pytest.mark.parametrize("platform", ["jira", "zendesk"])
def test_labels_field_is_only_for_servicenow(tmp_path: Path, platform: str) -> None:
    text = source(ZENDESK + SERVICENOW)
    anchor = (
        "    fields: {vip: customfield_1}\n" if platform == "jira" else "      management: {group: 360004}\n"
    )
    text = text.replace(anchor, anchor + "    labels_field: labels\n")
    p = only(tmp_path, text)
    assert (p.line, p.message) == (
        line(text, "labels_field: labels"),
        f"platforms.{platform}.labels_field: only for servicenow, whose incidents have no labels "
        f"({platform} keeps labels itself)",
    )


# --- reading a ticket's priority ----------------------------------------------------------------------


@pytest.fixture
def three(tmp_path: Path) -> Policy:
    return load_policy(write_policy(tmp_path, source()))


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"impact": "1", "urgency": "1"}, Priority.P1),
        ({"impact": "1", "urgency": "2", "priority": "2"}, Priority.P2),
        ({"impact": 3, "urgency": "2"}, Priority.P4),
        ({"impact": {"value": "2", "display_value": "2 - Medium"}, "urgency": "2"}, Priority.P3),
        ({"impact": "2", "urgency": "1"}, None),  # not a pair the policy writes
        ({"impact": "1"}, None),
        ({}, None),
    ],
)
def test_servicenow_priority_from_impact_and_urgency(three: Policy, fields: dict, expected: object) -> None:
    t = ticket(platform="servicenow", fields=fields)
    assert three.platforms["servicenow"].priority_of_ticket(t) is expected


def test_priority_of_ticket_by_name(three: Policy) -> None:
    base = ticket(platform="zendesk")
    for name, expected in [
        ("urgent", Priority.P1),
        ("Normal", Priority.P3),
        ("sometime", None),
        (None, None),
    ]:
        t = Ticket(ref=base.ref, platform_priority=name)
        assert three.platforms["zendesk"].priority_of_ticket(t) is expected
    assert (
        three.platforms["jira"].priority_of_ticket(Ticket(ref=base.ref, platform_priority="High"))
        is Priority.P2
    )


def test_fields_are_read_through_each_platforms_mapping(tmp_path: Path) -> None:
    text = source().replace("  raise: []", "  raise:\n    - {when: 'ticket.fields.vip', by: 1}")
    policy = load_policy(write_policy(tmp_path, text))
    jira = evaluate(policy, event(fields={"customfield_1": "yes", "u_vip": "no"}), TicketState(), NOW)
    snow = event(platform="servicenow", fields={"customfield_1": "no", "u_vip": "true"})
    zendesk = event(platform="zendesk", fields={"customfield_1": "yes"})  # zendesk maps no fields: default
    assert jira.priority_after is Priority.P3
    assert evaluate(policy, snow, TicketState(), NOW).priority_after is Priority.P3
    assert evaluate(policy, zendesk, TicketState(), NOW).priority_after is Priority.P4
