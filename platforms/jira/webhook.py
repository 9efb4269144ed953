"""Inbound side of Jira webhooks: check the signature, tell what a delivery is."""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from connector.model import EventKind
from platforms.base import Delivery, header
from platforms.errors import PayloadError, SignatureError

SIGNATURE_HEADER = "X-Hub-Signature"
DELIVERY_HEADER = "X-Atlassian-Webhook-Identifier"

# `webhookEvent` values we evaluate, and what each one means canonically …
HANDLED_EVENTS: dict[str, EventKind] = {
    "jira:issue_created": EventKind.TICKET_CREATED,
    "jira:issue_updated": EventKind.TICKET_UPDATED,
    "comment_created": EventKind.COMMENT_ADDED,
}
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
    if event_type not in HANDLED_EVENTS:
        return Delivery(delivery_id, event_type, _optional_issue_id(payload), ignored=True)
    return Delivery(delivery_id, event_type, issue_id(payload))


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
    """`issue.id` as a string; PayloadError when a handled event lacks it."""
    issue = payload.get("issue")
    if not isinstance(issue, Mapping):
        raise PayloadError("Jira payload has no 'issue' object")
    value = issue.get("id")
    if isinstance(value, bool) or not isinstance(value, str | int) or value == "":
        raise PayloadError("Jira payload: 'issue.id' missing")
    return str(value)


def _optional_issue_id(payload: Mapping[str, Any]) -> str | None:
    try:
        return issue_id(payload)
    except PayloadError:
        return None  # ignored events (worklogs, links) need not name an issue
