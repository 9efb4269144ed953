"""policies/replacing.py: `replace` gives what `dataclasses.replace` gives, for the judgement's
dataclasses (fast) and for any other class (by falling back to it)."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

import pytest

from connector.model import (
    Comment,
    Decision,
    EventKind,
    Person,
    Priority,
    Ticket,
    TicketEvent,
    TicketRef,
    TicketState,
)
from policies.replacing import _stored_fields, replace
from policies.sla import Clock, SlaState

T0 = datetime(2026, 5, 4, 9, 0, tzinfo=UTC)
TICKET = Ticket(
    ref=TicketRef("jira", "10001", "OPS-1"), title="down", labels=frozenset({"a"}), fields={"x": 1}
)
EVENT = TicketEvent(kind=EventKind.TICKET_UPDATED, ticket=TICKET, actor=Person("u1", "Ann"), occurred_at=T0)

CASES = [
    (TICKET, {"priority": Priority.P1, "labels": frozenset({"b"})}),
    (EVENT, {"ticket": replace(TICKET, title="up"), "comment": None}),
    (TicketState(), {"tier": "L2", "priority_pinned": True}),
    (Clock(T0), {"stopped_at": T0, "warned": frozenset({50})}),
    (SlaState(started_at=T0), {"clocks": {}}),
    (Comment("c1", "hi", Person("u1", "Ann")), {"by_requester": True}),
]


@pytest.mark.parametrize(("obj", "changes"), CASES, ids=lambda v: type(v).__name__)
def test_the_same_object_as_dataclasses_replace_gives(obj, changes):
    assert _stored_fields(type(obj)) is not None  # these take the fast way
    fast, slow = replace(obj, **changes), dataclasses.replace(obj, **changes)
    assert type(fast) is type(slow) and fast == slow
    assert all(getattr(fast, f.name) is getattr(slow, f.name) for f in dataclasses.fields(obj))
    assert vars(fast) == vars(slow) and obj == replace(obj)  # the original is untouched
    with pytest.raises(dataclasses.FrozenInstanceError):
        fast.__setattr__(next(iter(changes)), None)


def test_a_name_that_is_no_field_fails_as_dataclasses_replace_fails():
    with pytest.raises(TypeError):
        replace(TicketState(), colour="red")


def test_a_class_whose_init_does_more_goes_the_ordinary_way():
    @dataclasses.dataclass(frozen=True)
    class Checked:
        n: int
        double: int = dataclasses.field(init=False, default=0)

        def __post_init__(self):
            object.__setattr__(self, "double", self.n * 2)

    @dataclasses.dataclass(frozen=True)
    class Own:
        n: int

        def __init__(self, n):
            object.__setattr__(self, "n", abs(n))

    assert _stored_fields(Checked) is None and _stored_fields(Own) is None
    assert replace(Checked(1), n=5).double == 10
    assert replace(Own(1), n=-3).n == 3
    assert (
        _stored_fields(Decision) is not None
        or replace(Decision(None, None, "", "L1", "L1"), tier_after="L2").tier_after == "L2"
    )
