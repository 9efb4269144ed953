"""Zendesk payload → TicketEvent, fixture by fixture, for both body styles; REST ticket → Ticket."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from connector.model import Change, Comment, EventKind, Person, Requester, Status, TicketRef
from platforms.errors import PayloadError
from platforms.zendesk import provider
from platforms.zendesk.normalise import agent_url, normalise_ticket
from platforms.zendesk.values import priority, status, tags, version
from tests.support.fixtures import FIXTURES, load_fixture

BOT = "6164070000001"  # Escalator's own Zendesk user in the derived scenarios
AGENT = "6130907993114"  # the agent of the zenpy recordings
CUSTOMER = "6130869168922"  # the requester of the zenpy recordings ("Casey Customer" here)
L1, L2 = "6130852536346", "6130852537001"
SITE = "https://d3v-zenpydev.zendesk.com"
HEADERS = {"X-Zendesk-Webhook-Invocation-Id": "inv-1"}


def event(fixture: str | dict):
    """The event a fixture (by name) or a modified payload normalises to."""
    payload = load_fixture("zendesk", fixture) if isinstance(fixture, str) else fixture
    return provider.normalise(payload, provider.identify(HEADERS, payload))


def at(text: str) -> datetime:
    return datetime.fromisoformat(text)


# --- trigger template ----------------------------------------------------------


def test_trigger_ticket_created_with_every_value_a_string():
    ev = event("ticket.created__trigger")
    assert ev.kind is EventKind.TICKET_CREATED and ev.delivery_id == "7@1738612781"  # ticket id @ updated_at
    t = ev.ticket
    assert t.ref == TicketRef("zendesk", "7", "#7", "https://asdf1640.zendesk.com/agent/tickets/7")
    assert t.title == "Hello world"
    assert t.status is Status.OPEN  # the placeholder renders "Open"
    assert t.priority is None and t.platform_priority == "normal"  # "Normal", in the API's spelling
    assert t.labels == frozenset({"change_address", "help", "order"})  # one space-separated string
    assert (t.assignee, t.group) == (AGENT, L1)
    assert t.requester == Requester(
        id="6130869168923", name="testerzulip", email="testerzulip@example.com", language="English"
    )
    assert t.created_at == t.updated_at == datetime(2025, 2, 3, 19, 59, 41, tzinfo=UTC)
    assert t.version == "2025-02-03T19:59:41Z"  # sent back as `updated_stamp`
    assert ev.actor == Person(id="6130869168923", name="testerzulip")
    assert ev.occurred_at == t.updated_at
    assert ev.changes == () and ev.comment is None


def test_trigger_custom_fields_by_field_id_typed_only_where_the_template_says():
    fields = event("ticket.created__trigger").ticket.fields
    assert fields == {"360012345678": "order-1234", "360012345679": True, "360012345680": 3}


def test_trigger_outage_carries_the_requesters_tier_and_region():
    t = event("ticket.created__trigger_outage").ticket
    assert t.requester == Requester(
        id=CUSTOMER,
        name="Casey Customer",
        email="casey.customer@example.com",
        tier="enterprise",
        region="emea",
        language="English",
    )
    assert t.labels == frozenset({"outage"}) and t.platform_priority == "high"
    assert t.ref == TicketRef("zendesk", "4021", "#4021", f"{SITE}/agent/tickets/4021")
    assert t.assignee is None  # "" renders for an unassigned ticket


def test_trigger_empty_placeholders_are_absent_values():
    ev = event("ticket.created__trigger_empty_placeholders")
    t = ev.ticket
    assert t.status is Status.NEW
    assert t.platform_priority is None
    assert t.labels == frozenset()
    assert t.assignee is None and t.group is None
    assert (t.requester.tier, t.requester.region, t.requester.language) == ("", "", "")
    assert ev.comment is None  # the latest comment is only read on comment events


def test_trigger_echo_names_our_own_account():
    ev = event("ticket.updated__trigger_echo")
    assert ev.kind is EventKind.TICKET_UPDATED
    assert ev.actor == Person(id=BOT, name="Escalator")
    assert ev.changes == () and ev.changed("priority") is None
    assert ev.ticket.labels == frozenset({"escalated-l2", "outage"}) and ev.ticket.group == L2


def test_trigger_priority_changed_by_a_person_is_a_priority_change():
    ev = event("ticket.priority_changed__trigger_lowered_by_person")
    assert ev.kind is EventKind.TICKET_UPDATED
    # Placeholders cannot show the value before; the trigger's condition is the witness.
    assert ev.changes == (Change("priority", None, "low"),)
    assert ev.changed("priority") is not None
    assert ev.actor == Person(id=AGENT, name="Alex Agent")
    assert ev.ticket.platform_priority == "low"


def test_trigger_plain_update_reports_no_changes():
    ev = event("ticket.updated__trigger_security_label")
    assert ev.kind is EventKind.TICKET_UPDATED and ev.changes == ()
    assert ev.ticket.labels == frozenset({"outage", "security"})
    assert ev.actor == Person(id=AGENT, name="Alex Agent")


def test_trigger_comment_asking_for_a_manager():
    ev = event("ticket.comment_added__trigger_asks_for_manager")
    assert ev.kind is EventKind.COMMENT_ADDED
    author = Person(id=CUSTOMER, name="Casey Customer")
    assert ev.comment == Comment(
        id="6164070311005",
        text="This is the third time \u2014 I want to speak to your manager.",
        author=author,
        public=True,
        by_requester=True,  # the template names the requester, so this is known from the payload
    )
    assert ev.actor == author
    assert ev.ticket.status is Status.PENDING and ev.changes == ()


def test_trigger_internal_note_is_not_public_and_not_by_the_requester():
    payload = load_fixture("zendesk", "ticket.comment_added__trigger_asks_for_manager")
    payload["comment"].update({"public": "False", "author_id": AGENT, "author_name": "Alex Agent"})
    payload["current_user"] = {"id": AGENT, "name": "Alex Agent"}
    comment = event(payload).comment
    assert comment.public is False and comment.by_requester is False


def test_trigger_without_a_current_user_has_no_actor_unless_a_comment_names_one():
    payload = load_fixture("zendesk", "ticket.updated__trigger_echo")
    payload["current_user"] = {"id": "", "name": ""}
    assert event(payload).actor is None
    payload = load_fixture("zendesk", "ticket.comment_added__trigger_asks_for_manager")
    del payload["current_user"]
    assert event(payload).actor == Person(id=CUSTOMER, name="Casey Customer")


def test_trigger_stamp_without_seconds_is_no_version():
    payload = load_fixture("zendesk", "ticket.created__trigger_outage")
    payload["ticket"]["updated_at"] = "2023-09-19T08:14Z"
    t = event(payload).ticket
    assert t.updated_at == datetime(2023, 9, 19, 8, 14, tzinfo=UTC)
    assert t.version is None  # it could never equal updated_at: every safe update would be a 409


def test_trigger_requester_missing_or_empty_is_none():
    payload = load_fixture("zendesk", "ticket.created__trigger_outage")
    payload["requester"]["id"] = ""
    assert event(payload).ticket.requester is None
    del payload["requester"]
    assert event(payload).ticket.requester is None


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (
            lambda p: p["ticket"].__setitem__("status", "Gelöst"),
            "'ticket.status' is 'Gelöst', not a Zendesk status",
        ),
        (
            lambda p: p["ticket"].__setitem__("priority", "Hoch"),
            "'ticket.priority' is 'Hoch', not one of urgent",
        ),
        (lambda p: p["ticket"].__setitem__("tags", ["a", 1]), "'ticket.tags'"),
        (lambda p: p["ticket"].__setitem__("fields", ["x"]), "no 'ticket.fields' object"),
        (lambda p: p["ticket"].__setitem__("assignee_id", ["1"]), "'ticket.assignee_id' is not an id"),
        (lambda p: p.__setitem__("requester", "Casey"), "no 'requester' object"),
        (lambda p: p["ticket"].__setitem__("title", {"text": "x"}), "'ticket.title' is not text"),
    ],
)
def test_trigger_wrong_shapes_are_payload_errors(mutate, message):
    payload = load_fixture("zendesk", "ticket.created__trigger")
    delivery = provider.identify(HEADERS, payload)
    mutate(payload)
    with pytest.raises(PayloadError, match=message):
        provider.normalise(payload, delivery)


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda p: p.pop("comment"), "no 'comment' object"),
        (lambda p: p["comment"].__setitem__("id", ""), "'comment.id' is empty"),
        (lambda p: p["comment"].__setitem__("author_id", ""), "'comment.author_id' is empty"),
        (lambda p: p["comment"].__setitem__("public", ""), "'comment.public' is '', not true or false"),
    ],
)
def test_trigger_comment_event_wrong_shapes(mutate, message):
    payload = load_fixture("zendesk", "ticket.comment_added__trigger_asks_for_manager")
    delivery = provider.identify(HEADERS, payload)
    mutate(payload)
    with pytest.raises(PayloadError, match=message):
        provider.normalise(payload, delivery)


# --- event subscriptions -------------------------------------------------------


def test_event_ticket_created():
    ev = event("ticket.created__subscription")
    assert ev.kind is EventKind.TICKET_CREATED and ev.delivery_id == "inv-1"
    t = ev.ticket
    assert t.ref == TicketRef("zendesk", "4021", "#4021", None)  # the envelope carries no URL
    assert t.title == "Checkout is down for all our stores"
    assert t.status is Status.OPEN and t.platform_priority == "high"  # "OPEN", "HIGH" in events
    assert t.labels == frozenset({"outage"})
    assert t.assignee is None and t.group == L1
    assert t.requester == Requester(id=CUSTOMER)
    assert t.fields == {}
    assert t.created_at == t.updated_at == datetime(2023, 9, 19, 8, 14, 3, tzinfo=UTC)
    assert t.version == "2023-09-19T08:14:03Z"
    assert ev.actor == Person(id=CUSTOMER)  # detail.actor_id
    assert ev.occurred_at == datetime(2023, 9, 19, 8, 14, 3, 672717, tzinfo=UTC)  # nanoseconds cut
    assert ev.changes == () and ev.comment is None


def test_event_priority_changed_by_a_person():
    ev = event("ticket.priority_changed__subscription_by_person")
    assert ev.kind is EventKind.TICKET_UPDATED
    assert ev.changes == (Change("priority", "urgent", "low"),)
    assert ev.actor == Person(id=AGENT)
    assert ev.ticket.platform_priority == "low" and ev.ticket.assignee == AGENT


def test_event_status_changed():
    ev = event("ticket.status_changed__subscription")
    assert ev.changes == (Change("status", "open", "hold"),)
    assert ev.ticket.status is Status.ON_HOLD


def test_event_tags_changed_reports_the_full_lists_as_labels():
    ev = event("ticket.tags_changed__subscription")
    assert ev.changes == (Change("labels", "outage", "outage security"),)
    assert ev.ticket.labels == frozenset({"outage", "security"})


def test_event_echo_of_our_own_write():
    ev = event("ticket.tags_changed__subscription_echo")
    assert ev.actor == Person(id=BOT)
    assert ev.changes == (Change("labels", "escalated-l1 outage", "escalated-l2 outage"),)


def test_event_agent_assignment_changed():
    ev = event("ticket.agent_assignment_changed__subscription")
    assert ev.changes == (Change("assignee", None, AGENT),)
    assert ev.ticket.assignee == AGENT


def test_event_group_assignment_changed():
    ev = event("ticket.group_assignment_changed__subscription")
    assert ev.changes == (Change("group", L1, L2),)
    assert ev.ticket.group == L2


def test_event_assignment_ids_sent_as_numbers_are_text():
    payload = load_fixture("zendesk", "ticket.agent_assignment_changed__subscription")
    payload["event"] = {"previous": 0, "current": int(AGENT)}
    payload["detail"]["assignee_id"] = int(AGENT)
    ev = event(payload)
    assert ev.changes == (Change("assignee", None, AGENT),) and ev.ticket.assignee == AGENT


def test_event_comment_asking_for_a_manager():
    ev = event("ticket.comment_added__subscription_asks_for_manager")
    assert ev.kind is EventKind.COMMENT_ADDED
    author = Person(id=CUSTOMER, name="Casey Customer")
    assert ev.comment == Comment(
        id="6164070311005",
        text="This is the third time \u2014 I want to speak to your manager.",
        author=author,
        public=True,
        by_requester=True,  # detail.requester_id is the author
    )
    assert ev.actor == Person(id=CUSTOMER)
    assert ev.ticket.status is Status.PENDING


def test_event_comment_without_actor_id_is_acted_by_its_author():
    payload = load_fixture("zendesk", "ticket.comment_added__subscription_asks_for_manager")
    del payload["detail"]["actor_id"]
    payload["event"]["comment"]["is_public"] = False
    ev = event(payload)
    assert ev.actor == Person(id=CUSTOMER, name="Casey Customer") and ev.comment.public is False


def test_normalising_an_ignored_event_is_refused():
    payload = load_fixture("zendesk", "ticket.subject_changed__subscription")
    with pytest.raises(PayloadError, match="'zen:event-type:ticket.subject_changed' is not one we normalise"):
        event(payload)


@pytest.mark.parametrize(
    ("name", "mutate", "message"),
    [
        ("ticket.created__subscription", lambda p: p.pop("detail"), "no 'detail' object"),
        ("ticket.created__subscription", lambda p: p.__setitem__("event", []), "no 'event' object"),
        (
            "ticket.created__subscription",
            lambda p: p["detail"].__setitem__("status", "WEIRD"),
            "'detail.status'",
        ),
        ("ticket.created__subscription", lambda p: p["detail"].__setitem__("tags", "a,b"), None),
        (
            "ticket.comment_added__subscription_asks_for_manager",
            lambda p: p["event"].pop("comment"),
            "comment",
        ),
        (
            "ticket.comment_added__subscription_asks_for_manager",
            lambda p: p["event"]["comment"]["author"].pop("id"),
            "'event.comment.author.id' missing",
        ),
        (
            "ticket.priority_changed__subscription_by_person",
            lambda p: p["event"].__setitem__("current", "SEVERE"),
            "'event.current' is 'SEVERE'",
        ),
    ],
)
def test_event_wrong_shapes_are_payload_errors(name, mutate, message):
    payload = load_fixture("zendesk", name)
    delivery = provider.identify(HEADERS, payload)
    mutate(payload)
    if message is None:  # a tags string is read as the trigger style reads it, not refused
        assert provider.normalise(payload, delivery).ticket.labels == frozenset({"a,b"})
        return
    with pytest.raises(PayloadError, match=message):
        provider.normalise(payload, delivery)


def test_normalise_refuses_a_non_object():
    with pytest.raises(PayloadError, match="not a JSON object"):
        provider.normalise([], provider.identify(HEADERS, load_fixture("zendesk", "ticket.created__trigger")))


# --- REST ticket (fetch) -------------------------------------------------------


def test_rest_ticket_from_the_recorded_get():
    body = json.loads((FIXTURES / "zendesk" / "api" / "ticket_get_response.json").read_text(encoding="utf-8"))
    t = normalise_ticket(body["ticket"])
    assert t.ref == TicketRef("zendesk", "1", "#1", "https://z3n-jteitelbaum.zendesk.com/agent/tickets/1")
    assert t.title == "Sample ticket: Meet the ticket"
    assert t.status is Status.OPEN and t.platform_priority == "normal"
    assert t.labels == frozenset({"sample", "support", "zendesk"})
    assert (t.assignee, t.group) == ("6130907993114", "6130852536346")
    assert t.requester == Requester(id="6130869168922")
    assert t.fields == {}
    assert t.updated_at == datetime(2023, 9, 9, 23, 52, 5, tzinfo=UTC)
    assert t.version == "2023-09-09T23:52:05Z"


def test_rest_ticket_custom_fields_and_empty_priority():
    body = json.loads((FIXTURES / "zendesk" / "api" / "ticket_update_put_response_200.json").read_text())
    ticket = body["ticket"] | {
        "custom_fields": [{"id": 360012345679, "value": True}, {"id": 2, "value": None}]
    }
    t = normalise_ticket(ticket)
    assert t.fields == {"360012345679": True, "2": None}
    assert t.platform_priority is None and t.status is Status.NEW and t.assignee is None
    assert t.version == "2023-09-18T23:26:01Z"


@pytest.mark.parametrize(
    ("ticket", "message"),
    [
        ({"id": 1, "status": "open", "custom_fields": {"1": "x"}}, "custom_fields"),
        ({"status": "open"}, "'ticket.id'"),
        ({"id": 1, "status": "open", "updated_at": "soon"}, "'ticket.updated_at'"),
        ({"id": 1}, "'ticket.status' is None"),
    ],
)
def test_rest_ticket_wrong_shapes(ticket, message):
    with pytest.raises(PayloadError, match=message):
        normalise_ticket(ticket)


# --- values ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("New", Status.NEW),
        ("open", Status.OPEN),
        ("OPEN", Status.OPEN),
        ("Pending", Status.PENDING),
        ("On-hold", Status.ON_HOLD),
        ("hold", Status.ON_HOLD),
        ("HOLD", Status.ON_HOLD),
        ("Solved", Status.RESOLVED),
        ("closed", Status.CLOSED),
        ("DELETED", Status.CLOSED),
    ],
)
def test_status_mapping(value, expected):
    assert status(value, "x") is expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [("Urgent", "urgent"), ("HIGH", "high"), ("normal", "normal"), ("Low", "low"), ("", None), ("-", None)],
)
def test_priority_spellings(value, expected):
    assert priority(value, "x") == expected
    assert priority(None, "x") is None


def test_tags_from_a_string_or_a_list():
    assert tags(" outage  vip\tsecurity ", "x") == frozenset({"outage", "vip", "security"})
    assert tags(["outage", ""], "x") == frozenset({"outage"})
    assert tags("", "x") == tags(None, "x") == frozenset()


def test_version_needs_seconds():
    assert version("2023-09-18T23:26:01Z") == "2023-09-18T23:26:01Z"
    assert version("2023-09-18T23:26Z") is None and version("") is None and version(None) is None


def test_agent_url_keeps_a_proxy_prefix():
    assert (
        agent_url("https://proxy.example/zd/api/v2/tickets/9.json", "9")
        == "https://proxy.example/zd/agent/tickets/9"
    )
    assert agent_url(None, "9") is None and agent_url("tickets/9.json", "9") is None


def test_datetimes_are_aware_utc():
    payload = load_fixture("zendesk", "ticket.created__trigger_outage")
    payload["ticket"]["created_at"] = "2023-09-19T10:14:03+02:00"
    t = event(payload).ticket
    assert t.created_at == at("2023-09-19T08:14:03+00:00") and t.created_at.tzinfo is UTC


@pytest.mark.parametrize(
    ("mutate", "skipped"),
    [
        (lambda p: p["ticket"].__setitem__("created_at", "February 3, 2025"), "'ticket.created_at'"),
        (
            lambda p: p["ticket"]["fields"].__setitem__("1", {"type": "integer", "value": "x"}),
            "not a integer",
        ),
        (
            lambda p: p["ticket"]["fields"].__setitem__("1", {"type": "date", "value": "x"}),
            "'ticket.fields.1.type'",
        ),
    ],
)
def test_trigger_an_unreadable_optional_value_is_skipped_with_a_note(mutate, skipped):
    payload = load_fixture("zendesk", "ticket.created__trigger")
    delivery = provider.identify(HEADERS, payload)
    mutate(payload)
    event = provider.normalise(payload, delivery)
    (note,) = event.notes
    assert note.startswith("skipped: ") and skipped in note
    assert "1" not in event.ticket.fields  # the unreadable field is left out: the policy reads its default


@pytest.mark.parametrize(
    ("mutate", "skipped"),
    [
        (lambda p: p.__setitem__("time", 1695111243), "'time'"),
        (lambda p: p["detail"].__setitem__("created_at", "yesterday"), "'detail.created_at'"),
    ],
)
def test_event_an_unreadable_optional_value_is_skipped_with_a_note(mutate, skipped):
    payload = load_fixture("zendesk", "ticket.created__subscription")
    delivery = provider.identify(HEADERS, payload)
    mutate(payload)
    event = provider.normalise(payload, delivery)
    (note,) = event.notes
    assert note.startswith("skipped: ") and skipped in note
