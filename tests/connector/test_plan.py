from __future__ import annotations

from connector.model import (
    AddLabel,
    AddNote,
    AssignTier,
    Decision,
    Priority,
    RemoveLabel,
    SetPriority,
    Ticket,
    TicketRef,
)  # fmt: skip
from connector.plan import make_plan
from platforms.base import CAP_ASSIGNEE, CAP_INTERNAL_NOTES, CAP_LABELS, CAP_PRIORITY
from policies import PlatformMapping, TierTarget

JIRA_CAPS = frozenset({CAP_PRIORITY, CAP_ASSIGNEE, CAP_LABELS, CAP_INTERNAL_NOTES})


JIRA = PlatformMapping(
    "jira",
    priorities={Priority.P1: "Highest", Priority.P2: "High", Priority.P3: "Medium", Priority.P4: "Low"},
    tiers={"L2": TierTarget(assignee="acc-l2", fields={"customfield_10001": "team-l2"})},
)
TICKET = Ticket(
    ref=TicketRef("jira", "10040", "TES-41"), priority=Priority.P3, platform_priority="Medium",
    labels=frozenset({"outage", "triage"}), assignee="acc-l1",
)  # fmt: skip


def _decision(*actions) -> Decision:
    return Decision(Priority.P3, Priority.P1, "", "L1", "L2", actions=tuple(actions))


def test_resolves_actions_through_the_mapping():
    plan = make_plan(
        _decision(SetPriority(Priority.P1), AssignTier("L2"), AddLabel("escalated-l2"), RemoveLabel("triage"),
                  AddNote("why", internal=True)),
        TICKET, JIRA, JIRA_CAPS,
    )  # fmt: skip
    assert plan.priority == "Highest"
    assert plan.assignee == "acc-l2"
    assert plan.fields == {"customfield_10001": "team-l2"}
    assert plan.labels_add == {"escalated-l2"} and plan.labels_remove == {"triage"}
    assert plan.labels_after == {"outage", "escalated-l2"}
    assert plan.note.text == "why" and plan.note.internal


def test_nothing_the_ticket_already_shows_is_planned():
    shown = Ticket(
        ref=TICKET.ref, priority=Priority.P1, platform_priority="highest", labels=frozenset({"escalated-l2"}),
        assignee="acc-l2", fields={"customfield_10001": "team-l2"},
    )  # fmt: skip
    plan = make_plan(
        _decision(
            SetPriority(Priority.P1), AssignTier("L2"), AddLabel("escalated-l2"), RemoveLabel("absent")
        ),
        shown, JIRA, JIRA_CAPS,
    )  # fmt: skip
    assert plan.is_empty


def test_missing_capabilities_are_skipped():
    plan = make_plan(_decision(AddLabel("x"), AssignTier("L2")), TICKET, JIRA, frozenset({CAP_PRIORITY}))
    assert not plan.labels_add and plan.assignee is None
    assert plan.fields == {"customfield_10001": "team-l2"}  # tier fields still apply


def test_notes_merge_and_internal_wins():
    plan = make_plan(
        _decision(AddNote("a", internal=False), AddNote("b", internal=True)), TICKET, JIRA, JIRA_CAPS
    )
    assert plan.note.text == "a\n\nb" and plan.note.internal


def test_dict_priorities_become_fields():
    snow = PlatformMapping("servicenow", priorities={Priority.P1: {"impact": "1", "urgency": "1"}}, tiers={})
    plan = make_plan(_decision(SetPriority(Priority.P1)), TICKET, snow, JIRA_CAPS)
    assert plan.priority is None and plan.fields == {"impact": "1", "urgency": "1"}
