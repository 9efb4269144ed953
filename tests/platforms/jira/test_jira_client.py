"""Jira outbound: a plan rendered into exact requests, and what Jira's answers become."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import requests
import responses
from responses import matchers

from connector.model import Note, Plan, TicketRef
from platforms.base import OutboundRequest, SentRequest
from platforms.errors import NotConfigured, PlatformError, RejectedByPlatform, TransientPlatformError
from platforms.jira import JiraClient, Settings
from tests.support.fixtures import load_fixture
from tests.support.sending import apply_plan

SITE = "https://acme.atlassian.net"
ISSUE = f"{SITE}/rest/api/2/issue/OPS-7"
TICKET = TicketRef("jira", "10007", "OPS-7", f"{SITE}/browse/OPS-7")
SCHEMA_FILE = (
    Path(__file__).resolve().parents[2] / "fixtures" / "jira" / "schema" / "IssueUpdateDetails.schema.json"
)
EDIT_ISSUE = jsonschema.Draft202012Validator(json.loads(SCHEMA_FILE.read_text(encoding="utf-8")))
INTERNAL = [{"key": "sd.public.comment", "value": {"internal": True}}]


def client(**settings: Any) -> JiraClient:
    values: dict[str, Any] = {
        "url": SITE + "/",
        "email": "bot@acme.test",
        "api_token": "t0ken",
        "account_id": "bot-id",
    }
    values.update(settings)
    return JiraClient(Settings(**values))


def render(plan: Plan, **settings: Any) -> list[OutboundRequest]:
    rendered = client(**settings).render(plan)
    for request in rendered:
        if request.method == "PUT":
            EDIT_ISSUE.validate(request.json)  # every edit body is one Jira documents
    return rendered


# --- render ------------------------------------------------------------------


def test_empty_plan_renders_nothing():
    assert render(Plan(ticket=TICKET)) == []


def test_priority_only():
    assert render(Plan(ticket=TICKET, priority="Highest")) == [
        OutboundRequest("PUT", ISSUE, {"fields": {"priority": {"name": "Highest"}}}, purpose="edit issue")
    ]


def test_assignee_by_account_id():
    [put] = render(Plan(ticket=TICKET, assignee="5b10ac8d82e05b22cc7d4ef5"))
    assert put.json == {"fields": {"assignee": {"accountId": "5b10ac8d82e05b22cc7d4ef5"}}}


def test_labels_add_and_remove_sorted():
    [put] = render(
        Plan(
            ticket=TICKET,
            labels_add=frozenset({"sla-breached", "escalated-l2"}),
            labels_remove=frozenset({"escalated-l1"}),
        )
    )
    assert put.json == {
        "update": {"labels": [{"add": "escalated-l2"}, {"add": "sla-breached"}, {"remove": "escalated-l1"}]}
    }


def test_custom_fields_are_merged_as_given():
    [put] = render(Plan(ticket=TICKET, priority="High", fields={"customfield_10050": {"value": "L2"}}))
    assert put.json == {"fields": {"customfield_10050": {"value": "L2"}, "priority": {"name": "High"}}}


def test_group_is_ignored_because_jira_has_no_group_field():
    assert render(Plan(ticket=TICKET, group="team-42")) == []


def test_everything_with_an_internal_note_is_one_put_and_one_post():
    plan = Plan(
        ticket=TICKET,
        priority="Highest",
        assignee="acc-l2",
        labels_add=frozenset({"escalated-l2"}),
        labels_remove=frozenset({"escalated-l1"}),
        note=Note("Escalated to L2: outage label.", internal=True),
    )
    assert render(plan) == [
        OutboundRequest(
            "PUT",
            ISSUE,
            {
                "fields": {"priority": {"name": "Highest"}, "assignee": {"accountId": "acc-l2"}},
                "update": {"labels": [{"add": "escalated-l2"}, {"remove": "escalated-l1"}]},
            },
            purpose="edit issue",
        ),
        OutboundRequest(
            "POST",
            f"{ISSUE}/comment",
            {"body": "Escalated to L2: outage label.", "properties": INTERNAL},
            purpose="internal note",
        ),
    ]


def test_only_an_internal_note_is_only_the_post():
    assert render(Plan(ticket=TICKET, note=Note("why", internal=True))) == [
        OutboundRequest(
            "POST", f"{ISSUE}/comment", {"body": "why", "properties": INTERNAL}, purpose="internal note"
        )
    ]


def test_internal_note_goes_into_the_put_when_notes_are_plain_comments():
    [put] = render(Plan(ticket=TICKET, priority="High", note=Note("why", internal=True)), notes="comment")
    assert put == OutboundRequest(
        "PUT",
        ISSUE,
        {"fields": {"priority": {"name": "High"}}, "update": {"comment": [{"add": {"body": "why"}}]}},
        purpose="edit issue",
    )


def test_public_note_goes_into_the_put_even_on_jsm():
    [put] = render(Plan(ticket=TICKET, note=Note("We are on it.", internal=False)))
    assert put.json == {"update": {"comment": [{"add": {"body": "We are on it."}}]}}


def test_only_a_note_with_plain_comments_is_one_put():
    [put] = render(Plan(ticket=TICKET, note=Note("why")), notes="comment")
    assert put.method == "PUT" and put.json == {"update": {"comment": [{"add": {"body": "why"}}]}}


def test_issue_key_is_url_quoted():
    [put] = render(Plan(ticket=TicketRef("jira", "1", "OPS 7/x"), priority="Low"))
    assert put.url == f"{SITE}/rest/api/2/issue/OPS%207%2Fx"


def test_render_makes_no_request():
    with responses.RequestsMock(assert_all_requests_are_fired=True) as mock:
        render(Plan(ticket=TICKET, priority="High", note=Note("n")))
        assert len(mock.calls) == 0


@pytest.mark.parametrize(
    "body",
    [
        {"update": {"labels": [{"add": "x", "replace": "y"}]}},  # unknown operation
        {"update": {"labels": {"add": "x"}}},  # operations must be a list
        {"fields": ["priority"]},  # fields is an object
        {"properties": {"key": "k"}},  # properties is a list
    ],
)
def test_the_schema_check_is_real(body):
    with pytest.raises(jsonschema.ValidationError):
        EDIT_ISSUE.validate(body)


# --- send --------------------------------------------------------------------


def test_building_the_session_makes_no_request():
    with responses.RequestsMock(assert_all_requests_are_fired=True) as mock:
        jira_client = client()
        session = jira_client._session()  # the lazy `jira.JIRA(...)` is built here
        assert isinstance(session, requests.Session)
        assert session.auth == ("bot@acme.test", "t0ken")
        assert len(mock.calls) == 0


@responses.activate(assert_all_requests_are_fired=True)
def test_put_204_is_sent_exactly_as_rendered():
    body = {"fields": {"priority": {"name": "Highest"}}, "update": {"labels": [{"add": "escalated-l2"}]}}
    responses.put(
        ISSUE,
        status=204,
        match=[
            matchers.json_params_matcher(body, strict_match=True),
            matchers.header_matcher({"Content-Type": "application/json"}),
        ],
    )
    request = OutboundRequest("PUT", ISSUE, body, purpose="edit issue")
    assert client().send(request) == SentRequest(request, 204)
    assert len(responses.calls) == 1
    sent = responses.calls[0].request
    assert sent.method == "PUT" and sent.url == ISSUE
    assert json.loads(sent.body) == body
    assert sent.headers["Authorization"].startswith("Basic ")


@responses.activate(assert_all_requests_are_fired=True)
def test_apply_plan_sends_the_put_then_the_internal_comment():
    responses.put(
        ISSUE, status=204, match=[matchers.json_params_matcher({"fields": {"priority": {"name": "High"}}})]
    )
    responses.post(
        f"{ISSUE}/comment",
        status=201,
        json={"id": "10100"},
        match=[matchers.json_params_matcher({"body": "why", "properties": INTERNAL}, strict_match=True)],
    )
    result = apply_plan(client(), Plan(ticket=TICKET, priority="High", note=Note("why")))
    assert [(s.request.method, s.status) for s in result.sent] == [("PUT", 204), ("POST", 201)]
    assert [c.request.method for c in responses.calls] == ["PUT", "POST"]


@responses.activate
def test_429_is_transient_with_retry_after_and_is_not_retried_by_the_library():
    responses.put(
        ISSUE, status=429, headers={"Retry-After": "7", "RateLimit-Reason": "jira-per-issue-on-write"}
    )
    with pytest.raises(TransientPlatformError) as caught:
        client().send(OutboundRequest("PUT", ISSUE, {"fields": {}}))
    assert caught.value.status == 429 and caught.value.retry_after == 7
    assert "429" in str(caught.value) and "jira-per-issue-on-write" in str(caught.value)
    assert len(responses.calls) == 1  # max_retries=0: the worker retries, not the library


@pytest.mark.parametrize("status", [408, 409, 425, 500, 502, 503, 504])
@responses.activate
def test_retryable_statuses_are_transient(status):
    responses.put(ISSUE, status=status, body="upstream trouble")
    with pytest.raises(TransientPlatformError) as caught:
        client().send(OutboundRequest("PUT", ISSUE, {"fields": {}}))
    assert caught.value.status == status and caught.value.retry_after is None
    assert isinstance(caught.value.__cause__, Exception)  # the library's error is kept as the cause
    assert len(responses.calls) == 1


@responses.activate
def test_503_without_retry_after():
    responses.put(ISSUE, status=503, json={"errorMessages": ["Service unavailable"]})
    with pytest.raises(TransientPlatformError, match="503.*Service unavailable"):
        client().send(OutboundRequest("PUT", ISSUE, {"fields": {}}))


@pytest.mark.parametrize(
    "error",
    [
        requests.exceptions.ReadTimeout("read timed out"),
        requests.exceptions.ConnectTimeout("connect timed out"),
    ],
)
@responses.activate
def test_timeout_is_transient(error):
    responses.put(ISSUE, body=error)
    with pytest.raises(TransientPlatformError, match="did not answer .* within 15s") as caught:
        client().send(OutboundRequest("PUT", ISSUE, {"fields": {}}))
    assert caught.value.__cause__ is error and caught.value.status is None


@responses.activate
def test_connection_error_is_transient():
    responses.put(ISSUE, body=requests.exceptions.ConnectionError("connection refused"))
    with pytest.raises(TransientPlatformError, match="could not reach Jira"):
        client().send(OutboundRequest("PUT", ISSUE, {"fields": {}}))
    assert len(responses.calls) == 1


@responses.activate
def test_400_is_rejected_with_jiras_own_message():
    responses.put(
        ISSUE,
        status=400,
        json={"errorMessages": [], "errors": {"priority": "Priority name 'Urgent' is not valid"}},
    )
    with pytest.raises(RejectedByPlatform) as caught:
        client().send(OutboundRequest("PUT", ISSUE, {"fields": {"priority": {"name": "Urgent"}}}))
    assert caught.value.status == 400
    assert "priority: Priority name 'Urgent' is not valid" in str(caught.value)
    assert len(responses.calls) == 1


@responses.activate
def test_error_messages_and_field_errors_are_joined():
    responses.put(
        ISSUE, status=400, json={"errorMessages": ["Issue is locked"], "errors": {"labels": "bad label"}}
    )
    with pytest.raises(RejectedByPlatform, match="Issue is locked; labels: bad label"):
        client().send(OutboundRequest("PUT", ISSUE, {"fields": {}}))


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (401, "Client must be authenticated to access this resource."),
        (403, '{"errorMessages":["You do not have permission to edit issues in this project."],"errors":{}}'),
        (
            404,
            '{"errorMessages":["Issue does not exist or you do not have permission to see it."],"errors":{}}',
        ),
    ],
)
@responses.activate
def test_other_4xx_are_rejected(status, body):
    responses.put(ISSUE, status=status, body=body)
    with pytest.raises(RejectedByPlatform) as caught:
        client().send(OutboundRequest("PUT", ISSUE, {"fields": {}}))
    assert caught.value.status == status
    expected = body if not body.startswith("{") else json.loads(body)["errorMessages"][0]
    assert expected in str(caught.value)
    assert "t0ken" not in str(caught.value)


@responses.activate
def test_rejected_is_not_transient_and_both_are_platform_errors():
    responses.put(ISSUE, status=400, json={"errorMessages": ["no"]})
    with pytest.raises(PlatformError) as caught:
        client().send(OutboundRequest("PUT", ISSUE, {"fields": {}}))
    assert not isinstance(caught.value, TransientPlatformError)


@pytest.mark.parametrize("missing", [{"email": None}, {"api_token": None}, {"api_token": ""}])
def test_without_credentials_send_is_not_configured(missing):
    with responses.RequestsMock(assert_all_requests_are_fired=True) as mock:
        with pytest.raises(NotConfigured):
            client(**missing).send(OutboundRequest("PUT", ISSUE, {"fields": {}}))
        assert len(mock.calls) == 0


def test_own_account_id_comes_from_settings():
    assert client(account_id="me").own_account_id == "me"
    assert client(account_id=None).own_account_id is None


# --- fetch: the issue as it is now ---------------------------------------------------


@responses.activate
def test_fetch_reads_the_issue_with_one_get():
    from tests.support.fixtures import load_fixture

    issue = load_fixture("jira", "issue_created__outage")["issue"]
    responses.get(ISSUE, json=issue)
    ticket = client().fetch(TICKET)
    assert [(c.request.method, c.request.url) for c in responses.calls] == [("GET", ISSUE)]
    assert ticket.ref.key == issue["key"] and "outage" in ticket.labels
    assert ticket.requester is not None and ticket.requester.id == issue["fields"]["reporter"]["accountId"]


@responses.activate
def test_fetch_of_a_missing_issue_is_rejected_with_jiras_message():
    responses.get(ISSUE, status=404, json={"errorMessages": ["Issue does not exist"], "errors": {}})
    with pytest.raises(RejectedByPlatform, match="Issue does not exist"):
        client().fetch(TICKET)


@responses.activate
def test_fetch_of_an_unreadable_issue_is_a_platform_error():
    responses.get(ISSUE, json={"id": "10007"})
    with pytest.raises(PlatformError, match="unreadable issue"):
        client().fetch(TICKET)


@responses.activate
def test_fetch_when_rate_limited_is_transient():
    responses.get(ISSUE, status=429, headers={"Retry-After": "12"})
    with pytest.raises(TransientPlatformError) as caught:
        client().fetch(TICKET)
    assert caught.value.retry_after == 12


# --- whoami (escalator doctor) -------------------------------------------------


@responses.activate
def test_whoami_is_one_authenticated_get_of_myself():
    responses.get(f"{SITE}/rest/api/2/myself", json=load_fixture("jira", "api/myself"))
    me = client().whoami()
    assert (me.id, me.name) == ("5b10a2844c20165700ede21g", "Mia Krystof")
    (call,) = responses.calls
    assert call.request.headers["Authorization"].startswith("Basic ")


@responses.activate
def test_whoami_with_a_bad_token_is_rejected_with_jiras_words():
    responses.get(
        f"{SITE}/rest/api/2/myself", status=401, body="Client must be authenticated to access this resource."
    )
    with pytest.raises(RejectedByPlatform, match="401.*Client must be authenticated"):
        client().whoami()
