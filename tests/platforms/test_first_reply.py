"""Replies a payload already shows: a ticket first seen after an agent answered has had its first
response (Jira: the issue's `fields.comment.comments`; Zendesk triggers: the latest comment)."""

from __future__ import annotations

from datetime import UTC, datetime

from platforms import jira, zendesk
from tests.support.fixtures import load_fixture


def normalise(provider, payload):
    headers = {"X-Zendesk-Webhook-Invocation-Id": "inv-1"}
    return provider.normalise(payload, provider.identify(headers, payload))


def test_jira_the_earliest_public_reply_not_by_the_reporter():
    payload = load_fixture("jira", "thirdparty/mm__webhook-server-issue-updated-commented-1")
    comments = payload["issue"]["fields"]["comment"]["comments"]
    reporter = payload["issue"]["fields"]["reporter"]
    comments[0]["author"] = dict(reporter)  # the reporter's own comment does not count
    comments[1]["jsdPublic"] = False  # nor does an internal one
    others = [c for c in comments[2:] if c["author"]["name"] != reporter["name"]]
    expected = min(datetime.fromisoformat(c["created"]) for c in others)

    ticket = normalise(jira.provider, payload).ticket

    assert ticket.first_reply_at == expected


def test_jira_no_comments_no_reply_and_an_unreadable_date_is_a_note():
    payload = load_fixture("jira", "issue_created__basic")
    assert normalise(jira.provider, payload).ticket.first_reply_at is None
    payload["issue"]["fields"]["comment"] = {
        "comments": [{"author": {"accountId": "agent-1"}, "created": "soon", "body": "On it"}]
    }
    event = normalise(jira.provider, payload)
    assert event.ticket.first_reply_at is None
    assert any("comment.comments[].created" in note for note in event.notes)


def test_zendesk_an_update_whose_latest_comment_is_an_agents_public_reply():
    payload = load_fixture("zendesk", "ticket.updated__trigger_security_label")
    assert normalise(zendesk.provider, payload).ticket.first_reply_at is None  # the requester's comment
    payload["comment"].update(author_id="6130907993114", author_name="Agent")
    assert normalise(zendesk.provider, payload).ticket.first_reply_at == datetime(
        2023, 9, 19, 8, 20, 15, tzinfo=UTC
    )
    payload["comment"]["public"] = "false"
    assert normalise(zendesk.provider, payload).ticket.first_reply_at is None  # an internal note
