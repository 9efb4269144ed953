"""ServiceNow business-rule payload → TicketEvent, and a Table API record → Ticket."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from connector.model import Change, Comment, EventKind, Person, Requester, Status, TicketRef
from platforms.errors import PayloadError
from platforms.servicenow import provider
from platforms.servicenow.normalise import normalise_record, parse_datetime, status
from tests.support.fixtures import load_fixture

INSTANCE = "https://instance.servicenow.com"
INC46 = "a9e30c7dc61122760116894de7bcc7bd"
INC50 = "ef43c6d40a0a0b5700c77f9bf387afe3"
JOE = "46c6f9efa9fe198101ddf5eed9adf6e7"
CASEY = "5b7c200d0a640069006b3845b5d0fa7c"
L2_GROUP = "287ebd7da9fe198100f92cc8d1d2154e"


def event(name: str, **changes):
    payload = {**load_fixture("servicenow", name), **changes}
    return provider.normalise(payload, provider.identify({}, payload))


def test_incident_inserted():
    ev = event("incident_inserted__basic")
    assert ev.kind is EventKind.TICKET_CREATED
    assert ev.delivery_id == f"{INC46}:0"
    t = ev.ticket
    assert t.ref == TicketRef(
        "servicenow", INC46, "INC0000046", f"{INSTANCE}/nav_to.do?uri=incident.do?sys_id={INC46}"
    )
    assert t.title == "Can't access SFA software"
    assert t.status is Status.NEW
    assert t.priority is None and t.platform_priority == "3"
    assert t.labels == frozenset()
    assert t.assignee is None and t.group == "8a4dde73c6112278017a6a4baf547aa7"
    assert t.requester == Requester(
        id=JOE,
        name="Joe Employee",
        email="joe.employee@example.com",
        tier="standard",
        region="US",
        language="en",
    )
    assert t.fields == {"impact": "1", "urgency": "3", "priority": "3", "category": "software"}
    assert t.created_at == t.updated_at == datetime(2015, 11, 1, 22, 5, 30, tzinfo=UTC)
    assert t.version == "0"
    assert ev.occurred_at == t.updated_at
    assert ev.actor == Person(id="admin")
    assert ev.comment is None
    # an insert lists the initial values, like Jira's creation changelog
    assert ev.changed("priority") == Change("priority", None, "3")
    assert ev.changed("assignment_group") == Change(
        "assignment_group", None, "8a4dde73c6112278017a6a4baf547aa7"
    )
    assert ev.changed("assigned_to") is None  # empty on the new incident: not listed


def test_every_field_value_is_a_string_as_the_table_api_gives_it():
    for name in ("incident_inserted__basic", "incident_updated__priority", "incident_updated__tagged"):
        t = event(name).ticket
        assert all(isinstance(value, str) for value in t.fields.values()), name
        assert isinstance(t.platform_priority, str) and isinstance(t.version, str)


def test_priority_raised_by_a_person():
    ev = event("incident_updated__priority")
    assert ev.kind is EventKind.TICKET_UPDATED
    assert ev.changes == (Change("urgency", "2", "1"), Change("priority", "2", "1"))
    assert ev.ticket.fields == {"impact": "1", "urgency": "1", "priority": "1", "category": "hardware"}
    assert ev.ticket.platform_priority == "1" and ev.ticket.status is Status.IN_PROGRESS
    assert ev.ticket.assignee == "681b365ec0a80164000fb0b05854a0cd"
    assert ev.actor == Person(id="admin")


def test_impact_and_urgency_changed_without_moving_priority_still_reports_a_priority_change():
    ev = event("incident_updated__impact_urgency_swap")
    # The rule reported no priority change (1/2 → 2/1 is priority 2 both ways) …
    payload = load_fixture("servicenow", "incident_updated__impact_urgency_swap")
    assert [c["field"] for c in payload["changes"]] == ["impact", "urgency"]
    # … but a person re-chose the priority's inputs: the core must see it.
    assert ev.changed("priority") == Change("priority", "2", "2")
    assert ev.changes == (
        Change("impact", "1", "2"),
        Change("urgency", "2", "1"),
        Change("priority", "2", "2"),
    )


def test_a_priority_change_is_not_duplicated():
    ev = event("incident_updated__priority")
    assert [c.field for c in ev.changes].count("priority") == 1


def test_a_change_to_other_fields_alone_is_no_priority_change():
    ev = event("incident_updated__tagged")
    assert ev.changes == (Change("state", "2", "3"),)
    assert ev.changed("priority") is None
    assert ev.ticket.status is Status.ON_HOLD


def test_comment_by_the_caller():
    ev = event("incident_updated__comment_by_caller")
    assert ev.kind is EventKind.COMMENT_ADDED
    assert ev.comment == Comment(
        id="5d2a7e1f1b8f4d10a2c3e4f5a6b7c8d9",
        text="This is the third time \u2014 I want to speak to your manager.",
        author=Person(id="casey.customer"),
        public=True,
        by_requester=True,
    )
    assert ev.actor == Person(id="casey.customer")
    assert ev.changes == ()
    assert ev.ticket.requester is not None and ev.ticket.requester.id == CASEY
    assert ev.ticket.requester.tier == "enterprise" and ev.ticket.requester.language == "de"


def test_an_update_with_an_agents_comment_is_comment_added_and_keeps_its_changes():
    ev = event("incident_updated__urgency_and_comment")  # the documented PATCH: urgency, assignee, comment
    assert ev.kind is EventKind.COMMENT_ADDED
    assert ev.comment is not None
    assert ev.comment.text == "Elevating urgency, this is a blocking issue"
    assert ev.comment.author == Person(id="admin") and ev.comment.by_requester is False and ev.comment.public
    assert ev.changes == (
        Change("urgency", "2", "1"),
        Change("priority", "2", "1"),
        Change("assigned_to", None, "681b365ec0a80164000fb0b05854a0cd"),
    )


def test_a_comment_without_a_journal_sys_id_gets_the_delivery_as_its_id():
    payload = load_fixture("servicenow", "incident_updated__comment_by_caller")
    payload["comment"]["sys_id"] = ""
    ev = provider.normalise(payload, provider.identify({}, payload))
    assert ev.comment is not None and ev.comment.id == f"{INC50}:9"


def test_a_comment_is_not_the_requesters_without_the_callers_user_name():
    payload = load_fixture("servicenow", "incident_updated__comment_by_caller")
    payload["caller"] = None
    ev = provider.normalise(payload, provider.identify({}, payload))
    assert ev.comment is not None and ev.comment.by_requester is False
    assert ev.ticket.requester == Requester(id=CASEY)  # the caller_id alone


def test_a_first_comment_on_insert_keeps_the_event_a_creation():
    payload = load_fixture("servicenow", "incident_inserted__basic")
    payload["comment"] = {
        "sys_id": "",
        "text": "Since this morning.",
        "author": "joe.employee",
        "created": "",
    }
    ev = provider.normalise(payload, provider.identify({}, payload))
    assert ev.kind is EventKind.TICKET_CREATED
    assert ev.comment is not None and ev.comment.by_requester is True


def test_work_note_is_an_update_and_its_text_is_not_carried():
    ev = event("incident_updated__work_note")
    assert ev.kind is EventKind.TICKET_UPDATED
    assert ev.comment is None
    assert ev.changes == (Change("work_notes", None, "added"),)
    assert ev.actor == Person(id="beth.anglin")


def test_echo_of_our_own_write_names_our_user():
    ev = event("incident_updated__echo")
    assert ev.actor == Person(id="escalator.bot")
    assert ev.changes == (
        Change("assignment_group", "8a5055c9c61122780043563ef53438e3", L2_GROUP),
        Change("work_notes", None, "added"),
    )
    assert ev.ticket.group == L2_GROUP


def test_tags_become_labels():
    assert event("incident_updated__tagged").ticket.labels == frozenset({"escalated-l2", "outage"})


def test_without_instance_url_there_is_no_browse_url():
    assert event("incident_updated__priority", instance_url="").ticket.ref.url is None


def test_empty_references_are_none():
    t = event(
        "incident_updated__priority", assigned_to="", assignment_group="", caller_id="", caller=None
    ).ticket
    assert (t.assignee, t.group, t.requester) == (None, None, None)


@pytest.mark.parametrize(
    ("state", "expected"),
    [
        ("1", Status.NEW),
        ("2", Status.IN_PROGRESS),
        ("3", Status.ON_HOLD),
        ("6", Status.RESOLVED),
        ("7", Status.CLOSED),
        ("8", Status.CLOSED),
        ("-5", Status.OPEN),  # a custom state
        ("", Status.OPEN),
    ],
)
def test_status_mapping(state, expected):
    assert status(state) is expected


def test_dates_are_utc():
    assert parse_datetime("2016-01-22 14:12:37", "x") == datetime(2016, 1, 22, 14, 12, 37, tzinfo=UTC)
    assert parse_datetime("", "x") is None and parse_datetime(None, "x") is None


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda p: p.pop("number"), "'number' missing"),
        (lambda p: p.__setitem__("impact", 1), "'impact' is not a string"),
        (lambda p: p.__setitem__("changes", {"urgency": "1"}), "'changes' is not a list"),
        (lambda p: p.__setitem__("changes", ["urgency"]), "a 'changes' entry is not an object"),
        (lambda p: p.__setitem__("changes", [{"previous": "1"}]), "names no field"),
        (lambda p: p.__setitem__("changes", [{"field": "urgency", "current": 1}]), "'changes' current"),
        (lambda p: p.__setitem__("tags", "outage"), "'tags' is not a list of strings"),
        (lambda p: p.__setitem__("extra_fields", ["category"]), "'extra_fields' is not an object"),
        (lambda p: p.__setitem__("caller", "casey"), "'caller' is not an object"),
        (lambda p: p.__setitem__("comment", "hello"), "'comment' is not an object"),
        (lambda p: p.__setitem__("comment", {"text": "hello"}), "'comment.author' missing"),
        (lambda p: p.__setitem__("work_note_added", "true"), "'work_note_added' is not true or false"),
    ],
)
def test_wrong_shapes_are_payload_errors(mutate, message):
    payload = load_fixture("servicenow", "incident_updated__priority")
    delivery = provider.identify({}, payload)
    mutate(payload)
    with pytest.raises(PayloadError, match=message):
        provider.normalise(payload, delivery)


def test_normalising_an_ignored_event_is_refused():
    payload = load_fixture("servicenow", "incident_deleted__basic")
    with pytest.raises(PayloadError, match="'incident.deleted' is not one we normalise"):
        provider.normalise(payload, provider.identify({}, payload))


# --- Table API records (what `fetch` reads) -----------------------------------------


def test_record_from_the_documented_get_response():
    record = load_fixture("servicenow", "api/table_get_incident__by_sys_id")
    t = normalise_record(
        record, base_url="https://instance.servicenow.com/", extra_fields=("category", "u_missing")
    )
    assert t.ref == TicketRef(
        "servicenow", INC46, "INC0000046", f"{INSTANCE}/nav_to.do?uri=incident.do?sys_id={INC46}"
    )
    assert t.title == "Can't access SFA software"
    assert t.status is Status.NEW
    assert t.platform_priority == "3"
    assert t.fields == {"impact": "1", "urgency": "3", "priority": "3", "category": "software"}
    assert t.assignee is None  # "" in the record
    assert t.group == "8a4dde73c6112278017a6a4baf547aa7"  # the {"link", "value"} reference's value
    assert t.requester == Requester(id=JOE)
    assert t.labels == frozenset()
    assert t.created_at == datetime(2015, 11, 1, 22, 5, 30, tzinfo=UTC)
    assert t.updated_at == datetime(2015, 11, 1, 22, 37, 27, tzinfo=UTC)
    assert t.version == "4"


def test_record_from_the_documented_patch_response_and_without_reference_links():
    record = load_fixture("servicenow", "api/table_patch_incident__urgency")["result"]
    flat = {k: (v["value"] if isinstance(v, dict) else v) for k, v in record.items()}
    for t in (normalise_record(record), normalise_record(flat)):
        assert t.ref == TicketRef("servicenow", INC50, "INC0000050", None)
        assert t.fields == {"impact": "1", "urgency": "1", "priority": "1"}
        assert t.assignee == "681b365ec0a80164000fb0b05854a0cd" and t.status is Status.IN_PROGRESS
        assert t.requester == Requester(id=CASEY) and t.version == "7"


@pytest.mark.parametrize(
    ("record", "message"),
    [
        ([], "not a JSON object"),
        ({"result": []}, "'result' is not an object"),
        ({"result": {"sys_id": "x"}}, "'sys_id'"),
        ({"result": {"sys_id": INC50, "sys_mod_count": "1"}}, "'number' missing"),
        ({"result": {"sys_id": INC50, "number": "INC1", "sys_mod_count": "1", "impact": 1}}, "'impact'"),
    ],
)
def test_wrong_record_shapes(record, message):
    with pytest.raises(PayloadError, match=message):
        normalise_record(record)


@pytest.mark.parametrize(
    ("mutate", "skipped"),
    [
        (
            lambda p: p.__setitem__("sys_updated_on", "2016-01-22T14:12:37Z"),
            "'sys_updated_on' is not YYYY-MM-DD",
        ),
        (lambda p: p.__setitem__("sys_created_on", 1453472000), "'sys_created_on' is not a date-time string"),
        (lambda p: p.__setitem__("extra_fields", {"category": 3}), "'extra_fields.category' is not a string"),
    ],
)
def test_an_unreadable_optional_value_is_skipped_with_a_note(mutate, skipped):
    payload = load_fixture("servicenow", "incident_updated__priority")
    delivery = provider.identify({}, payload)
    mutate(payload)
    event = provider.normalise(payload, delivery)
    (note,) = event.notes
    assert note.startswith("skipped: ") and skipped in note
    assert event.ticket.ref.key == payload["number"]
