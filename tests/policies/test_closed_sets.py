"""`policy check` knows the closed sets (tiers, P1–P4, statuses, event kinds, SLA metrics, declared field
types), hints at common CEL slips, and says what is wrong with the YAML in plain words, line and column."""

from __future__ import annotations

from pathlib import Path

import pytest

from connector.config import EXAMPLE_POLICY
from policies import check_policy
from policies.source import parse_yaml
from tests.support.entry import escalator

RULE = "    when: 'ticket.priority == \"P1\"'"  # the first rule of the example with this condition


def _check(tmp_path: Path, condition: str) -> list[str]:
    text = EXAMPLE_POLICY.read_text()
    assert RULE in text
    quoted = f"'{condition}'" if "'" not in condition else f'"{condition}"'
    path = tmp_path / "policy.yaml"
    path.write_text(text.replace(RULE, f"    when: {quoted}", 1))
    return [p.message for p in check_policy(path) if p.is_error]


@pytest.mark.parametrize(
    "condition, expected",
    [
        (
            'ticket.tier == "l1"',
            'ticket.tier is never "l1" (did you mean "L1"?): it is one of L1, L2, L3, man',
        ),
        ('ticket.priority == "P9"', 'ticket.priority is never "P9": it is one of P1, P2, P3, P4'),
        ('decision.priority in ["P1", "P0"]', 'decision.priority is never "P0": it is one of P1, P2, P3'),
        ('ticket.status != "pendng"', 'ticket.status is never "pendng" (did you mean "pending"?): it is one'),
        (
            '"ticket.create" == event.kind',
            'event.kind is never "ticket.create" (did you mean "ticket.created"',
        ),
        ('sla.metric == "first_reponse"', 'sla.metric is never "first_reponse" (did you mean "first_respon'),
        ('ticket.fields.revenue_impact == "yes"', "ticket.fields.revenue_impact is true or false (declared"),
        ('ticket.fields.affected_customers == "3"', "is a number (declared under fields:), never the string"),
        (
            "ticket.fields.outage_scope == 3",
            "ticket.fields.outage_scope is a string (declared under fields:)",
        ),
        (
            'ticket.labels == "vip"',
            'ticket.labels is a list: ticket.labels == "vip" never holds; write "vip"',
        ),
    ],
)
def test_a_comparison_outside_the_closed_set_is_an_error_listing_the_set(tmp_path, condition, expected):
    [message] = _check(tmp_path, condition)
    assert message.startswith("rule '") and expected in message


@pytest.mark.parametrize(
    "condition, hint",
    [
        ('ticket.labels.contains("x")', 'hint: a list has no .contains(): write "x" in ticket.labels'),
        ('ticket.status = "open"', "hint: compare with ==, not ="),
        ('ticket.priority == "P1" and ticket.tier == "L1"', "hint: CEL writes && for 'and'"),
        ("len(ticket.labels) > 2", "hint: CEL writes size(x) for len(x)"),
        ('"down" in ticket.title', "hint: 'in' needs a list: write ticket.title.contains(\"down\")"),
        ("ticket.labels.length > 2", "hint: write size(ticket.labels) for the number of items"),
        ("True", "hint: CEL writes true for 'True'"),
    ],
)
def test_common_cel_slips_get_a_hint(tmp_path, condition, hint):
    [message] = _check(tmp_path, condition)
    assert hint in message


@pytest.mark.parametrize(
    "condition",
    [
        'ticket.priority == "P1" && ticket.tier in ["L1", "L2"]',
        'ticket.status == "" || ticket.tier != "management"',  # "" (no value) is always allowed
        'ticket.title.contains("P9") && "x" in ticket.labels',  # a string method, a list membership
        "ticket.fields.affected_customers > 3 && ticket.fields.revenue_impact",
        'ticket.priority == "P" + "9"',  # an expression, not a literal: left alone
        'ticket.labels.exists(l, l == "L9")',  # a bound name, not a variable
    ],
)
def test_correct_conditions_stay_clean(tmp_path, condition):
    assert _check(tmp_path, condition) == []


def test_policy_check_through_the_installed_command(tmp_path):
    text = EXAMPLE_POLICY.read_text().replace(RULE, "    when: 'ticket.tier == \"l2\"'", 1)
    path = tmp_path / "policy.yaml"
    path.write_text(text)
    done = escalator("policy", "check", str(path))
    assert done.returncode == 1
    line = next(i for i, row in enumerate(text.splitlines(), 1) if 'ticket.tier == "l2"' in row)
    [problem] = done.stdout.strip().splitlines()
    assert problem.startswith(f"{path}:{line}: rule '")
    assert problem.endswith(
        ': ticket.tier is never "l2" (did you mean "L2"?): it is one of L1, L2, L3, management'
    )


@pytest.mark.parametrize(
    "text, line, column, plain",
    [
        ("policy: x\nrules:\n  - name: a\n     on: ticket.created\n", 4, 8, "this line is indented wrongly"),
        ("policy: x\nrules:\n  - name: a\n    on: b\n   then: []\n", 5, 4, "the indentation does not match"),
        ("policy: x\nrules:\n\t- name: a\n", 3, 1, "a tab: YAML indents with spaces only"),
        ("policy: 'x\ntiers: [L1]\n", 3, 1, "a quote is opened and never closed"),
        ("policy: x\njust a line\nother: 1\n", 2, 1, "a line that is not 'key: value'"),
    ],
)
def test_yaml_errors_in_plain_words_with_line_and_column(text, line, column, plain):
    _, [problem] = parse_yaml(text, "p.yaml")
    assert problem.line == line
    assert problem.message.startswith(f"YAML syntax error: column {column}: ") and plain in problem.message
