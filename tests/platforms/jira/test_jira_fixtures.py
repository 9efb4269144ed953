"""The fixtures themselves: named after their event, every handled event covered."""

from __future__ import annotations

import pytest

from platforms.jira import provider
from platforms.jira.webhook import HANDLED_EVENTS
from tests.support.fixtures import fixture_names, load_fixture

NAMES = fixture_names("jira")


def test_every_handled_event_has_a_fixture():
    covered = {load_fixture("jira", name)["webhookEvent"] for name in NAMES}
    missing = set(HANDLED_EVENTS) - covered
    assert not missing, f"handled Jira events without a fixture: {sorted(missing)}"


def test_there_is_an_ignored_event_fixture():
    assert any(provider.identify({}, load_fixture("jira", name)).ignored for name in NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_fixture_name_matches_its_event(name):
    event = load_fixture("jira", name)["webhookEvent"]
    assert name.split("__", 1)[0] == event.removeprefix("jira:")
    assert "__" in name


@pytest.mark.parametrize("name", [n for n in NAMES if n.startswith(("issue_created", "issue_updated"))])
def test_created_and_updated_fixtures_carry_a_reporter(name):
    assert load_fixture("jira", name)["issue"]["fields"]["reporter"]["accountId"]


@pytest.mark.parametrize("name", NAMES)
def test_every_handled_fixture_normalises(name):
    payload = load_fixture("jira", name)
    delivery = provider.identify({}, payload)
    if not delivery.ignored:
        assert provider.normalise(payload, delivery).ticket.ref.id == delivery.ticket_id
