"""ServiceNow outbound: a plan rendered into exact Table API requests, and what ServiceNow answers."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
import requests
import responses
from responses import matchers

from connector.model import Note, Plan, Requester, Status, TicketRef
from platforms.base import CAP_LABELS, OutboundRequest, SentRequest
from platforms.errors import NotConfigured, PlatformError, RejectedByPlatform, TransientPlatformError
from platforms.servicenow import ServiceNowClient, Settings, provider
from tests.support.fixtures import fixture_bytes, load_fixture
from tests.support.sending import apply_plan

BASE = "https://acme.service-now.com"
SYS_ID = "ef43c6d40a0a0b5700c77f9bf387afe3"
INCIDENT = f"{BASE}/api/now/table/incident/{SYS_ID}"
LABEL_ENTRY = f"{BASE}/api/now/table/label_entry?sysparm_input_display_value=true"
TICKET = TicketRef("servicenow", SYS_ID, "INC0000050", f"{BASE}/nav_to.do?uri=incident.do?sys_id={SYS_ID}")
L2_GROUP = "287ebd7da9fe198100f92cc8d1d2154e"
AGENT = "681b365ec0a80164000fb0b05854a0cd"
JSON_HEADERS = {"Content-Type": "application/json"}


def client(**settings: Any) -> ServiceNowClient:
    values: dict[str, Any] = {"instance": "acme", "user": "escalator.bot", "password": "pw"}
    values.update(settings)
    return ServiceNowClient(Settings(**values))


def patch(body: dict[str, str]) -> OutboundRequest:
    return OutboundRequest("PATCH", INCIDENT, body, purpose="update incident")


def tag(label: str) -> OutboundRequest:
    return OutboundRequest(
        "POST",
        LABEL_ENTRY,
        {"label": label, "table": "incident", "table_key": SYS_ID, "title": "INC0000050"},
        purpose=f"add tag {label}",
    )


# --- render ------------------------------------------------------------------


def test_empty_plan_renders_nothing():
    assert client().render(Plan(ticket=TICKET)) == []


def test_priority_is_impact_and_urgency_sent_as_strings():
    # The policy mapping says P1: {impact: 1, urgency: 1}: numbers in YAML, strings on the wire.
    assert client().render(Plan(ticket=TICKET, fields={"impact": 1, "urgency": 1})) == [
        patch({"impact": "1", "urgency": "1"})
    ]


def test_priority_itself_is_never_sent():
    # ServiceNow computes priority from impact and urgency; a plan priority (a Jira-style name)
    # or a "priority" field would only be recomputed.
    assert client().render(Plan(ticket=TICKET, priority="1")) == []
    assert client().render(Plan(ticket=TICKET, fields={"priority": "1", "urgency": "2"})) == [
        patch({"urgency": "2"})
    ]


def test_other_fields_are_sent_as_given_in_string_form():
    [request] = client().render(
        Plan(ticket=TICKET, fields={"u_escalated": True, "u_tier": "L2", "u_note": None})
    )
    assert request.json == {"u_escalated": "true", "u_tier": "L2", "u_note": ""}


def test_group_and_assignee_by_sys_id():
    assert client().render(Plan(ticket=TICKET, group=L2_GROUP, assignee=AGENT)) == [
        patch({"assignment_group": L2_GROUP, "assigned_to": AGENT})
    ]


def test_internal_note_is_a_work_note():
    assert client().render(Plan(ticket=TICKET, note=Note("Escalated to L2: outage.", internal=True))) == [
        patch({"work_notes": "Escalated to L2: outage."})
    ]


def test_public_note_is_an_additional_comment():
    assert client().render(Plan(ticket=TICKET, note=Note("We are on it.", internal=False))) == [
        patch({"comments": "We are on it."})
    ]


def test_everything_is_exactly_one_patch():
    plan = Plan(
        ticket=TICKET,
        fields={"impact": "1", "urgency": "2"},
        group=L2_GROUP,
        assignee=AGENT,
        note=Note("P2 and L2: enterprise caller.", internal=True),
        labels_add=frozenset({"escalated-l2"}),  # no labels field: dropped without label_entry
    )
    assert client().render(plan) == [
        patch(
            {
                "impact": "1",
                "urgency": "2",
                "assignment_group": L2_GROUP,
                "assigned_to": AGENT,
                "work_notes": "P2 and L2: enterprise caller.",
            }
        )
    ]


def test_sys_id_is_url_quoted():
    [request] = client().render(Plan(ticket=TicketRef("servicenow", "a b/c", "INC1"), group=L2_GROUP))
    assert request.url == f"{BASE}/api/now/table/incident/a%20b%2Fc"


def test_the_configured_url_is_the_base_even_with_a_path():
    [request] = client(instance=None, url="http://127.0.0.1:8089/snow/").render(
        Plan(ticket=TICKET, group="g")
    )
    assert request.url == f"http://127.0.0.1:8089/snow/api/now/table/incident/{SYS_ID}"


def test_render_makes_no_request():
    with responses.RequestsMock(assert_all_requests_are_fired=True) as mock:
        client(label_entry=True).render(
            Plan(ticket=TICKET, fields={"impact": "1"}, labels_add=frozenset({"x"}), note=Note("n"))
        )
        assert len(mock.calls) == 0


# --- labels as tags (label_entry) ------------------------------------------------


def test_without_label_entry_there_is_no_labels_capability():
    assert CAP_LABELS not in provider.capabilities
    assert client().capabilities == provider.capabilities
    assert client(label_entry=True).capabilities == provider.capabilities | {CAP_LABELS}


def test_label_entry_adds_one_post_per_label_after_the_patch():
    plan = Plan(ticket=TICKET, group=L2_GROUP, labels_add=frozenset({"sla-breached", "escalated-l2"}))
    assert client(label_entry=True).render(plan) == [
        patch({"assignment_group": L2_GROUP}),
        tag("escalated-l2"),
        tag("sla-breached"),
    ]


def test_label_entry_only_labels_is_only_the_posts():
    assert client(label_entry=True).render(Plan(ticket=TICKET, labels_add=frozenset({"outage"}))) == [
        tag("outage")
    ]


def test_label_removal_is_not_sent():
    # Removing a tag needs its label_entry sys_id (a GET) and a DELETE: not one pure request.
    plan = Plan(
        ticket=TICKET, labels_remove=frozenset({"escalated-l1"}), labels_current=frozenset({"escalated-l1"})
    )
    assert client(label_entry=True).render(plan) == []


@responses.activate(assert_all_requests_are_fired=True)
def test_apply_plan_with_label_entry_sends_the_patch_then_the_tag():
    responses.patch(INCIDENT, json=load_fixture("servicenow", "api/table_patch_incident__urgency"))
    responses.post(
        LABEL_ENTRY,
        status=201,
        json={"result": {"sys_id": "0" * 32}},
        match=[
            matchers.query_param_matcher({"sysparm_input_display_value": "true"}),
            matchers.json_params_matcher(
                {"label": "escalated-l2", "table": "incident", "table_key": SYS_ID, "title": "INC0000050"},
                strict_match=True,
            ),
        ],
    )
    plan = Plan(ticket=TICKET, fields={"urgency": "1"}, labels_add=frozenset({"escalated-l2"}))
    result = apply_plan(client(label_entry=True), plan)
    assert [(s.request.method, s.status) for s in result.sent] == [("PATCH", 200), ("POST", 201)]
    assert [c.request.method for c in responses.calls] == ["PATCH", "POST"]


# --- send --------------------------------------------------------------------


def test_building_the_session_makes_no_request_and_uses_basic_auth():
    with responses.RequestsMock(assert_all_requests_are_fired=True) as mock:
        snow = client()
        session = snow._session()  # the lazy pysnow.Client is built here
        assert isinstance(session, requests.Session)
        assert session.auth.username == "escalator.bot" and session.auth.password == "pw"
        assert len(mock.calls) == 0


@responses.activate(assert_all_requests_are_fired=True)
def test_one_decision_is_one_patch_sent_exactly_as_rendered():
    body = {"impact": "1", "urgency": "1", "assignment_group": L2_GROUP, "work_notes": "P1: outage."}
    responses.patch(
        INCIDENT,
        json=load_fixture("servicenow", "api/table_patch_incident__urgency"),
        match=[
            matchers.json_params_matcher(body, strict_match=True),
            matchers.header_matcher({"Accept": "application/json", "Content-Type": "application/json"}),
        ],
    )
    plan = Plan(
        ticket=TICKET,
        fields={"impact": 1, "urgency": 1},
        group=L2_GROUP,
        note=Note("P1: outage.", internal=True),
    )
    result = apply_plan(client(), plan)
    assert result.sent == [SentRequest(patch(body), 200)]
    assert len(responses.calls) == 1
    sent = responses.calls[0].request
    assert sent.method == "PATCH" and sent.url == INCIDENT
    assert json.loads(sent.body) == body
    assert sent.headers["Authorization"].startswith("Basic ")


@responses.activate
def test_the_request_goes_to_a_local_base_url_not_to_service_now_com():
    local = f"http://127.0.0.1:8089/api/now/table/incident/{SYS_ID}"
    responses.patch(local, json={"result": {}})
    snow = client(instance=None, url="http://127.0.0.1:8089")
    [request] = snow.render(Plan(ticket=TICKET, group=L2_GROUP))
    assert snow.send(request).status == 200
    assert responses.calls[0].request.url == local


@responses.activate
def test_429_with_the_documented_rate_limit_body_is_transient_with_retry_after():
    responses.patch(
        INCIDENT,
        status=429,
        body=fixture_bytes("servicenow", "api/error__rate_limit_exceeded"),
        content_type="application/json",
        headers={"Retry-After": "1800", "X-RateLimit-Limit": "100"},
    )
    with pytest.raises(TransientPlatformError) as caught:
        client().send(patch({"urgency": "1"}))
    assert caught.value.status == 429 and caught.value.retry_after == 1800
    assert "Rate limit exceeded: Rate limit of 100 requests per hour for Table API exceeded" in str(
        caught.value
    )
    assert len(responses.calls) == 1  # nobody retries inside send: the worker does, later


@responses.activate
def test_429_without_retry_after_waits_for_the_rate_limit_reset():
    reset = int(time.time()) + 600
    responses.patch(INCIDENT, status=429, json={}, headers={"X-RateLimit-Reset": str(reset)})
    with pytest.raises(TransientPlatformError) as caught:
        client().send(patch({"urgency": "1"}))
    assert caught.value.retry_after is not None and 590 <= caught.value.retry_after <= 600


@pytest.mark.parametrize("status", [408, 500, 502, 503, 504])
@responses.activate
def test_retryable_statuses_are_transient(status):
    responses.patch(INCIDENT, status=status, json=load_fixture("servicenow", "api/error__generic_format"))
    with pytest.raises(
        TransientPlatformError, match=f"answered {status} .*My error message: My details"
    ) as caught:
        client().send(patch({"urgency": "1"}))
    assert caught.value.status == status and caught.value.retry_after is None
    assert len(responses.calls) == 1


@pytest.mark.parametrize(
    "error",
    [
        requests.exceptions.ReadTimeout("read timed out"),
        requests.exceptions.ConnectTimeout("connect timed out"),
    ],
)
@responses.activate
def test_timeout_is_transient(error):
    responses.patch(INCIDENT, body=error)
    with pytest.raises(TransientPlatformError, match="did not answer .* within 15s") as caught:
        client().send(patch({"urgency": "1"}))
    assert caught.value.__cause__ is error and caught.value.status is None


@responses.activate
def test_connection_error_is_transient():
    responses.patch(INCIDENT, body=requests.exceptions.ConnectionError("connection refused"))
    with pytest.raises(TransientPlatformError, match="could not reach ServiceNow"):
        client().send(patch({"urgency": "1"}))


@responses.activate
def test_a_200_html_page_is_not_a_successful_write():
    # A hibernating developer instance answers 200 with an HTML page: nothing was written.
    responses.patch(
        INCIDENT, status=200, body="<html>Your instance is hibernating</html>", content_type="text/html"
    )
    with pytest.raises(TransientPlatformError, match="not JSON .*hibernating") as caught:
        client().send(patch({"urgency": "1"}))
    assert caught.value.status == 200


@responses.activate
def test_204_without_a_body_is_success():
    responses.patch(INCIDENT, status=204)
    assert client().send(patch({"urgency": "1"})).status == 204


@pytest.mark.parametrize(
    ("status", "error", "expected"),
    [
        (403, {"message": "Operation Failed", "detail": "ACL Exception Update Failed"},
         "(403): Operation Failed: ACL Exception Update Failed"),
        (400, {"message": "Invalid reference", "detail": None}, "(400): Invalid reference"),
        (404, {"message": "No Record found", "detail": "Record doesn't exist or ACL restricts the record"},
         "(404): No Record found: Record doesn't exist"),
        (409, {"message": "Conflict", "detail": "Duplicate entry"}, "(409): Conflict: Duplicate entry"),
    ],
)  # fmt: skip
@responses.activate
def test_other_4xx_are_rejected_with_servicenows_message(status, error, expected):
    responses.patch(INCIDENT, status=status, json={"error": error, "status": "failure"})
    with pytest.raises(RejectedByPlatform) as caught:
        client().send(patch({"assignment_group": "nope"}))
    assert caught.value.status == status
    assert expected in str(caught.value)
    assert not isinstance(caught.value, TransientPlatformError)
    assert "pw" not in str(caught.value)
    assert len(responses.calls) == 1


@responses.activate
def test_401_with_a_plain_text_body():
    responses.patch(INCIDENT, status=401, body="User Not Authenticated")
    with pytest.raises(RejectedByPlatform, match=r"\(401\): User Not Authenticated"):
        client().send(patch({"urgency": "1"}))


@responses.activate
def test_a_redirect_loop_is_neither_transient_nor_rejected():
    responses.patch(INCIDENT, body=requests.exceptions.TooManyRedirects("loop"))
    with pytest.raises(PlatformError, match="failed: loop") as caught:
        client().send(patch({"urgency": "1"}))
    assert not isinstance(caught.value, TransientPlatformError | RejectedByPlatform)


@pytest.mark.parametrize("missing", [{"user": None}, {"password": None}, {"password": ""}])
def test_without_credentials_send_and_fetch_are_not_configured(missing):
    with responses.RequestsMock(assert_all_requests_are_fired=True) as mock:
        with pytest.raises(NotConfigured, match="'user' and 'password'"):
            client(**missing).send(patch({"urgency": "1"}))
        with pytest.raises(NotConfigured):
            client(**missing).fetch(TICKET)
        assert len(mock.calls) == 0


def test_own_account_id_is_the_user_name():
    assert client(user="escalator.bot").own_account_id == "escalator.bot"
    assert client(user=None).own_account_id is None


# --- fetch -------------------------------------------------------------------


@responses.activate(assert_all_requests_are_fired=True)
def test_fetch_is_one_get_of_the_record():
    sys_id = "a9e30c7dc61122760116894de7bcc7bd"
    responses.get(
        f"{BASE}/api/now/table/incident/{sys_id}",
        body=fixture_bytes("servicenow", "api/table_get_incident__by_sys_id"),
        content_type="application/json",
        match=[matchers.query_param_matcher({"sysparm_exclude_reference_link": "true"})],
    )
    ticket = client(extra_fields=("category",)).fetch(TicketRef("servicenow", sys_id, "INC0000046"))
    assert len(responses.calls) == 1 and responses.calls[0].request.method == "GET"
    assert responses.calls[0].request.headers["Accept"] == "application/json"
    assert ticket.ref == TicketRef(
        "servicenow", sys_id, "INC0000046", f"{BASE}/nav_to.do?uri=incident.do?sys_id={sys_id}"
    )
    assert ticket.fields == {"impact": "1", "urgency": "3", "priority": "3", "category": "software"}
    assert ticket.status is Status.NEW and ticket.version == "4"
    assert ticket.requester == Requester(id="46c6f9efa9fe198101ddf5eed9adf6e7")


@responses.activate
def test_fetch_of_a_missing_record_is_rejected():
    responses.get(
        f"{INCIDENT}",
        status=404,
        json={"error": {"message": "No Record found", "detail": "Record doesn't exist"}, "status": "failure"},
    )
    with pytest.raises(RejectedByPlatform, match="No Record found") as caught:
        client().fetch(TICKET)
    assert caught.value.status == 404


@responses.activate
def test_fetch_rate_limited_is_transient():
    responses.get(INCIDENT, status=429, json=load_fixture("servicenow", "api/error__rate_limit_exceeded"),
                  headers={"Retry-After": "60"})  # fmt: skip
    with pytest.raises(TransientPlatformError) as caught:
        client().fetch(TICKET)
    assert caught.value.retry_after == 60


@responses.activate
def test_fetch_of_a_body_that_is_not_json_is_transient():
    responses.get(INCIDENT, status=200, body="{not json", content_type="application/json")
    with pytest.raises(TransientPlatformError, match="non-JSON body"):
        client().fetch(TICKET)


@responses.activate
def test_fetch_of_a_login_page_is_transient():
    responses.get(INCIDENT, status=200, body="<html>Log in</html>", content_type="text/html; charset=UTF-8")
    with pytest.raises(TransientPlatformError, match="login page"):
        client().fetch(TICKET)


# --- whoami (escalator doctor) -------------------------------------------------

SYS_USER = f"{BASE}/api/now/table/sys_user"


@responses.activate
def test_whoami_reads_our_own_sys_user_record():
    answer = load_fixture("servicenow", "api/table_get_sys_user__by_user_name")
    responses.get(
        SYS_USER,
        json=answer,
        match=[
            matchers.query_param_matcher(
                {
                    "sysparm_query": "user_name=escalator.bot",
                    "sysparm_fields": "user_name,name",
                    "sysparm_limit": "1",
                }
            )
        ],
    )
    me = client().whoami()
    assert (me.id, me.name) == ("escalator.bot", "Escalator Integration")


@responses.activate
def test_whoami_when_an_acl_hides_sys_user_still_proves_the_login():
    responses.get(SYS_USER, json={"result": []})
    assert client().whoami().id == "escalator.bot"


@responses.activate
def test_whoami_with_a_wrong_password_is_rejected():
    error = {"error": {"message": "User Not Authenticated", "detail": "Required to provide Auth information"}}
    responses.get(SYS_USER, status=401, json=error)
    with pytest.raises(RejectedByPlatform, match="User Not Authenticated"):
        client().whoami()
