"""Platform mappings, custom-field coercion and the condition scanner."""

from __future__ import annotations

import dataclasses
from types import MappingProxyType

import pytest

from connector.model import Priority
from policies import KNOWN_PLATFORMS, PlatformMapping, Policy, TierTarget
from policies.conditions import scan_expression
from policies.variables import BOOL, INT, LIST, NUMBER, STRING, FieldDef
from tests.policies.policy_helpers import ticket


def test_known_platforms() -> None:
    assert KNOWN_PLATFORMS == ("jira", "zendesk", "servicenow")


def test_example_jira_mapping(example: Policy) -> None:
    jira = example.platforms["jira"]
    assert isinstance(jira, PlatformMapping) and jira.platform == "jira"
    assert dict(jira.priorities) == {
        Priority.P1: "Highest",
        Priority.P2: "High",
        Priority.P3: "Medium",
        Priority.P4: "Low",
    }
    assert list(jira.tiers) == ["L1", "L2", "L3", "management"]
    assert jira.tiers["L3"] == TierTarget(assignee="557058:l3-security-account-id")
    rota = jira.tiers["L2"].rota  # follow the sun: three regional teams
    assert [(t.name, t.calendar.name, t.target) for t in rota.teams] == [
        ("apac", "jakarta-shift", TierTarget(assignee="557058:l2-apac-account-id")),
        ("emea", "berlin-shift", TierTarget(assignee="557058:l2-emea-account-id")),
        ("amer", "new-york-shift", TierTarget(assignee="557058:l2-amer-account-id")),
    ]
    assert jira.fields["revenue_impact"] == "customfield_10050"


def test_example_zendesk_and_servicenow_mappings(example: Policy) -> None:
    zendesk, snow = example.platforms["zendesk"], example.platforms["servicenow"]
    assert [zendesk.priorities[p] for p in Priority] == ["urgent", "high", "normal", "low"]
    assert [dict(snow.priorities[p]) for p in Priority] == [
        {"impact": "1", "urgency": "1"},
        {"impact": "1", "urgency": "2"},
        {"impact": "2", "urgency": "2"},
        {"impact": "3", "urgency": "2"},
    ]
    for mapping in (zendesk, snow):
        assert list(mapping.tiers) == ["L1", "L2", "L3", "management"]
        assert set(mapping.fields) == {"outage_scope", "affected_customers", "revenue_impact"}
    assert (
        zendesk.tiers["L1"] == TierTarget(group="360000000101") and zendesk.fields["revenue_impact"].isdigit()
    )
    assert [t.target.group for t in zendesk.tiers["L2"].rota.teams] == [
        "360000000112", "360000000122", "360000000132",
    ]  # fmt: skip
    assert [t.calendar.timezone for t in snow.tiers["L2"].rota.teams] == [
        "Asia/Jakarta", "Europe/Berlin", "America/New_York",
    ]  # fmt: skip
    assert snow.fields["revenue_impact"] == "u_revenue_impact" and snow.labels_field == "u_escalator_labels"
    assert zendesk.labels_field is None and example.platforms["jira"].labels_field is None


def test_priority_of_is_case_insensitive(example: Policy) -> None:
    jira = example.platforms["jira"]
    assert jira.priority_of("highest") is Priority.P1
    assert jira.priority_of(" Low ") is Priority.P4
    assert jira.priority_of("Blocker") is None and jira.priority_of(None) is None


def test_priority_of_skips_structured_values() -> None:
    snow = PlatformMapping("servicenow", {Priority.P1: {"impact": 1, "urgency": 1}, Priority.P2: "2"})
    assert snow.priority_of("2") is Priority.P2 and snow.priority_of("1") is None


def test_priority_of_finds_what_a_scan_of_every_level_finds(example: Policy) -> None:
    """The name → level lookup built once per mapping answers as asking each level in order does."""
    shared = PlatformMapping(
        "jira", {Priority.P1: "Highest", Priority.P2: "High", Priority.P3: "Medium", Priority.P4: "Low"},
        names={Priority.P1: ("Highest", "Blocker"), Priority.P2: ("High", "blocker")},
    )  # fmt: skip
    mappings = [*example.platforms.values(), shared]
    for mapping in mappings:
        names = {n for p in Priority for n in mapping.names_of(p)} | {"", "nope", " HIGH ", "BLOCKER", "5"}
        for name in [*names, *(n.upper() for n in names)]:
            wanted = name.strip().casefold()
            reading = [p for p in mapping.priorities if wanted in [n.casefold() for n in mapping.names_of(p)]]
            first = reading[0] if reading else None
            assert mapping.priority_of(name) is first, (mapping.platform, name)
    assert shared.priority_of("blocker") is Priority.P1  # the first level listing a name keeps it


def test_a_changed_mapping_looks_names_up_in_its_own_names(example: Policy) -> None:
    jira = example.platforms["jira"]
    assert jira.priority_of("Highest") is Priority.P1  # builds the lookup of this mapping
    renamed = dataclasses.replace(jira, priorities={**jira.priorities, Priority.P1: "Critical"}, names={})
    assert renamed.priority_of("Critical") is Priority.P1 and renamed.priority_of("Highest") is None
    assert jira.priority_of("Critical") is None


def test_tier_of_picks_the_highest_matching_tier() -> None:
    mapping = PlatformMapping(
        "zendesk",
        {},
        tiers=MappingProxyType(
            {
                "L1": TierTarget(group="support"),
                "L2": TierTarget(assignee="oncall", group="support"),
                "L3": TierTarget(fields=MappingProxyType({"team": "sec"})),
            }
        ),
    )
    assert mapping.tier_of(ticket(assignee="oncall")) == "L2"
    assert mapping.tier_of(ticket(assignee="someone")) is None
    t = ticket()
    assert mapping.tier_of(type(t)(ref=t.ref, group="support")) == "L2"  # both targets name the group


@pytest.mark.parametrize(
    ("kind", "raw", "expected"),
    [
        (BOOL, {"value": "Yes"}, True),
        (BOOL, "TRUE", True),
        (BOOL, "no", False),
        (BOOL, 0, False),
        (BOOL, [{"value": "Yes"}], True),
        (BOOL, [], False),
        (BOOL, "maybe", "default"),
        (INT, 12, 12),
        (INT, "12", 12),
        (INT, 12.9, 12),
        (INT, " 7.0 ", 7),
        (INT, True, "default"),
        (INT, "many", "default"),
        (NUMBER, "2.5", 2.5),
        (NUMBER, 3, 3.0),
        (NUMBER, "nan", "default"),
        (STRING, {"value": "EMEA"}, "EMEA"),
        (STRING, {"name": "Ada"}, "Ada"),
        (STRING, 5, "5"),
        (STRING, ["a"], "default"),
        (LIST, ["a", {"value": "b"}], ["a", "b"]),
        (LIST, "a", ["a"]),
        (LIST, None, "default"),
        (STRING, {"id": "1"}, "default"),
    ],
)
def test_field_coercion(kind: str, raw: object, expected: object) -> None:
    assert FieldDef("f", kind, "default").read(raw) == expected


def test_scanner_finds_paths_and_bound_names() -> None:
    scan = scan_expression(
        '"ticket.nope" in ticket.labels && ticket.labels.exists(l, l == r"a.b") && '
        "size(ticket.title) > 1.5 && comment.text.matches('x') && [1].all(n, n.foo > 0)"
    )
    assert scan.bound == {"l", "n"}
    assert ("ticket", "labels") in scan.paths and ("ticket", "title") in scan.paths
    assert ("comment", "text") in scan.paths
    assert all("nope" not in path for path in scan.paths)
    assert ("size",) not in scan.paths and (
        "n",
        "foo",
    ) in scan.paths  # bound paths are skipped by the checker
