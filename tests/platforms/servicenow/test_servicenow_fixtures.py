"""The fixtures themselves: named after their event, every handled event covered."""

from __future__ import annotations

import pytest

from platforms.servicenow import provider
from platforms.servicenow.webhook import HANDLED_EVENTS
from tests.support.fixtures import fixture_names, load_fixture

NAMES = fixture_names("servicenow")  # the business rule's deliveries; Table API answers live in api/


def test_every_handled_event_has_a_fixture():
    covered = {provider.identify({}, load_fixture("servicenow", name)).event_type for name in NAMES}
    missing = set(HANDLED_EVENTS) - covered
    assert not missing, f"handled ServiceNow events without a fixture: {sorted(missing)}"


def test_every_event_kind_is_covered():
    kinds = set()
    for name in NAMES:
        payload = load_fixture("servicenow", name)
        delivery = provider.identify({}, payload)
        if not delivery.ignored:
            kinds.add(provider.normalise(payload, delivery).kind.value)
    assert kinds == {"ticket.created", "ticket.updated", "comment.added"}


def test_there_is_an_ignored_event_fixture():
    assert any(provider.identify({}, load_fixture("servicenow", name)).ignored for name in NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_fixture_name_matches_its_event(name):
    event_type = provider.identify({}, load_fixture("servicenow", name)).event_type
    assert "__" in name
    assert name.split("__", 1)[0] == event_type.replace(".", "_")


@pytest.mark.parametrize("name", NAMES)
def test_every_handled_fixture_normalises(name):
    payload = load_fixture("servicenow", name)
    delivery = provider.identify({}, payload)
    if not delivery.ignored:
        assert provider.normalise(payload, delivery).ticket.ref.id == delivery.ticket_id
