"""Jira payload → TicketEvent, fixture by fixture."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from connector.model import Change, Comment, EventKind, Person, Requester, Status, TicketRef
from platforms.errors import PayloadError
from platforms.jira import provider
from platforms.jira.normalise import browse_url, comment_text, status
from tests.support.fixtures import load_fixture

PST = timezone(timedelta(hours=-8))
TEST_USER = "5c5f880629be9642ba529340"  # the person in the 2019 captures
CUSTOMER = "5d9e1a2b3c4d5e6f7a8b9c0d"  # the reporter of the derived scenarios
SITE = "https://some-instance-test.atlassian.net"


def event(name: str, delivery_id: str = "d-1"):
    payload = load_fixture("jira", name)
    return provider.normalise(
        payload, provider.identify({"X-Atlassian-Webhook-Identifier": delivery_id}, payload)
    )


def test_issue_created_basic():
    ev = event("issue_created__basic", "abc")
    assert ev.kind is EventKind.TICKET_CREATED
    assert ev.delivery_id == "10040@1550286112971"  # the change itself: issue id @ updated (epoch ms)
    t = ev.ticket
    assert t.ref == TicketRef("jira", "10040", "TES-41", f"{SITE}/browse/TES-41")
    assert t.title == "Unit test summary"
    assert t.status is Status.OPEN  # "To Do" by name, although its category is "new"
    assert t.priority is None and t.platform_priority == "High"
    assert t.labels == frozenset({"test-label"})
    assert t.assignee is None
    assert t.requester == Requester(id=TEST_USER, name="Test User", email="some-instance-test@gmail.com")
    assert t.created_at == datetime(2019, 2, 15, 19, 1, 52, 971000, tzinfo=PST)
    assert t.updated_at == t.created_at and t.created_at.utcoffset() == timedelta(hours=-8)
    assert ev.occurred_at == datetime(2019, 2, 16, 3, 1, 53, 23000, tzinfo=UTC)
    assert ev.actor == Person(id=TEST_USER, name="Test User", email="some-instance-test@gmail.com")
    assert ev.comment is None
    assert ev.changed("priority") == Change("priority", None, "High")
    assert ev.changed("status") == Change("status", None, "To Do")  # by fieldId, not the display "Status"
    assert ev.changed("reporter") == Change("reporter", None, "admin")  # an id, not "Test User"
    assert [c.field for c in ev.changes] == ["description", "priority", "reporter", "status", "summary"]


def test_custom_fields_are_kept_raw_and_only_custom_fields():
    t = event("issue_created__basic").ticket
    assert t.fields["customfield_10022"] == "0|i00067:"
    assert t.fields["customfield_10018"]["nonEditableReason"]["reason"] == "PLUGIN_LICENSE_ERROR"
    assert t.fields["customfield_10030"] is None
    assert all(name.startswith("customfield_") for name in t.fields)
    assert "summary" not in t.fields


def test_issue_created_many_fields():
    ev = event("issue_created__many_fields")
    t = ev.ticket
    assert t.ref == TicketRef("jira", "10509", "KT-22", "https://mmtest.atlassian.net/browse/KT-22")
    assert t.labels == frozenset({"Label1", "Label2"})
    assert t.platform_priority == "Medium"
    assert t.assignee == "5cedcb4355a88a0fc86388ba"
    payload = load_fixture("jira", "issue_created__many_fields")
    custom = {k for k in payload["issue"]["fields"] if k.startswith("customfield_")}
    assert set(t.fields) == custom and len(custom) > 60
    # the assignee change names account ids (tmpToAccountId), custom fields go by their id
    assert ev.changed("assignee") == Change("assignee", None, "5cedcb4355a88a0fc86388ba")
    assert ev.changed("customfield_10073") == Change("customfield_10073", None, "1")
    assert ev.changed("fixVersions") == Change("fixVersions", None, "d")
    assert t.created_at == datetime(2019, 8, 27, 12, 43, 24, 193000, tzinfo=timezone(timedelta(hours=-7)))


def test_issue_updated_priority():
    ev = event("issue_updated__priority")
    assert ev.kind is EventKind.TICKET_UPDATED
    assert ev.changes == (Change("priority", "Low", "High"),)
    assert ev.ticket.platform_priority == "High"
    assert ev.actor is not None and ev.actor.id == TEST_USER


def test_issue_updated_labels_are_kept_as_jira_sends_them():
    ev = event("issue_updated__labels")
    assert ev.changes == (Change("labels", "bad test-label", "sad test-label"),)
    assert ev.ticket.labels == frozenset({"sad", "test-label"})


def test_issue_updated_assignee_from_a_2019_payload_uses_the_username():
    ev = event("issue_updated__assignee")
    assert ev.changes == (Change("assignee", None, "admin"),)
    assert ev.ticket.assignee == TEST_USER  # accountId wins over key/name on the user object


def test_assignee_change_prefers_account_ids():
    payload = load_fixture("jira", "issue_updated__assignee")
    payload["changelog"]["items"][0].update(
        {"from": "old.user", "to": "admin", "tmpFromAccountId": "acc-old", "tmpToAccountId": "acc-new"}
    )
    ev = provider.normalise(payload, provider.identify({}, payload))
    assert ev.changes == (Change("assignee", "acc-old", "acc-new"),)


def test_unassigning_reports_none_not_a_display_name():
    payload = load_fixture("jira", "issue_updated__assignee")
    payload["changelog"]["items"][0].update(
        {"from": "acc-old", "fromString": "Old User", "to": None, "toString": None}
    )
    ev = provider.normalise(payload, provider.identify({}, payload))
    assert ev.changes == (Change("assignee", "acc-old", None),)


def test_changelog_item_without_field_id_uses_field():
    payload = load_fixture("jira", "issue_updated__priority")
    del payload["changelog"]["items"][0]["fieldId"]
    ev = provider.normalise(payload, provider.identify({}, payload))
    assert ev.changes == (Change("priority", "Low", "High"),)


def test_comment_created_basic_on_a_trimmed_issue():
    ev = event("comment_created__basic")
    assert ev.kind is EventKind.COMMENT_ADDED
    author = Person(id=TEST_USER, name="Test User", email=None)
    assert ev.actor == author
    assert ev.comment == Comment(
        id="10019",
        text="Added a comment with mentioned user [~user]",
        author=author,
        public=True,
        by_requester=False,
    )
    t = ev.ticket
    assert t.title == "Unit test summary 1" and t.platform_priority == "High" and t.status is Status.OPEN
    # the trimmed issue says nothing about these, so nothing is invented
    assert t.labels == frozenset() and t.requester is None and t.fields == {} and t.created_at is None
    assert ev.changes == ()
    assert ev.occurred_at == datetime.fromtimestamp(1550286678.321, tz=UTC)


def test_comment_asking_for_a_manager():
    ev = event("comment_created__asks_for_manager")
    assert ev.comment is not None
    assert ev.comment.text == "This is the third time \u2014 I want to speak to your manager."
    assert ev.comment.author.id == CUSTOMER and ev.comment.public
    # Jira's comment events carry no reporter: from the payload alone the author
    # cannot be recognised as the requester (the connector knows it from earlier events).
    assert ev.ticket.requester is None and ev.comment.by_requester is False
    assert ev.ticket.ref.key == "TES-42"
    assert event("issue_created__outage").ticket.requester.id == ev.comment.author.id


def test_comment_by_requester_when_the_payload_names_the_reporter():
    payload = load_fixture("jira", "comment_created__asks_for_manager")
    payload["issue"]["fields"]["reporter"] = load_fixture("jira", "issue_created__outage")["issue"]["fields"][
        "reporter"
    ]
    ev = provider.normalise(payload, provider.identify({}, payload))
    assert ev.comment is not None and ev.comment.by_requester is True


def test_jsm_internal_comment_is_not_public():
    payload = load_fixture("jira", "comment_created__basic")
    payload["comment"]["jsdPublic"] = False
    assert provider.normalise(payload, provider.identify({}, payload)).comment.public is False
    del payload["comment"]["jsdPublic"]
    assert provider.normalise(payload, provider.identify({}, payload)).comment.public is True


def test_adf_comment_body_becomes_text():
    body = {
        "type": "doc",
        "version": 1,
        "content": [
            {
                "type": "paragraph",
                "content": [{"type": "text", "text": "Hello "}, {"type": "text", "text": "there"}],
            },
            {"type": "paragraph", "content": [{"type": "text", "text": "manager please"}]},
        ],
    }
    assert comment_text(body) == "Hello there\nmanager please"


def test_issue_created_outage():
    ev = event("issue_created__outage")
    t = ev.ticket
    assert t.ref.key == "TES-42" and t.labels == frozenset({"outage"}) and t.platform_priority == "High"
    assert t.requester == Requester(id=CUSTOMER, name="Casey Customer", email="casey.customer@example.com")
    assert ev.actor is not None and ev.actor.id == CUSTOMER


def test_issue_created_security():
    t = event("issue_created__security").ticket
    assert (
        t.labels == frozenset({"security"}) and t.platform_priority == "Medium" and t.requester.id == CUSTOMER
    )


def test_issue_created_minor():
    t = event("issue_created__minor").ticket
    assert t.labels == frozenset() and t.platform_priority == "Low" and t.requester.id == CUSTOMER


def test_echo_of_our_own_write_names_our_account():
    ev = event("issue_updated__echo")
    assert ev.actor == Person(
        id="escalator-bot-account-id", name="Escalator", email="escalator-bot@example.com"
    )
    assert ev.changes == (Change("labels", "outage", "escalated-l2 outage"),)
    assert ev.ticket.labels == frozenset({"escalated-l2", "outage"})


def test_priority_lowered_by_a_person():
    ev = event("issue_updated__priority_lowered_by_person")
    assert ev.changes == (Change("priority", "High", "Low"),)
    assert ev.ticket.platform_priority == "Low"
    assert ev.actor is not None and ev.actor.id == TEST_USER


def test_old_payload_without_account_ids_falls_back_to_key():
    payload = load_fixture("jira", "issue_updated__assignee")
    del payload["user"]["accountId"]
    del payload["issue"]["fields"]["reporter"]["accountId"]
    ev = provider.normalise(payload, provider.identify({}, payload))
    assert ev.actor.id == "admin" and ev.ticket.requester.id == "admin"


@pytest.mark.parametrize(
    ("name", "category", "expected"),
    [
        ("To Do", "new", Status.OPEN),
        ("Backlog", "new", Status.NEW),
        ("In Review", "indeterminate", Status.IN_PROGRESS),
        ("Waiting for customer", "indeterminate", Status.PENDING),
        ("PENDING", "indeterminate", Status.PENDING),
        ("On hold", "indeterminate", Status.ON_HOLD),
        ("Done", "done", Status.RESOLVED),
        ("Resolved", "done", Status.RESOLVED),
        ("Closed", "done", Status.CLOSED),
        ("Something custom", "weird", Status.OPEN),
    ],
)
def test_status_mapping(name, category, expected):
    assert status({"name": name, "statusCategory": {"key": category}}) is expected


def test_browse_url_keeps_a_data_center_context_path():
    assert (
        browse_url("https://jira.example.com/jira/rest/api/2/issue/1", "OPS-1")
        == "https://jira.example.com/jira/browse/OPS-1"
    )
    assert browse_url(None, "OPS-1") is None


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda p: p["issue"].pop("key"), "'issue.key' missing"),
        (lambda p: p["issue"].pop("fields"), "'issue.fields' missing"),
        (lambda p: p["issue"]["fields"].__setitem__("labels", "outage"), "labels"),
        (lambda p: p["changelog"].__setitem__("items", {}), "'changelog.items'"),
    ],
)
def test_wrong_shapes_are_payload_errors(mutate, message):
    payload = load_fixture("jira", "issue_created__basic")
    delivery = provider.identify({}, payload)
    mutate(payload)
    with pytest.raises(PayloadError, match=message):
        provider.normalise(payload, delivery)


@pytest.mark.parametrize(
    ("mutate", "skipped"),
    [
        (lambda p: p["issue"]["fields"].__setitem__("created", "yesterday"), "'issue.fields.created'"),
        (lambda p: p["issue"]["fields"].__setitem__("updated", 17), "'issue.fields.updated'"),
        (lambda p: p.__setitem__("timestamp", "now"), "'timestamp'"),
        (lambda p: p.__setitem__("timestamp", 10**30), "'timestamp'"),
    ],
)
def test_an_unreadable_optional_value_is_skipped_with_a_note(mutate, skipped):
    payload = load_fixture("jira", "issue_created__basic")
    delivery = provider.identify({}, payload)
    mutate(payload)
    event = provider.normalise(payload, delivery)

    (note,) = event.notes
    assert note.startswith("skipped: ") and skipped in note
    assert event.ticket.ref.key == payload["issue"]["key"]  # the rest is read as usual


def test_comment_event_without_comment_is_a_payload_error():
    payload = load_fixture("jira", "comment_created__basic")
    delivery = provider.identify({}, payload)
    del payload["comment"]
    with pytest.raises(PayloadError, match="no 'comment' object"):
        provider.normalise(payload, delivery)


def test_normalising_an_ignored_event_is_refused():
    payload = load_fixture("jira", "issue_deleted__basic")
    with pytest.raises(PayloadError, match="not one we normalise"):
        provider.normalise(payload, provider.identify({}, payload))
