"""Load-time checks: every mistake is reported with the file, the exact line, and what to do."""

from __future__ import annotations

from pathlib import Path

import pytest

from policies import PolicyError, Problem, check_policy, load_policy
from tests.policies.policy_helpers import check, line, only, policy_source


def rule(when: str = "", then: str = "[{label: x}]", on: str = "ticket.created", name: str = "r") -> str:
    cond = f", when: '{when}'" if when else ""
    return f"  - {{name: {name}, on: {on}{cond}, then: {then}}}"


def test_base_policy_is_valid(tmp_path: Path) -> None:
    assert check(tmp_path, policy_source()) == []


def test_problem_str_is_file_line_message() -> None:
    assert str(Problem("p.yaml", 42, "rule 'x': boom")) == "p.yaml:42: rule 'x': boom"


# --- YAML and shape -----------------------------------------------------------------------------------


def test_yaml_syntax_error(tmp_path: Path) -> None:
    text = policy_source().replace("tiers: [L1, L2, L3, management]", "tiers: [L1, L2\nrules_broken: 1")
    p = only(tmp_path, text)
    assert p.line == line(text, "rules_broken")
    assert p.message.startswith("YAML syntax error: column ")
    assert "a '[' list is not closed with ']'" in p.message and "while parsing a flow sequence" in p.message


def test_duplicate_yaml_key(tmp_path: Path) -> None:
    text = policy_source().replace("version: 7", "version: 7\nversion: 8")
    p = only(tmp_path, text)
    assert p.line == line(text, "version: 8") and 'duplicate key "version"' in p.message


def test_unknown_top_level_key_uses_the_keys_line(tmp_path: Path) -> None:
    text = policy_source().replace("version: 7", "version: 7\ncolour: blue")
    p = only(tmp_path, text)
    assert p.line == line(text, "colour")
    assert p.message.startswith(
        "unknown key 'colour' (known: default_language, description, fields, platforms, policy, priority,"
    )


def test_unknown_key_in_an_action(tmp_path: Path) -> None:
    text = policy_source(
        "  - name: r\n    on: ticket.created\n    then:\n      - label: a\n      - escalte: L2"
    )
    p = only(tmp_path, text)
    assert p.line == line(text, "escalte")
    assert p.message == (
        "rule 'r': then[1]: unknown key 'escalte' "
        "(known: assign, escalate, label, labels, note, notify, priority, report, unlabel)"
    )


def test_unknown_key_in_a_nested_mapping(tmp_path: Path) -> None:
    text = policy_source().replace("  mode: raise_only", "  mode: raise_only\n  moda: enforce")
    p = only(tmp_path, text)
    assert p.line == line(text, "moda") and p.message.startswith(
        "priority: unknown key 'moda' (known: impact,"
    )


def test_wrong_type(tmp_path: Path) -> None:
    text = policy_source("  - name: r\n    on: ticket.created\n    stop: sometimes\n    then: [{label: a}]")
    p = only(tmp_path, text)
    assert (p.line, p.message) == (
        line(text, "stop:"),
        "rule 'r': stop: input should be a valid boolean (got 'sometimes')",
    )


def test_missing_required_key_points_at_the_parent(tmp_path: Path) -> None:
    text = policy_source("  - name: r\n    then: [{label: a}]")
    p = only(tmp_path, text)
    assert (p.line, p.message) == (line(text, "- name: r"), "rule 'r': missing required key 'on'")


def test_missing_top_level_key(tmp_path: Path) -> None:
    text = policy_source().replace("version: 7\n", "")
    p = only(tmp_path, text)
    assert (p.line, p.message) == (1, "missing required key 'version'")


def test_empty_file_and_wrong_top_level(tmp_path: Path) -> None:
    assert [str(p) for p in check(tmp_path, "")] == [
        f"{tmp_path / 'policy.yaml'}:1: the policy file is empty"
    ]
    assert "mapping at the top level" in check(tmp_path, "- a\n- b\n")[0].message


def test_unreadable_file_is_a_problem_at_line_0(tmp_path: Path) -> None:
    [p] = check_policy(tmp_path / "missing.yaml")
    assert p.line == 0 and "cannot read the policy file" in p.message
    with pytest.raises(PolicyError):
        load_policy(tmp_path / "missing.yaml")


# --- CEL ----------------------------------------------------------------------------------------------


def test_cel_syntax_error(tmp_path: Path) -> None:
    text = policy_source(rule('"a" in ticket.labels &&& true'))
    p = only(tmp_path, text)
    assert p.line == line(text, "&&&")
    assert p.message.startswith("rule 'r': CEL syntax error in '\"a\" in ticket.labels &&& true': ")
    assert "column" in p.message


def test_unknown_root_variable(tmp_path: Path) -> None:
    text = policy_source(rule("tickets.labels.size() > 0"))
    p = only(tmp_path, text)
    assert (p.line, p.message) == (
        line(text, "tickets"),
        "rule 'r': unknown variable 'tickets' (known: comment, decision, event, last_reply, sla, ticket)",
    )


def test_unknown_ticket_field(tmp_path: Path) -> None:
    text = policy_source(rule('ticket.foo == "x"'))
    p = only(tmp_path, text)
    assert p.line == line(text, "ticket.foo")
    assert p.message.startswith(
        "rule 'r': ticket has no field 'foo' (known: assignee, created, fields, group, id, key,"
    )


def test_requester_email_is_not_exposed(tmp_path: Path) -> None:
    p = only(tmp_path, policy_source(rule('ticket.requester.email == ""')))
    assert (
        p.message
        == "rule 'r': ticket.requester has no field 'email' (known: id, language, name, region, tier)"
    )


def test_undeclared_custom_field(tmp_path: Path) -> None:
    text = policy_source(rule("ticket.fields.revenue_impact"))
    p = only(tmp_path, text)
    assert p.line == line(text, "revenue_impact")
    assert p.message == (
        "rule 'r': ticket.fields has no field 'revenue_impact' (declared: vip); "
        "declare it under the top-level 'fields:'"
    )


def test_path_below_a_leaf(tmp_path: Path) -> None:
    p = only(tmp_path, policy_source(rule('ticket.title.first == "x"')))
    assert p.message == "rule 'r': ticket.title is a string and has no field 'first'"


def test_scanner_skips_strings_methods_and_bound_names(tmp_path: Path) -> None:
    when = (
        '"ticket.foo" != ticket.title && ticket.labels.exists(l, l.startsWith("x.y")) && '
        "[1, 2].all(n, n > 0) && ticket.labels.map(x, x.size()).size() >= 0 && size(ticket.labels) >= 0 && "
        "ticket.title.matches(\\'a.b\\') == false"
    )
    assert check(tmp_path, policy_source(rule(when.replace("\\'", "''")))) == []


def test_decision_is_not_available_to_impact(tmp_path: Path) -> None:
    text = policy_source().replace(
        """- {when: '"many" in ticket.labels', is: medium}""",
        """- {when: 'decision.priority == "P1"', is: medium}""",
    )
    p = only(tmp_path, text)
    assert p.line == line(text, "decision.priority")
    assert p.message.startswith(
        "priority.impact[1]: 'decision' is not available here: it is computed from impact"
    )


def test_decision_is_available_to_raise_and_rules(tmp_path: Path) -> None:
    text = policy_source(
        rule('decision.priority == "P1" && decision.impact == "high"'),
        raises="    - {when: 'decision.urgency == \"high\"', by: 1}",
    )
    assert check(tmp_path, text) == []


def test_condition_must_be_bool(tmp_path: Path) -> None:
    text = policy_source(rule("ticket.labels"))
    p = only(tmp_path, text)
    assert p.message == "rule 'r': condition 'ticket.labels' must give true or false, but gives a list"


def test_condition_that_fails_on_empty_values(tmp_path: Path) -> None:
    text = policy_source(rule('event.changes.status.after == "Done"'))
    p = only(tmp_path, text)
    assert p.line == line(text, "event.changes")
    assert p.message.startswith(
        "rule 'r': condition 'event.changes.status.after == \"Done\"' fails on a ticket "
        "with empty values: KeyError: 'status'"
    )


def test_type_mismatch_is_caught_at_load(tmp_path: Path) -> None:
    p = only(tmp_path, policy_source(rule("ticket.fields.vip > 1")))
    assert "fails on a ticket with empty values" in p.message


# --- references ---------------------------------------------------------------------------------------


def test_unknown_event_kind(tmp_path: Path) -> None:
    text = policy_source(rule(on="[ticket.created, ticket.deleted]"))
    p = only(tmp_path, text)
    assert p.line == line(text, "ticket.deleted")
    assert p.message == (
        "rule 'r': unknown event kind 'ticket.deleted' in 'on' (known: comment.added, handover, "
        "sla.breached, sla.warning, ticket.created, ticket.updated, update.due)"
    )


def test_unknown_tier_in_escalate(tmp_path: Path) -> None:
    text = policy_source(rule(then="[{escalate: L9}]"))
    p = only(tmp_path, text)
    assert (p.line, p.message) == (
        line(text, "L9"),
        "rule 'r': escalate to unknown tier 'L9' (tiers: L1, L2, L3, management, or 'next')",
    )


def test_unknown_tier_in_platform_mapping(tmp_path: Path) -> None:
    text = policy_source().replace(
        "      management: {group: g-mgmt}\n", "      management: {group: g-mgmt}\n      L4: {group: x}\n"
    )
    p = only(tmp_path, text)
    assert (p.line, p.message) == (
        line(text, "L4"),
        "platforms.jira.tiers: unknown tier 'L4' (tiers: L1, L2, L3, management)",
    )


def test_unknown_priority_value(tmp_path: Path) -> None:
    text = policy_source(rule(then="[{priority: P0}]"))
    p = only(tmp_path, text)
    assert (p.line, p.message) == (
        line(text, "P0"),
        "rule 'r': then[0].priority: input should be 'P1', 'P2', 'P3' or 'P4' (got 'P0')",
    )


def test_unknown_priority_in_matrix(tmp_path: Path) -> None:
    text = policy_source().replace(
        "low: {high: P3, medium: P4, low: P4}", "low: {high: P3, medium: P4, low: P5}"
    )
    p = only(tmp_path, text)
    assert (p.line, p.message) == (
        line(text, "P5"),
        "priority.matrix.low: low: input should be 'P1', 'P2', 'P3' or 'P4' (got 'P5')",
    )


def test_duplicate_rule_names(tmp_path: Path) -> None:
    text = policy_source(rule(name="same") + "\n" + rule(name="same", then="[{label: y}]"))
    p = only(tmp_path, text)
    assert p.line == line(text, "label: y")
    assert p.message == f"rule 'same': duplicate rule name (first used on line {line(text, 'label: x')})"


def test_matrix_missing_a_level(tmp_path: Path) -> None:
    text = policy_source().replace(
        "medium: {high: P2, medium: P3, low: P4}", "medium: {high: P2, medium: P3}"
    )
    p = only(tmp_path, text)
    assert (p.line, p.message) == (
        line(text, "medium: {high: P2"),
        "priority.matrix.medium: missing urgency level(s) low (every row needs all of: high, medium, low)",
    )


def test_level_not_in_matrix(tmp_path: Path) -> None:
    text = policy_source().replace(
        "- {when: '\"many\" in ticket.labels', is: medium}",
        "- {when: '\"many\" in ticket.labels', is: severe}",
    )
    p = only(tmp_path, text)
    assert (p.line, p.message) == (
        line(text, "severe"),
        "priority.impact[1]: impact level 'severe' is not a row of "
        "priority.matrix (levels: high, medium, low)",
    )


def test_last_level_must_be_the_default(tmp_path: Path) -> None:
    text = policy_source().replace("    - {is: medium}", "    - {when: 'true', is: medium}")
    p = only(tmp_path, text)
    assert (p.line, p.message) == (
        line(text, "{when: 'true', is: medium}"),
        "priority.urgency: the last entry must have no 'when' (it is the default when nothing else matches)",
    )


def test_note_template_syntax_error(tmp_path: Path) -> None:
    text = policy_source(rule(then='[{note: "moved to {{ decision.tier }"}]'))
    p = only(tmp_path, text)
    assert p.line == line(text, "note:")
    assert p.message == "rule 'r': note template syntax error (line 1 of the note): unexpected '}'"


def test_note_template_unknown_variable(tmp_path: Path) -> None:
    p = only(tmp_path, policy_source(rule(then='[{note: "hi {{ customer }}"}]')))
    assert p.message == (
        "rule 'r': note template uses unknown variable 'customer' "
        "(known: comment, decision, event, last_reply, policy, rule, sla, ticket)"
    )


def test_note_template_undefined_attribute(tmp_path: Path) -> None:
    p = only(tmp_path, policy_source(rule(then='[{note: "hi {{ ticket.requester.email }}"}]')))
    assert (
        p.message == "rule 'r': note template cannot be rendered: "
        "UndefinedError: 'dict object' has no attribute 'email'"
    )


def test_unknown_platform(tmp_path: Path) -> None:
    text = policy_source() + "  github:\n    priorities: {P1: a, P2: b, P3: c, P4: d}\n"
    p = only(tmp_path, text)
    assert (p.line, p.message) == (
        line(text, "github"),
        "platforms: unknown platform 'github' (known: jira, zendesk, servicenow)",
    )


def test_platform_field_must_be_declared(tmp_path: Path) -> None:
    text = policy_source().replace(
        "fields: {vip: customfield_1}", "fields: {vip: customfield_1,\n      spend: cf_2}"
    )
    p = only(tmp_path, text)
    assert (p.line, p.message) == (
        line(text, "spend"),
        "platforms.jira.fields: 'spend' is not declared under the top-level 'fields:'",
    )


def test_platform_must_map_every_priority(tmp_path: Path) -> None:
    text = policy_source().replace("{P1: Highest, P2: High, P3: Medium, P4: Low}", "{P1: Highest, P2: High}")
    p = only(tmp_path, text)
    assert p.message == "platforms.jira.priorities: missing P3, P4 (all of P1, P2, P3, P4 must be mapped)"


def test_field_default_must_match_type(tmp_path: Path) -> None:
    text = policy_source().replace("vip: {type: bool}", 'vip: {type: bool, default: "no"}')
    p = only(tmp_path, text)
    assert (p.line, p.message) == (line(text, "vip: {type"), "field 'vip': default 'no' is not a bool")


# --- all at once --------------------------------------------------------------------------------------


def test_every_problem_is_reported(tmp_path: Path) -> None:
    text = policy_source(
        rule("ticket.foo", then="[{escalate: L9}]") + "\n" + rule(name="r", on="sla.maybe")
    ).replace("version: 7", "version: 7\ncolour: blue")
    problems = check(tmp_path, text)
    assert [(p.line, p.message.split(":")[0]) for p in problems] == [
        (line(text, "colour"), "unknown key 'colour' (known"),
        (line(text, "ticket.foo"), "rule 'r'"),
        (line(text, "L9"), "rule 'r'"),
        (line(text, "sla.maybe"), "rule 'r'"),
        (line(text, "sla.maybe"), "rule 'r'"),
    ]
    with pytest.raises(PolicyError) as caught:
        load_policy(tmp_path / "policy.yaml")
    assert caught.value.problems == problems
    assert str(caught.value).splitlines() == [str(p) for p in problems]


def test_an_impossible_unquoted_date_is_a_problem_not_a_crash(tmp_path: Path) -> None:
    # ruamel used to build a date from `2026-12-32` and raise ValueError out of check_policy
    text = policy_source().replace("version: 7", "version: 2026-12-32")
    assert check(tmp_path, text) == []  # read as the text it is; a version may be any string
    text = policy_source().replace("version: 7", "version: 7\nreleased: 2026-02-30")
    p = only(tmp_path, text)
    assert p.line == line(text, "released") and p.message.startswith("unknown key 'released'")


def test_sla_variables_only_in_rules(tmp_path: Path) -> None:
    text = policy_source().replace(
        """- {when: '"many" in ticket.labels', is: medium}""", "- {when: 'sla.percent > 50', is: medium}"
    )
    p = only(tmp_path, text)
    assert p.message == (
        "priority.impact[1]: 'sla' is not available here: it describes SLA time events (use it in rules)"
    )
    rules = rule('sla.metric == "resolution" && sla.percent >= 75 && !sla.late && sla.calendar != ""')
    assert check(tmp_path, policy_source(rules)) == []  # zero values on every other event
    p = only(tmp_path, policy_source(rule("sla.remaining > 0")))
    assert p.message.startswith("rule 'r': sla has no field 'remaining' (known: calendar, due, due_local,")
