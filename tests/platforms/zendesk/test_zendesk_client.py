"""Zendesk outbound: a plan rendered into the one Update Ticket request, and what Zendesk's answers become."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
import requests
import responses
import zenpy.lib.api
from responses import matchers
from zenpy import Zenpy

from connector.model import Note, Plan, Status, TicketRef
from platforms.base import OutboundRequest, SentRequest
from platforms.errors import (
    ConflictError,
    NotConfigured,
    PlatformError,
    RejectedByPlatform,
    TransientPlatformError,
)
from platforms.zendesk import Settings, ZendeskClient
from tests.support.fixtures import FIXTURES
from tests.support.sending import apply_plan

SITE = "https://acme.zendesk.com"
TICKET_URL = f"{SITE}/api/v2/tickets/4021.json"
TICKET = TicketRef("zendesk", "4021", "#4021", f"{SITE}/agent/tickets/4021")
STAMP = "2023-09-19T08:14:03Z"
API = FIXTURES / "zendesk" / "api"

# The request keys Zendesk's Update Ticket endpoint documents (PUT /api/v2/tickets/{id},
# developer.zendesk.com "Tickets" → "Update Ticket" and the ticket's JSON format); a key
# outside this list is silently dropped by Zendesk with an `x-zendesk-api-warn` header
# (the recorded PUT shows one for "ticket.id").
UPDATE_TICKET_KEYS = frozenset(
    {
        "additional_collaborators", "additional_tags", "assignee_email", "assignee_id", "attribute_value_ids",
        "collaborator_ids", "comment", "custom_fields", "custom_status_id", "due_at", "email_ccs",
        "external_id", "followers", "group_id", "organization_id", "priority", "problem_id", "remove_tags",
        "requester_id", "safe_update", "sharing_agreement_ids", "status", "subject", "tags", "type",
        "updated_stamp",
    }
)  # fmt: skip
COMMENT_KEYS = frozenset({"body", "html_body", "public", "author_id", "uploads"})
PRIORITIES = {"urgent", "high", "normal", "low"}


def client(**settings: Any) -> ZendeskClient:
    values: dict[str, Any] = {
        "url": SITE + "/",
        "email": "bot@acme.test",
        "api_token": "t0ken",
        "user_id": "6164070000001",
    }
    values.update(settings)
    return ZendeskClient(Settings(**values))


def check_update_body(body: Any) -> None:
    """The body is one Zendesk documents for Update Ticket, with the types it expects."""
    assert isinstance(body, dict) and set(body) == {"ticket"}
    ticket = body["ticket"]
    assert ticket and set(ticket) <= UPDATE_TICKET_KEYS, set(ticket) - UPDATE_TICKET_KEYS
    assert ticket.get("priority", "low") in PRIORITIES
    for key in ("group_id", "assignee_id"):
        assert isinstance(ticket.get(key, 1), int)
    assert all(isinstance(tag, str) for tag in ticket.get("tags", []))
    assert set(ticket.get("comment", {})) <= COMMENT_KEYS
    assert all(
        set(f) == {"id", "value"} and isinstance(f["id"], int) for f in ticket.get("custom_fields", [])
    )
    assert ("safe_update" in ticket) == ("updated_stamp" in ticket)


def render(plan: Plan, **settings: Any) -> list[OutboundRequest]:
    rendered = client(**settings).render(plan)
    for request in rendered:
        check_update_body(request.json)
    return rendered


def put(ticket: dict[str, Any]) -> list[OutboundRequest]:
    return [OutboundRequest("PUT", TICKET_URL, {"ticket": ticket}, purpose="update ticket")]


# --- render ------------------------------------------------------------------


def test_empty_plan_renders_nothing():
    assert render(Plan(ticket=TICKET)) == []
    assert render(Plan(ticket=TICKET, ticket_version=STAMP, labels_current=frozenset({"x"}))) == []


def test_priority_only_without_a_version():
    assert render(Plan(ticket=TICKET, priority="urgent")) == put({"priority": "urgent"})


def test_a_known_version_makes_it_a_safe_update():
    assert render(Plan(ticket=TICKET, priority="urgent", ticket_version=STAMP)) == put(
        {"priority": "urgent", "safe_update": True, "updated_stamp": STAMP}
    )


def test_group_and_assignee_are_integer_ids():
    [request] = render(Plan(ticket=TICKET, group="6130852537001", assignee="6130907993114"))
    assert request.json == {"ticket": {"group_id": 6130852537001, "assignee_id": 6130907993114}}


def test_tags_are_the_full_sorted_list_after_the_change():
    plan = Plan(
        ticket=TICKET,
        labels_current=frozenset({"outage", "vip", "escalated-l1"}),
        labels_add=frozenset({"escalated-l2", "sla-breached"}),
        labels_remove=frozenset({"escalated-l1"}),
        ticket_version=STAMP,
    )
    assert render(plan) == put(
        {
            "tags": ["escalated-l2", "outage", "sla-breached", "vip"],
            "safe_update": True,
            "updated_stamp": STAMP,
        }
    )


def test_removing_the_last_tag_sends_an_empty_list():
    plan = Plan(
        ticket=TICKET, labels_current=frozenset({"escalated-l1"}), labels_remove=frozenset({"escalated-l1"})
    )
    assert render(plan) == put({"tags": []})


def test_internal_note_is_a_private_comment_in_the_same_request():
    assert render(Plan(ticket=TICKET, note=Note("Escalated to L2: outage label.", internal=True))) == put(
        {"comment": {"body": "Escalated to L2: outage label.", "public": False}}
    )


def test_public_note_is_a_public_comment():
    [request] = render(Plan(ticket=TICKET, note=Note("We are on it.", internal=False)))
    assert request.json == {"ticket": {"comment": {"body": "We are on it.", "public": True}}}


def test_custom_fields_by_integer_id_in_a_stable_order():
    [request] = render(Plan(ticket=TICKET, fields={"360012345680": 3, "360012345678": "L2"}))
    assert request.json == {
        "ticket": {"custom_fields": [{"id": 360012345678, "value": "L2"}, {"id": 360012345680, "value": 3}]}
    }


def test_everything_is_one_request():
    plan = Plan(
        ticket=TICKET,
        priority="urgent",
        assignee="6130907993114",
        group="6130852537001",
        fields={"360012345678": "L2"},
        labels_current=frozenset({"outage"}),
        labels_add=frozenset({"escalated-l2"}),
        note=Note("Escalated to L2: outage for an enterprise customer."),
        ticket_version=STAMP,
    )
    assert render(plan) == put(
        {
            "priority": "urgent",
            "group_id": 6130852537001,
            "assignee_id": 6130907993114,
            "tags": ["escalated-l2", "outage"],
            "custom_fields": [{"id": 360012345678, "value": "L2"}],
            "comment": {"body": "Escalated to L2: outage for an enterprise customer.", "public": False},
            "safe_update": True,
            "updated_stamp": STAMP,
        }
    )


def test_url_comes_from_the_configured_base_and_quotes_the_id():
    [request] = render(
        Plan(ticket=TicketRef("zendesk", "40/21", "#40/21"), priority="low"), url="http://127.0.0.1:8765"
    )
    assert request.url == "http://127.0.0.1:8765/api/v2/tickets/40%2F21.json"
    [request] = ZendeskClient(Settings(subdomain="acme")).render(Plan(ticket=TICKET, priority="low"))
    assert request.url == TICKET_URL


def test_render_makes_no_request_and_needs_no_credentials():
    with responses.RequestsMock(assert_all_requests_are_fired=True) as mock:
        assert render(Plan(ticket=TICKET, priority="high"), email=None, api_token=None)
        assert len(mock.calls) == 0


@pytest.mark.parametrize(
    "body",
    [
        {"ticket": {"id": 4021}},  # what zenpy sent in the recording, and Zendesk warned about
        {"ticket": {"priority": "P1"}},
        {"ticket": {"group_id": "6130852537001"}},
        {"ticket": {"comment": {"body": "x", "internal": True}}},
        {"ticket": {"safe_update": True}},
        {"priority": "high"},
    ],
)
def test_the_body_check_is_real(body):
    with pytest.raises(AssertionError):
        check_update_body(body)


# --- send --------------------------------------------------------------------


def test_building_the_session_makes_no_request_and_authenticates_with_the_token():
    with responses.RequestsMock(assert_all_requests_are_fired=True) as mock:
        zendesk = client()
        session = zendesk._session()  # the lazy Zenpy(...) is built here
        assert isinstance(session, requests.Session) and isinstance(zendesk._zenpy, Zenpy)
        assert session.auth == ("bot@acme.test/token", "t0ken")
        assert session.headers["User-Agent"].startswith("Zenpy/")
        assert len(mock.calls) == 0


@responses.activate(assert_all_requests_are_fired=True)
def test_put_200_is_sent_exactly_as_rendered():
    body = {
        "ticket": {
            "priority": "urgent",
            "tags": ["escalated-l2", "outage"],
            "safe_update": True,
            "updated_stamp": STAMP,
        }
    }
    responses.put(
        TICKET_URL,
        status=200,
        body=(API / "ticket_update_put_response_200.json").read_bytes(),
        content_type="application/json; charset=utf-8",
        match=[
            matchers.json_params_matcher(body, strict_match=True),
            matchers.header_matcher({"Content-Type": "application/json"}),
        ],
    )
    request = OutboundRequest("PUT", TICKET_URL, body, purpose="update ticket")
    assert client().send(request) == SentRequest(request, 200)
    assert len(responses.calls) == 1
    sent = responses.calls[0].request
    assert sent.method == "PUT" and sent.url == TICKET_URL
    assert json.loads(sent.body) == body
    assert sent.headers["Authorization"].startswith("Basic ")


@responses.activate(assert_all_requests_are_fired=True)
def test_apply_plan_is_one_request_even_with_a_note():
    expected = {
        "ticket": {
            "priority": "high",
            "comment": {"body": "why", "public": False},
            "safe_update": True,
            "updated_stamp": STAMP,
        }
    }
    responses.put(
        TICKET_URL, status=200, json={}, match=[matchers.json_params_matcher(expected, strict_match=True)]
    )
    result = apply_plan(
        client(), Plan(ticket=TICKET, priority="high", note=Note("why"), ticket_version=STAMP)
    )
    assert [(s.request.method, s.status) for s in result.sent] == [("PUT", 200)]
    assert len(responses.calls) == 1


@responses.activate
def test_a_local_fake_server_stands_in_for_zendesk():
    base = "http://127.0.0.1:8765"
    responses.put(f"{base}/api/v2/tickets/4021.json", status=200, json={})
    [request] = client(url=base).render(Plan(ticket=TICKET, priority="low"))
    assert client(url=base).send(request).status == 200
    assert responses.calls[0].request.url == f"{base}/api/v2/tickets/4021.json"


@responses.activate
def test_409_on_a_safe_update_is_a_conflict():
    responses.put(
        TICKET_URL,
        status=409,
        json={"error": "UpdateConflict", "description": "Ticket has been updated since you last viewed it"},
    )
    with pytest.raises(ConflictError) as caught:
        client().send(OutboundRequest("PUT", TICKET_URL, {"ticket": {"priority": "high"}}))
    assert caught.value.status == 409
    assert "UpdateConflict: Ticket has been updated since you last viewed it" in str(caught.value)
    assert not isinstance(caught.value, TransientPlatformError | RejectedByPlatform)
    assert len(responses.calls) == 1


@responses.activate
def test_429_is_transient_with_retry_after_and_nothing_sleeps(monkeypatch):
    def no_sleep(seconds: float) -> None:
        raise AssertionError(f"something slept {seconds}s on a 429")

    monkeypatch.setattr(zenpy.lib.api, "sleep", no_sleep)  # zenpy's own wait-out-the-429 loop
    monkeypatch.setattr(time, "sleep", no_sleep)
    responses.put(TICKET_URL, status=429, headers={"Retry-After": "93"}, body="Too Many Requests")
    started = time.monotonic()
    with pytest.raises(TransientPlatformError) as caught:
        client().send(OutboundRequest("PUT", TICKET_URL, {"ticket": {"priority": "high"}}))
    assert time.monotonic() - started < 2
    assert caught.value.status == 429 and caught.value.retry_after == 93
    assert "429" in str(caught.value) and "Too Many Requests" in str(caught.value)
    assert len(responses.calls) == 1  # the worker retries, honouring Retry-After; nothing else does


@pytest.mark.parametrize("status", [408, 500, 502, 503, 504])
@responses.activate
def test_server_errors_are_transient_and_sent_once(status):
    responses.put(TICKET_URL, status=status, body="upstream trouble")
    with pytest.raises(TransientPlatformError) as caught:
        client().send(OutboundRequest("PUT", TICKET_URL, {"ticket": {"priority": "high"}}))
    assert caught.value.status == status and caught.value.retry_after is None
    assert "upstream trouble" in str(caught.value)
    assert len(responses.calls) == 1


@responses.activate
def test_zenpys_own_session_would_have_resent_the_put_on_503():
    # Why the client hands zenpy a plain session: zenpy's default adapter retries 503 three
    # times on https, then raises RetryError, which is neither Zendesk's answer nor transient.
    responses.put(TICKET_URL, status=503)
    own = Zenpy(email="bot@acme.test", token="t0ken").users.session
    with pytest.raises(requests.exceptions.RetryError):
        own.put(TICKET_URL, json={"ticket": {"priority": "high"}})
    assert len(responses.calls) == 4


@pytest.mark.parametrize(
    "error",
    [
        requests.exceptions.ReadTimeout("read timed out"),
        requests.exceptions.ConnectTimeout("connect timed out"),
    ],
)
@responses.activate
def test_timeout_is_transient(error):
    responses.put(TICKET_URL, body=error)
    with pytest.raises(TransientPlatformError, match=r"did not answer PUT .* within 15s") as caught:
        client().send(OutboundRequest("PUT", TICKET_URL, {"ticket": {"priority": "high"}}))
    assert caught.value.__cause__ is error and caught.value.status is None
    assert len(responses.calls) == 1


@responses.activate
def test_the_configured_timeout_is_passed_on(monkeypatch):
    seen: dict[str, Any] = {}
    real = requests.adapters.HTTPAdapter.send  # what every request goes through (as `responses` patched it)

    def spy(self, request, **kwargs):
        seen.update(kwargs)
        return real(self, request, **kwargs)

    monkeypatch.setattr(requests.adapters.HTTPAdapter, "send", spy)
    responses.put(TICKET_URL, status=200, json={})
    client(timeout=4.5).send(OutboundRequest("PUT", TICKET_URL, {"ticket": {"priority": "high"}}))
    assert seen["timeout"] == 4.5


@responses.activate
def test_connection_error_is_transient():
    responses.put(TICKET_URL, body=requests.exceptions.ConnectionError("connection refused"))
    with pytest.raises(TransientPlatformError, match="could not reach Zendesk"):
        client().send(OutboundRequest("PUT", TICKET_URL, {"ticket": {"priority": "high"}}))
    assert len(responses.calls) == 1


@responses.activate
def test_422_is_rejected_with_zendesks_field_details():
    responses.put(
        TICKET_URL,
        status=422,
        json={
            "error": "RecordInvalid",
            "description": "Record validation errors",
            "details": {"priority": [{"description": "Priority: is invalid", "error": "InvalidValue"}]},
        },
    )
    with pytest.raises(RejectedByPlatform) as caught:
        client().send(OutboundRequest("PUT", TICKET_URL, {"ticket": {"priority": "P1"}}))
    assert caught.value.status == 422
    assert "RecordInvalid: Record validation errors; priority: Priority: is invalid" in str(caught.value)
    assert len(responses.calls) == 1


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        (401, {"error": "Couldn't authenticate you"}, "Couldn't authenticate you"),
        (
            403,
            {"error": {"title": "Forbidden", "message": "You do not have access to this page."}},
            "Forbidden: You do not have access to this page.",
        ),
        (404, {"error": "RecordNotFound", "description": "Not found"}, "RecordNotFound: Not found"),
        (400, "<html>Bad Request</html>", "<html>Bad Request</html>"),
    ],
)
@responses.activate
def test_other_4xx_are_rejected_with_zendesks_message(status, body, expected):
    if isinstance(body, dict):
        responses.put(TICKET_URL, status=status, json=body)
    else:
        responses.put(TICKET_URL, status=status, body=body)
    with pytest.raises(RejectedByPlatform) as caught:
        client().send(OutboundRequest("PUT", TICKET_URL, {"ticket": {"priority": "high"}}))
    assert caught.value.status == status
    assert f"Zendesk rejected PUT {TICKET_URL} ({status}): {expected}" == str(caught.value)
    assert "t0ken" not in str(caught.value)


@responses.activate
def test_an_unreachable_url_is_neither_transient_nor_rejected():
    responses.put(TICKET_URL, body=requests.exceptions.TooManyRedirects("loop"))
    with pytest.raises(PlatformError) as caught:
        client().send(OutboundRequest("PUT", TICKET_URL, {"ticket": {"priority": "high"}}))
    assert type(caught.value) is PlatformError and "loop" in str(caught.value)


@pytest.mark.parametrize("missing", [{"email": None}, {"api_token": None}, {"api_token": ""}])
def test_without_credentials_send_and_fetch_are_not_configured(missing):
    with responses.RequestsMock(assert_all_requests_are_fired=True) as mock:
        with pytest.raises(NotConfigured, match="'email' and 'api_token' are required"):
            client(**missing).send(OutboundRequest("PUT", TICKET_URL, {"ticket": {"priority": "high"}}))
        with pytest.raises(NotConfigured):
            client(**missing).fetch(TICKET)
        assert len(mock.calls) == 0


# --- fetch -------------------------------------------------------------------


@responses.activate(assert_all_requests_are_fired=True)
def test_fetch_reads_the_ticket_with_one_get():
    url = f"{SITE}/api/v2/tickets/1.json"
    responses.get(url, body=(API / "ticket_get_response.json").read_bytes(), content_type="application/json")
    ticket = client().fetch(TicketRef("zendesk", "1", "#1"))
    assert ticket.ref.id == "1" and ticket.status is Status.OPEN and ticket.platform_priority == "normal"
    assert ticket.version == "2023-09-09T23:52:05Z"  # the stamp the re-planned write sends back
    assert len(responses.calls) == 1 and responses.calls[0].request.method == "GET"
    assert responses.calls[0].request.body is None


@pytest.mark.parametrize(
    ("status", "error"),
    [(404, RejectedByPlatform), (429, TransientPlatformError), (503, TransientPlatformError)],
)
@responses.activate
def test_fetch_maps_errors_like_send(status, error):
    responses.get(TICKET_URL, status=status, json={"error": "RecordNotFound", "description": "Not found"})
    with pytest.raises(error) as caught:
        client().fetch(TICKET)
    assert caught.value.status == status and len(responses.calls) == 1


@pytest.mark.parametrize("body", [b"<html></html>", b'{"tickets": []}', b"[]"])
@responses.activate
def test_fetch_of_something_that_is_not_a_ticket(body):
    responses.get(TICKET_URL, status=200, body=body)
    with pytest.raises(PlatformError, match=f"answered GET {TICKET_URL}"):
        client().fetch(TICKET)


# --- whoami (escalator doctor) -------------------------------------------------


@responses.activate
def test_whoami_is_one_authenticated_get_of_users_me():
    responses.get(f"{SITE}/api/v2/users/me.json", json=json.loads((API / "users_me.json").read_text()))
    me = client().whoami()
    assert (me.id, me.name) == ("6164070000001", "Escalator (agent)")
    (call,) = responses.calls
    assert call.request.headers["Authorization"].startswith("Basic ")


@responses.activate
def test_whoami_answered_with_the_anonymous_user_means_the_credentials_were_not_recognised():
    anonymous = {"user": {"id": None, "name": "Anonymous user", "role": "end-user"}}
    responses.get(f"{SITE}/api/v2/users/me.json", json=anonymous)
    with pytest.raises(RejectedByPlatform, match="anonymous user: check email and api_token"):
        client().whoami()
