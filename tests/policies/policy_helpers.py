"""Small builders for canonical tickets and events, and a writer for policy files under test."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from connector.model import (
    Change,
    Comment,
    EventKind,
    Person,
    Priority,
    Requester,
    Status,
    Ticket,
    TicketEvent,
    TicketRef,
)
from policies import Problem, check_policy

EXAMPLE = Path(__file__).resolve().parents[2] / "policies" / "examples" / "global-support.yaml"
NOW = datetime(2024, 5, 6, 12, 0, tzinfo=UTC)
REQUESTER = Requester(
    id="cust-1", name="Ada Customer", email="ada@example.com", tier="standard", region="emea"
)


def ticket(
    *,
    labels: Iterable[str] = (),
    priority: Priority | None = None,
    fields: Mapping[str, Any] | None = None,
    requester: Requester | None = REQUESTER,
    platform: str = "jira",
    assignee: str | None = None,
    status: Status = Status.OPEN,
) -> Ticket:
    """A ticket snapshot; `fields` are platform field ids → raw values."""
    return Ticket(
        ref=TicketRef(
            platform=platform, id="10001", key="SHOP-1", url="https://example.atlassian.net/browse/SHOP-1"
        ),
        title="Checkout fails",
        status=status,
        priority=priority,
        labels=frozenset(labels),
        assignee=assignee,
        requester=requester,
        fields=dict(fields or {}),
    )


def event(
    kind: EventKind | str = EventKind.TICKET_CREATED,
    *,
    changes: Iterable[Change] = (),
    comment: Comment | None = None,
    actor: Person | None = None,
    **ticket_args: Any,
) -> TicketEvent:
    """An event on a fresh `ticket(**ticket_args)`."""
    return TicketEvent(
        kind=EventKind(kind),
        ticket=ticket(**ticket_args),
        actor=actor or Person(id="agent-7", name="Agent Seven"),
        changes=tuple(changes),
        comment=comment,
        delivery_id="d-1",
    )


def requester_comment(text: str, **ticket_args: Any) -> TicketEvent:
    """A comment.added event whose comment the requester wrote."""
    author = Person(id=REQUESTER.id, name=REQUESTER.name)
    note = Comment(id="c-1", text=text, author=author, public=True, by_requester=True)
    return event(EventKind.COMMENT_ADDED, comment=note, actor=author, **ticket_args)


def write_policy(tmp_path: Path, text: str, name: str = "policy.yaml") -> Path:
    """Write policy source to a file (dedented by the caller) and return its path."""
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


BASE_POLICY = """\
policy: test-policy
version: 7
fields:
  vip: {{type: bool}}
priority:
  matrix:
    high: {{high: P1, medium: P2, low: P3}}
    medium: {{high: P2, medium: P3, low: P4}}
    low: {{high: P3, medium: P4, low: P4}}
  impact:
    - {{when: '"outage" in ticket.labels', is: high}}
    - {{when: '"many" in ticket.labels', is: medium}}
    - {{is: low}}
  urgency:
    - {{when: '"urgent" in ticket.labels', is: high}}
    - {{when: '"minor" in ticket.labels', is: low}}
    - {{is: medium}}
  raise:{raises}
  mode: {mode}
tiers: [L1, L2, L3, management]
rules:
{rules}
platforms:
  jira:
    priorities: {{P1: Highest, P2: High, P3: Medium, P4: Low}}
    tiers:
      L1: {{group: g-l1}}
      L2: {{assignee: a-l2, group: g-l2}}
      L3: {{assignee: a-l3}}
      management: {{group: g-mgmt}}
    fields: {{vip: customfield_1}}
"""


def policy_source(rules: str = "", *, mode: str = "raise_only", raises: str = "") -> str:
    """BASE_POLICY with rules / raise entries given as YAML list items (indented by 2 / 4)."""
    no_rule = "  - {name: noop, on: comment.added, when: 'false', then: [{label: never}]}"
    entries = "\n" + raises.rstrip() if raises.strip() else " []"
    return BASE_POLICY.format(rules=rules.rstrip() or no_rule, mode=mode, raises=entries)


def line(text: str, marker: str) -> int:
    """The 1-based line of the only line containing `marker` (a trailing newline: the line ends there)."""
    rows = text.splitlines()
    if marker.endswith("\n"):
        hits = [i for i, row in enumerate(rows, 1) if row == marker[:-1]]
    else:
        hits = [i for i, row in enumerate(rows, 1) if marker in row]
    assert len(hits) == 1, (marker, hits)
    return hits[0]


def check(tmp_path: Path, text: str) -> list[Problem]:
    """Every problem `policy check` finds in `text`, written to tmp_path/policy.yaml."""
    return check_policy(write_policy(tmp_path, text))


def only(tmp_path: Path, text: str) -> Problem:
    """The one problem in `text` (fails when there are none or several)."""
    problems = check(tmp_path, text)
    assert len(problems) == 1, problems
    assert problems[0].path == str(tmp_path / "policy.yaml")
    return problems[0]
