"""Every third-party Jira capture (tests/fixtures/jira/thirdparty/, Cloud and Server bodies recorded by
mattermost-plugin-jira) and what Escalator makes of it: decided (its kind, the comment, the priority as
read), or ignored with a reason. None is refused, none crashes, none is accepted and then fails."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta

import pytest

from connector.config import Config
from connector.model import EventKind
from platforms import jira
from policies import load_policy
from tests.support.fixtures import FIXTURES, load_fixture
from tests.support.harness import JIRA_URL, SECRET, start

COMMENT, UPDATED, CREATED = EventKind.COMMENT_ADDED, EventKind.TICKET_UPDATED, EventKind.TICKET_CREATED


@dataclass(frozen=True)
class Decided:
    kind: EventKind
    priority: str | None  # the platform's priority name, as read
    comment: str | None = None  # the start of the new comment's text


@dataclass(frozen=True)
class Ignored:
    event_type: str  # answered 200 and audited as ignored: "event type '…' is not handled"


CAPTURES: dict[str, Decided | Ignored] = {
    "webhook-cloud-comment-created": Decided(COMMENT, "High", "Added a comment"),
    "webhook-cloud-comment-deleted": Ignored("comment_deleted"),
    "webhook-cloud-comment-updated": Ignored("comment_updated"),
    "webhook-cloud-issue-updated-custom-field": Decided(UPDATED, "Medium"),
    "webhook-issue-assigned-empty-changelog": Decided(UPDATED, "Medium"),
    "webhook-issue-comment-created-indentation": Decided(COMMENT, "Medium", "[~Test] creating a t"),
    "webhook-issue-created-no-description-nor-relevant-fields": Decided(CREATED, None),
    "webhook-issue-created-no-description": Decided(CREATED, "High"),
    "webhook-issue-created-no-relevant-fields": Decided(CREATED, None),
    "webhook-issue-created-with-security-level": Decided(CREATED, "High"),
    "webhook-issue-deleted": Ignored("jira:issue_deleted"),
    "webhook-issue-updated-assigned-nobody": Decided(UPDATED, "High"),
    "webhook-issue-updated-assigned-on-server": Decided(UPDATED, "Medium"),
    "webhook-issue-updated-attachments": Decided(UPDATED, "High"),
    "webhook-issue-updated-components": Decided(UPDATED, "Medium"),
    "webhook-issue-updated-edited": Decided(UPDATED, "High"),
    "webhook-issue-updated-fix-version": Decided(UPDATED, "High"),
    "webhook-issue-updated-issue-type": Decided(UPDATED, "High"),
    "webhook-issue-updated-lowered-priority": Decided(UPDATED, "Low"),
    "webhook-issue-updated-multiple-custom-fields": Decided(UPDATED, "High"),
    "webhook-issue-updated-multiple-values": Decided(UPDATED, "High"),
    "webhook-issue-updated-rank": Decided(UPDATED, "High"),
    "webhook-issue-updated-renamed": Decided(UPDATED, "High"),
    "webhook-issue-updated-reopened-one-changelog": Decided(UPDATED, "High"),
    "webhook-issue-updated-reopened": Decided(UPDATED, "High"),
    "webhook-issue-updated-resolved-one-changelog": Decided(UPDATED, "High"),
    "webhook-issue-updated-resolved": Decided(UPDATED, "High"),
    "webhook-issue-updated-sprint": Decided(UPDATED, "High"),
    "webhook-issue-updated-started-working": Decided(UPDATED, "High"),
    "webhook-server-comment-created": Decided(COMMENT, None, "unik"),
    "webhook-server-comment-deleted": Ignored("comment_deleted"),
    "webhook-server-comment-updated": Ignored("comment_updated"),
    "webhook-server-issue-updated-closed": Decided(UPDATED, "Medium"),
    "webhook-server-issue-updated-comment-deleted": Decided(UPDATED, "Medium"),
    "webhook-server-issue-updated-comment-edited": Decided(UPDATED, "Medium"),
    "webhook-server-issue-updated-commented-1": Decided(COMMENT, "Medium", "unik"),
    "webhook-server-issue-updated-commented-2": Decided(COMMENT, "Medium", "This is a test comme"),
    "webhook-server-issue-updated-commented-3": Decided(COMMENT, "Medium", "This is a test comme"),
    "webhook-server-issue-updated-commented-mention-user": Decided(COMMENT, "Medium", "unik with mentioned "),
    "webhook-server-issue-updated-in-progress": Decided(UPDATED, "Medium"),
    "webhook-server-issue-updated-many-fields": Decided(UPDATED, "Highest"),
    "webhook-server-issue-updated-reopened": Decided(UPDATED, "Medium"),
    "webhook-server-issue-updated-resolved": Decided(UPDATED, "Medium"),
    "webhook-server-old-issue-updated-no-event-type-assigned": Decided(UPDATED, "High"),
    "webhook-server-old-issue-updated-no-event-type-comment-deleted": Decided(UPDATED, "Medium"),
    "webhook-server-old-issue-updated-no-event-type-comment-edited": Decided(UPDATED, "Medium"),
    "webhook-server-old-issue-updated-no-event-type-commented": Decided(COMMENT, "Medium", "unik"),
    "webhook-server-old-issue-updated-no-event-type-edited": Decided(UPDATED, "High"),
    "webhook-server-updated-custom-field": Decided(UPDATED, "Medium"),
}


def test_every_capture_is_classified():
    on_disk = sorted(p.stem.removeprefix("mm__") for p in (FIXTURES / "jira" / "thirdparty").glob("*.json"))
    assert on_disk == sorted(CAPTURES) and len(on_disk) == 49


@pytest.mark.parametrize("name", sorted(CAPTURES))
def test_what_the_reader_makes_of_each_capture(name):
    payload = load_fixture("jira", f"thirdparty/mm__{name}")
    expected = CAPTURES[name]
    delivery = jira.provider.identify({}, payload)

    if isinstance(expected, Ignored):
        assert delivery.ignored and delivery.event_type == expected.event_type
        return
    event = jira.provider.normalise(payload, delivery)
    assert not delivery.ignored and event.kind is expected.kind
    assert event.ticket.platform_priority == expected.priority
    assert (event.comment.text[:20] if event.comment else None) == expected.comment
    assert event.ticket.ref.id == delivery.ticket_id and event.notes == ()


def test_the_priorities_as_the_example_policy_reads_them():
    mapping = load_policy(Config.model_fields["policy"].default).platforms["jira"]
    read = {c.priority: mapping.priority_of(c.priority) for c in CAPTURES.values() if isinstance(c, Decided)}
    assert {name: p.value if p else None for name, p in read.items()} == {
        "High": "P2", "Medium": "P3", "Low": "P4", "Highest": "P1", None: None,
    }  # fmt: skip


@pytest.fixture
def esc(sqlite_url):
    # Dry run with no credentials: Server's bare comment cannot be read back, so it is decided alone.
    settings = {"url": JIRA_URL, "webhook_secret": SECRET, "account_id": "escalator-bot"}
    escalator = start(Config.model_validate({"database": sqlite_url, "platforms": {"jira": settings}}))
    yield escalator
    escalator.rt.close()


def test_through_the_door_and_the_worker_none_is_accepted_and_then_fails(esc):
    answers, ids = {}, {}
    for n, name in enumerate(sorted(CAPTURES)):
        body = load_fixture("jira", f"thirdparty/mm__{name}")
        fields = (body.get("issue") or {}).get("fields") or {}
        if isinstance(fields.get("updated"), str):
            # Several captures are edits of one recording (same issue, same `updated`); a field change is
            # named by issue id @ updated, so each is made its own change here, as on a live site.
            moved = datetime.fromisoformat(fields["updated"]) + timedelta(milliseconds=n)
            fields["updated"] = moved.isoformat(timespec="milliseconds")
        answer = esc.deliver("", body=json.dumps(body).encode(), delivery_id=name)
        answers[name] = (answer.status_code, answer.json["result"])
        ids[name] = answer.json["delivery_id"]
    esc.work()

    # A new comment is named by itself (issue / comment id): the captures that report the same comment
    # (Server's bare comment_created and its issue_commented twin, edits of one recording) are one
    # delivery, the first one taken and the others answered as duplicates.
    first = {}
    for name in sorted(CAPTURES):
        first.setdefault(ids[name], name)
    twins = {name for name in CAPTURES if first[ids[name]] != name}
    assert {ids[name] for name in twins} == {"10013/comment/10082", "10231/comment/10118"}
    records = {r["trigger"]["delivery_id"]: r for r in esc.audit()}
    for name, expected in CAPTURES.items():
        record = records[ids[name]]
        if name in twins:
            assert answers[name] == (200, "duplicate"), name
            assert record["trigger"]["kind"] == expected.kind.value == "comment.added", name
            continue
        if isinstance(expected, Ignored):
            assert answers[name] == (200, "ignored"), name
            assert record["outcome"] == "ignored", name
            assert record["detail"] == f"event type '{expected.event_type}' is not handled"
        else:
            assert answers[name] == (202, "accepted"), name
            assert record["outcome"] in ("dry_run", "no_change"), (name, record["outcome"], record["detail"])
            assert record["trigger"]["kind"] == expected.kind.value, name
