"""Inbound side of Jira webhooks: check the signature, tell what a delivery is."""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from connector.model import EventKind
from platforms.base import Delivery, header
from platforms.errors import PayloadError, SignatureError
from platforms.jira.change_id import change_id, comment_id

SIGNATURE_HEADER = "X-Hub-Signature"
DELIVERY_HEADER = "X-Atlassian-Webhook-Identifier"

# `webhookEvent` values we evaluate, and what each one means canonically …
HANDLED_EVENTS: dict[str, EventKind] = {
    "jira:issue_created": EventKind.TICKET_CREATED,
    "jira:issue_updated": EventKind.TICKET_UPDATED,
    "comment_created": EventKind.COMMENT_ADDED,
}
# The `issue_event_type_name` of a `jira:issue_updated` that reports a new comment. Jira Server /
# Data Center (and Cloud) send it with the comment at the top level of the body, beside `issue`.
ISSUE_COMMENTED = "issue_commented"
# … and the ones a Jira admin webhook may also send that we knowingly ignore. Anything
# in neither list is ignored as well (answered 200 so Jira does not retry it), but is
# unexpected: the webhook was registered for more events than we asked for.
IGNORED_EVENTS: tuple[str, ...] = (
    "jira:issue_deleted",
    "comment_updated",
    "comment_deleted",
    "worklog_created",
    "worklog_updated",
    "worklog_deleted",
    "issuelink_created",
    "issuelink_deleted",
    "attachment_created",
    "attachment_deleted",
)

# A comment's REST URL names its issue: …/rest/api/2/issue/10013/comment/10082 (Server's
# `comment_created` has no `issue` object, only this).
_COMMENT_SELF = re.compile(r"/rest/api/[^/]+/issue/(?P<issue>[^/]+)/comment/[^/]+/?\Z")
_ISSUE_CHANGES = frozenset({"jira:issue_created", "jira:issue_updated"})
_SIGNATURE = re.compile(r"(?P<scheme>[A-Za-z0-9]+)=(?P<digest>.*)", re.DOTALL)
_HEX64 = re.compile(r"[0-9a-fA-F]{64}")


def verify(headers: Mapping[str, str], body: bytes, secret: str, now: datetime) -> None:
    """Raise SignatureError unless `X-Hub-Signature` is the HMAC-SHA256 of `body` under `secret`.

    `now` is unused: Jira signs no timestamp, so there is no staleness to check; replays
    are caught by the delivery id instead.
    """
    if not secret:
        raise SignatureError("no Jira webhook secret is configured; unsigned deliveries are refused")
    given = header(headers, SIGNATURE_HEADER)
    if given is None:
        raise SignatureError(f"{SIGNATURE_HEADER} header is missing")
    match = _SIGNATURE.fullmatch(given.strip())
    if match is None:
        raise SignatureError(f"{SIGNATURE_HEADER} is not of the form sha256=<hex>")
    if match["scheme"].lower() != "sha256":
        raise SignatureError(f"{SIGNATURE_HEADER} uses scheme {match['scheme']!r}; only sha256 is accepted")
    if not _HEX64.fullmatch(match["digest"]):
        raise SignatureError(f"{SIGNATURE_HEADER} digest is not 64 hex digits")
    expected = hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, match["digest"].lower()):
        raise SignatureError(f"{SIGNATURE_HEADER} does not match the body")


def identify(headers: Mapping[str, str], payload: Mapping[str, Any]) -> Delivery:
    """Delivery id, event type and issue id of one webhook; PayloadError on a wrong shape."""
    if not isinstance(payload, Mapping):
        raise PayloadError(f"Jira payload is not a JSON object but {type(payload).__name__}")
    event_type = payload.get("webhookEvent")
    if not isinstance(event_type, str) or not event_type:
        raise PayloadError("Jira payload has no 'webhookEvent'")
    delivery_id = header(headers, DELIVERY_HEADER) or payload_digest(payload)
    if event_type in _ISSUE_CHANGES and _changes_fields(payload):
        # A field change is named by the change (issue id @ updated), as the reconcile job names its
        # copy. Not a comment alone, or an edited one: Jira may leave `updated` where it was.
        delivery_id = change_id(payload.get("issue")) or delivery_id
    elif event_kind(payload) is EventKind.COMMENT_ADDED:
        # A new comment is named by itself: its two webhooks and its reconciled copy are one delivery.
        delivery_id = comment_id(_optional_issue_id(payload), payload.get("comment")) or delivery_id
    if event_type not in HANDLED_EVENTS:
        return Delivery(delivery_id, event_type, _optional_issue_id(payload), ignored=True)
    return Delivery(delivery_id, event_type, issue_id(payload))


def event_kind(payload: Mapping[str, Any]) -> EventKind | None:
    """What a delivery means canonically; None for an event type we do not evaluate.

    A `jira:issue_updated` that carries a new comment is `comment.added`: its
    `issue_event_type_name` says `issue_commented`, or (old Server bodies, which have no
    event type name) it carries a comment that was never edited. An edited or deleted comment
    stays a `ticket.updated`: it is not a new reply.
    """
    event_type = payload.get("webhookEvent")
    kind = HANDLED_EVENTS.get(event_type) if isinstance(event_type, str) else None
    if kind is EventKind.TICKET_UPDATED and carries_new_comment(payload):
        return EventKind.COMMENT_ADDED
    return kind


def carries_new_comment(payload: Mapping[str, Any]) -> bool:
    """True when an issue_updated body reports a new comment (see `event_kind`)."""
    comment = payload.get("comment")
    if not isinstance(comment, Mapping):
        return False
    name = payload.get("issue_event_type_name")
    if name is None:
        created, updated = comment.get("created"), comment.get("updated")
        return created is None or updated is None or created == updated
    return name == ISSUE_COMMENTED


def _changes_fields(payload: Mapping[str, Any]) -> bool:
    changelog = payload.get("changelog")
    return isinstance(changelog, Mapping) and bool(changelog.get("items"))


def payload_digest(payload: Mapping[str, Any]) -> str:
    """A delivery id for a payload that came without Jira's identifier header.

    Jira Cloud resends a failed delivery with the same identifier; Jira Data Center and
    some proxies do not send one. Hashing the canonical JSON (sorted keys, no spaces)
    keeps dedupe working there: a redelivery of the same event hashes the same even if
    key order or whitespace differ, and two different events differ at least in
    `timestamp`, so they never collide.
    """
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return "sha256:" + hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def issue_id(payload: Mapping[str, Any]) -> str:
    """`issue.id` as a string (Server's bare comment events: the id in `comment.self`); PayloadError
    when a handled event names no issue."""
    issue = payload.get("issue")
    if issue is None:
        from_comment = comment_issue_id(payload.get("comment"))
        if from_comment is not None:
            return from_comment
    if not isinstance(issue, Mapping):
        raise PayloadError("Jira payload has no 'issue' object (nor a 'comment.self' naming one)")
    value = issue.get("id")
    if isinstance(value, bool) or not isinstance(value, str | int) or value == "":
        raise PayloadError("Jira payload: 'issue.id' missing")
    return str(value)


def comment_issue_id(comment: Any) -> str | None:
    """The issue id in a comment's REST `self` URL; None when there is none."""
    if not isinstance(comment, Mapping) or not isinstance(comment.get("self"), str):
        return None
    match = _COMMENT_SELF.search(urlsplit(comment["self"]).path)
    return match["issue"] if match else None


def _optional_issue_id(payload: Mapping[str, Any]) -> str | None:
    try:
        return issue_id(payload)
    except PayloadError:
        return None  # ignored events (worklogs, links) need not name an issue
