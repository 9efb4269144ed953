"""Jira Server / Data Center end to end, with the third-party Server captures: comments in both of
Server's shapes become `comment.added`, users are known by username, a never-seen issue is read once."""

from __future__ import annotations

import json
import re

import pytest
import responses

from tests.support.fixtures import load_fixture
from tests.support.harness import JIRA_URL, body_of, jira_config

BOT = "escalator.bot"  # Server: the bot's username
ISSUE = re.compile(re.escape(f"{JIRA_URL}/rest/api/2/issue/") + r"[^/]+$")
COMMENT = re.compile(re.escape(f"{JIRA_URL}/rest/api/2/issue/") + r"[^/]+/comment$")
ASK = "This is the third time I write. I want to talk to your manager."


@pytest.fixture
def jira():
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield mock


@pytest.fixture
def esc(sqlite_url, launch):
    return launch(jira_config(sqlite_url, account_id=BOT, deployment="server"))


def capture(name: str) -> dict:
    return load_fixture("jira", f"thirdparty/mm__{name}")


def as_requester(payload: dict) -> dict:
    """The capture with its comment asking for a manager, written by the issue's reporter."""
    payload["comment"]["body"] = ASK
    if "issue" in payload:
        payload["issue"]["fields"]["reporter"] = dict(payload["comment"]["author"])
    return payload


def server_issue() -> dict:
    """GET /rest/api/2/issue/10013 as Server answers it: the issue the captures are about, reported by
    the person who comments in them."""
    issue = capture("webhook-server-issue-updated-commented-1")["issue"]
    issue["fields"]["reporter"] = dict(capture("webhook-server-comment-created")["comment"]["author"])
    return issue


def deliver(esc, payload: dict, delivery_id: str) -> dict:
    answer = esc.deliver("", body=json.dumps(payload).encode(), delivery_id=delivery_id)
    assert answer.status_code == 202, answer.json
    esc.work()
    return esc.audit()[-1]


def writes(jira) -> list[tuple[str, str]]:
    return [(c.request.method, c.request.url.removeprefix(JIRA_URL)) for c in jira.calls]


def test_a_bare_server_comment_on_an_issue_never_seen_reads_it_once_and_the_manager_rule_fires(esc, jira):
    jira.add(responses.GET, ISSUE, json=server_issue())
    jira.add(responses.PUT, ISSUE, status=204)
    jira.add(responses.POST, COMMENT, json={"id": "1"}, status=201)
    manager = esc.rt.policy.current.platforms["jira"].tiers["management"].assignee

    record = deliver(esc, as_requester(capture("webhook-server-comment-created")), "c-1")

    assert record["trigger"]["kind"] == "comment.added" and record["outcome"] == "applied"
    assert record["ticket"]["id"] == "10013" and record["ticket"]["key"] == "PRJX-14"
    assert record["rules"] == ["customer-asks-for-manager"] and record["inputs"]["comment"]["by_requester"]
    assert writes(jira) == [
        ("GET", "/rest/api/2/issue/10013"),  # the one read: the body has no issue
        ("PUT", "/rest/api/2/issue/PRJX-14"),
        ("POST", "/rest/api/2/issue/PRJX-14/comment"),
    ]
    assert body_of(jira.calls[1])["fields"]["assignee"] == {"name": manager}  # Server assigns by username


def test_a_bare_server_comment_on_an_issue_already_seen_reads_nothing(esc, jira):
    jira.add(responses.PUT, ISSUE, status=204)
    jira.add(responses.POST, COMMENT, json={"id": "1"}, status=201)
    seen = capture("webhook-server-issue-updated-comment-deleted")  # issue 10013, no comment
    seen["issue"]["fields"]["reporter"] = dict(capture("webhook-server-comment-created")["comment"]["author"])
    assert deliver(esc, seen, "u-1")["trigger"]["kind"] == "ticket.updated"
    jira.calls.reset()

    record = deliver(esc, as_requester(capture("webhook-server-comment-created")), "c-2")

    assert record["rules"] == ["customer-asks-for-manager"]
    assert [method for method, _ in writes(jira)] == ["PUT", "POST"]  # no GET: the snapshot served


@pytest.mark.parametrize(
    "name",
    ["webhook-server-issue-updated-commented-1", "webhook-server-old-issue-updated-no-event-type-commented"],
)
def test_an_issue_updated_carrying_a_new_comment_is_comment_added_and_the_manager_rule_fires(esc, jira, name):
    jira.add(responses.PUT, ISSUE, status=204)
    jira.add(responses.POST, COMMENT, json={"id": "1"}, status=201)

    record = deliver(esc, as_requester(capture(name)), "c-3")

    assert record["trigger"]["kind"] == "comment.added" and record["outcome"] == "applied"
    assert record["rules"] == ["customer-asks-for-manager"]
    assert [method for method, _ in writes(jira)] == ["PUT", "POST"]  # the body carried the issue


def test_an_edited_comment_is_not_a_new_one(esc, jira):
    jira.add(responses.PUT, ISSUE, status=204)
    jira.add(responses.POST, COMMENT, json={"id": "1"}, status=201)
    for name in ("webhook-server-issue-updated-comment-edited",
                 "webhook-server-old-issue-updated-no-event-type-comment-edited"):  # fmt: skip
        record = deliver(esc, as_requester(capture(name)), name)
        assert record["trigger"]["kind"] == "ticket.updated"
        assert "customer-asks-for-manager" not in record["rules"]


def test_the_bots_own_server_edit_is_an_echo_by_username(esc, jira):
    payload = capture("webhook-server-issue-updated-in-progress")
    payload["user"] = {"name": BOT, "key": "JIRAUSER10100", "displayName": "Escalator"}

    record = deliver(esc, payload, "e-1")

    assert record["outcome"] == "echo" and writes(jira) == []


def test_an_unreadable_issue_is_a_failure_that_says_so(esc, jira):
    jira.add(responses.GET, ISSUE, status=404, json={"errorMessages": ["Issue does not exist"]})

    record = deliver(esc, as_requester(capture("webhook-server-comment-created")), "c-4")

    assert record["outcome"] == "failed"
    assert (
        "reading the ticket the event names" in record["detail"]
        and "Issue does not exist" in record["detail"]
    )


def test_an_unreadable_timestamp_is_skipped_and_the_audit_says_so(esc, jira):
    payload = capture("webhook-server-issue-updated-in-progress")
    payload["timestamp"] = "yesterday"

    record = deliver(esc, payload, "t-1")  # 202: the event is read without it

    assert record["outcome"] in ("no_change", "dry_run", "applied")
    assert record["reader_notes"] == ["skipped: Jira payload: 'timestamp' is not epoch milliseconds"]
