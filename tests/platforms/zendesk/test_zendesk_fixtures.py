"""The fixtures and the shipped trigger template: named after their event, every handled event covered."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

import platforms.zendesk
from connector.model import EventKind, Status
from platforms.zendesk import provider
from platforms.zendesk.webhook import HANDLED_EVENT_TYPES, TRIGGER_EVENTS
from tests.support.fixtures import fixture_names, load_fixture

NAMES = fixture_names("zendesk")
HEADERS = {"X-Zendesk-Webhook-Invocation-Id": "inv-1"}
TEMPLATE_FILE = Path(platforms.zendesk.__file__).with_name("trigger_template.json")
TEMPLATE = json.loads(TEMPLATE_FILE.read_text(encoding="utf-8"))
PLACEHOLDER = re.compile(r"\{\{[a-z_]+(\.[a-z_0-9]+)+\}\}")


def event_of(payload: dict[str, Any]) -> str:
    """A payload's event as fixture names spell it: the type without zen:event-type:, or the `event`."""
    kind = payload.get("type")
    return kind.removeprefix("zen:event-type:") if isinstance(kind, str) else payload["event"]


def is_trigger(payload: dict[str, Any]) -> bool:
    return "type" not in payload


def shape(value: Any) -> Any:
    """Keys and nesting only; the template's `ticket.fields` is the admin's to fill."""
    if isinstance(value, dict):
        return {k: ("fields" if k == "fields" else shape(v)) for k, v in value.items()}
    return type(value).__name__


def test_every_handled_event_type_has_a_fixture():
    covered = {load_fixture("zendesk", name).get("type") for name in NAMES}
    assert not set(HANDLED_EVENT_TYPES) - covered


def test_every_trigger_event_has_a_fixture():
    covered = {
        load_fixture("zendesk", name).get("event")
        for name in NAMES
        if name.split("__")[1].startswith("trigger")
    }
    assert not set(TRIGGER_EVENTS) - covered


def test_there_are_ignored_event_fixtures():
    ignored = [name for name in NAMES if provider.identify(HEADERS, load_fixture("zendesk", name)).ignored]
    assert "user.deleted__captured" in ignored and "ticket.subject_changed__subscription" in ignored


@pytest.mark.parametrize("name", NAMES)
def test_fixture_name_matches_its_event_and_style(name):
    payload = load_fixture("zendesk", name)
    event, variant = name.split("__", 1)
    assert event == event_of(payload)
    assert (
        variant.startswith("trigger")
        if is_trigger(payload)
        else variant.startswith(("subscription", "captured"))
    )


@pytest.mark.parametrize("name", NAMES)
def test_every_handled_fixture_normalises(name):
    payload = load_fixture("zendesk", name)
    delivery = provider.identify(HEADERS, payload)
    if not delivery.ignored:
        assert provider.normalise(payload, delivery).ticket.ref.id == delivery.ticket_id


@pytest.mark.parametrize("name", [n for n in NAMES if "__trigger" in n])
def test_trigger_fixtures_are_renderings_of_the_shipped_template(name):
    payload = load_fixture("zendesk", name)
    assert shape(payload) == shape(TEMPLATE)
    leaves = [v for k, v in payload["ticket"].items() if k != "fields"]
    leaves += [
        *payload["requester"].values(),
        *payload["current_user"].values(),
        *payload["comment"].values(),
    ]
    assert all(isinstance(v, str) for v in leaves)  # placeholders render strings, nothing else


def test_the_template_is_placeholders_except_the_event():
    assert TEMPLATE["event"] in TRIGGER_EVENTS
    leaves = [v for k, v in TEMPLATE["ticket"].items() if k != "fields"]
    leaves += [
        *TEMPLATE["requester"].values(),
        *TEMPLATE["current_user"].values(),
        *TEMPLATE["comment"].values(),
    ]
    assert leaves and all(PLACEHOLDER.fullmatch(v) for v in leaves), leaves
    assert TEMPLATE["ticket"]["fields"] == {}


def render_template(values: dict[str, str]) -> dict[str, Any]:
    """The template as Zendesk would render it: each placeholder replaced by its value ("" when unset)."""
    text = TEMPLATE_FILE.read_text(encoding="utf-8")
    return json.loads(re.sub(r"\{\{([^}]+)\}\}", lambda m: values.get(m[1], ""), text))


@pytest.mark.parametrize("event", sorted(TRIGGER_EVENTS))
def test_the_shipped_template_normalises_for_every_trigger(event):
    rendered = render_template(
        {
            "ticket.id": "4021",
            "ticket.status": "Open",
            "ticket.latest_comment.id": "6164070311005",
            "ticket.latest_comment.is_public": "true",
            "ticket.latest_comment.author.id": "6130869168922",
            "ticket.updated_at_with_timestamp": "2023-09-19T10:30:12Z",
        }
    )
    rendered["event"] = event
    ev = provider.normalise(rendered, provider.identify(HEADERS, rendered))
    assert ev.kind is TRIGGER_EVENTS[event] and ev.ticket.ref.id == "4021" and ev.ticket.status is Status.OPEN
    assert ev.ticket.version == "2023-09-19T10:30:12Z"
    assert (ev.comment is not None) == (ev.kind is EventKind.COMMENT_ADDED)
