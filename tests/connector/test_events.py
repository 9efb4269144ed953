"""Operators' events: list what failed or waits, retry or discard one; both audited. SQLite and PostgreSQL."""

from __future__ import annotations

import json
import re

import pytest
import responses

from connector import audit
from connector.events import (
    EventError,
    EventNotFound,
    discard_event,
    get_event,
    list_events,
    retry_event,
    retry_failed,
)
from tests.support.fixtures import load_fixture
from tests.support.harness import JIRA_URL, jira_config, start

ISSUE = re.compile(re.escape(f"{JIRA_URL}/rest/api/2/issue/") + r"[^/]+$")
COMMENTS = re.compile(re.escape(f"{JIRA_URL}/rest/api/2/issue/") + r"[^/]+/comment")


@pytest.fixture
def jira():
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield mock


@pytest.fixture
def esc(db_url):
    running = start(jira_config(db_url, notes="comment"))
    yield running
    running.rt.close()


def _failed(esc, jira, delivery_id: str) -> int:
    """One event the platform refused (400): recorded as failed."""
    jira.add(responses.PUT, ISSUE, json={"errorMessages": ["Field 'priority' cannot be set."]}, status=400)
    esc.deliver("issue_created__outage", delivery_id=delivery_id)
    esc.work()
    jira.reset()
    # A Jira issue change is named by the change (issue id @ updated), not the header: the newest failed.
    return max(e.id for e in list_events(esc.rt.engine, status="failed"))


def test_a_failed_event_is_listed_retried_audited_and_then_applied(esc, jira):
    event_id = _failed(esc, jira, "d-1")
    [event] = list_events(esc.rt.engine)
    assert (event.id, event.status, event.ticket_key, event.attempts) == (event_id, "failed", "TES-42", 1)
    assert "400" in event.last_error and event.platform == "jira"
    assert list_events(esc.rt.engine, status="pending") == []
    assert list_events(esc.rt.engine, status="failed", platform="zendesk") == []

    again = retry_event(esc.rt.engine, event_id, actor="cli:alice", now=esc.clock())
    assert (again.status, again.attempts) == ("pending", 0)
    record = esc.audit()[-1]
    assert record["outcome"] == "requeued" and record["trigger"]["kind"] == "operator"
    assert record["operator"]["action"] == "retry" and record["operator"]["event_id"] == event_id
    assert record["operator"]["actor"].startswith("psn:")  # erasable: `audit forget --person cli:alice`
    assert "alice" not in json.dumps(record)
    assert audit.verify(esc.rt.engine).ok

    jira.add(responses.PUT, ISSUE, status=204)
    # the refused write left its in-flight mark: the worker first looks whether its note is there
    jira.add(responses.GET, COMMENTS, json={"startAt": 0, "maxResults": 100, "total": 0, "comments": []})
    assert esc.work() == 1
    assert esc.audit()[-1]["outcome"] == "applied", esc.audit()[-1]["detail"]
    assert get_event(esc.rt.engine, event_id).status == "done"
    assert list_events(esc.rt.engine) == []


def test_retry_refuses_what_cannot_be_retried(esc, jira):
    jira.add(responses.PUT, ISSUE, status=204)
    esc.deliver("issue_created__outage", delivery_id="d-ok")
    esc.work()
    assert list_events(esc.rt.engine, status=None) == []  # done events are history, not listed
    with pytest.raises(EventError, match="is done: there is nothing to retry"):
        retry_event(esc.rt.engine, 1, actor="cli:alice")
    with pytest.raises(EventNotFound, match="no event 999"):
        retry_event(esc.rt.engine, 999, actor="cli:alice")
    with pytest.raises(EventError, match="unknown status 'stuck'"):
        list_events(esc.rt.engine, status="stuck")
    assert [r["outcome"] for r in esc.audit()] == ["applied"]  # a refusal records nothing


def test_a_retrying_event_can_be_tried_now_or_discarded_and_no_longer_holds_up_its_ticket(esc, jira):
    jira.add(responses.PUT, ISSUE, status=503)
    esc.deliver("issue_created__outage", delivery_id="d-1")
    esc.deliver("comment_created__asks_for_manager", delivery_id="d-2")  # TES-42 too: waits behind d-1
    esc.work()
    [waiting, retrying] = list_events(esc.rt.engine)
    assert (retrying.status, retrying.event_type) == ("retrying", "jira:issue_created")
    comment = load_fixture("jira", "comment_created__asks_for_manager")
    named = f"{comment['issue']['id']}/comment/{comment['comment']['id']}"  # a new comment names itself
    assert (waiting.status, waiting.delivery_id) == ("pending", named)
    assert retrying.next_attempt_at > esc.clock()
    assert [e.id for e in list_events(esc.rt.engine, status="retrying")] == [retrying.id]

    with pytest.raises(EventError, match="say why"):
        discard_event(esc.rt.engine, retrying.id, why="  ", actor="cli:bob")
    gone = discard_event(esc.rt.engine, retrying.id, why="ticket deleted in Jira", actor="cli:bob")
    assert gone.status == "discarded"
    record = esc.audit()[-1]
    assert record["outcome"] == "discarded" and record["reasons"] == ["ticket deleted in Jira"]
    assert record["operator"]["status_before"] == "retrying"
    with pytest.raises(EventError, match="stays discarded"):
        retry_event(esc.rt.engine, retrying.id, actor="cli:bob")

    jira.replace(responses.PUT, ISSUE, status=204)
    assert esc.work() == 1  # d-2 no longer waits for d-1
    assert get_event(esc.rt.engine, waiting.id).status == "done"
    assert [e.id for e in list_events(esc.rt.engine, status="discarded")] == [retrying.id]
    assert audit.verify(esc.rt.engine).ok


def test_retry_failed_requeues_every_failed_event_of_a_platform(esc, jira):
    first = _failed(esc, jira, "d-1")
    jira.add(responses.PUT, ISSUE, json={"errorMessages": ["no"]}, status=400)
    esc.deliver("issue_created__security", delivery_id="d-2")  # another ticket
    esc.work()
    jira.reset()
    assert len(list_events(esc.rt.engine, status="failed")) == 2
    assert retry_failed(esc.rt.engine, actor="cli:carol", platform="zendesk") == 0
    assert retry_failed(esc.rt.engine, actor="cli:carol", platform="jira") == 2
    assert {e.status for e in list_events(esc.rt.engine)} == {"pending"}
    requeued = [r for r in esc.audit() if r["outcome"] == "requeued"]
    assert sorted(r["operator"]["event_id"] for r in requeued) == [first, first + 1]
    assert retry_failed(esc.rt.engine, actor="cli:carol") == 0  # nothing failed any more
    assert audit.verify(esc.rt.engine).ok
