"""Reconcile reader for Zendesk: tickets updated in a window, through the cursor-based incremental
ticket export (`GET /api/v2/incremental/tickets/cursor.json?start_time=…`, then `?cursor=…` until
`end_of_stream`), as the trigger delivery (trigger_template.json) the change would have sent.

The export is limited to 10 requests a minute: the pager waits out its 429s. The export names no
updater and no comment, so a reconciled change is `ticket.created`, `ticket.priority_changed` (its
priority differs from what Escalator last saw) or `ticket.updated`. Its id is the trigger's (ticket
id + `updated_at`): a late trigger delivery is a duplicate. For a change whose delivery never came,
the ticket's newest comment is read (one request per missed change); one Escalator has not seen
becomes the `ticket.comment_added` delivery its trigger would have sent, under that trigger's id
(ticket id + the comment's instant + ":comment").
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import datetime
from typing import Any

from connector.model import Ticket
from platforms.errors import NotConfigured, PayloadError
from platforms.reconciling import Found, Pager, require, within
from platforms.zendesk.change_id import change_id
from platforms.zendesk.settings import Settings
from platforms.zendesk.values import parse_datetime
from platforms.zendesk.webhook import TRIGGER_EVENT_TYPE_PREFIX

EXPORT = "/api/v2/incremental/tickets/cursor.json"


def pager(settings: Settings, **options: Any) -> Pager:
    if not settings.can_write:
        raise NotConfigured("platforms.zendesk needs 'email' and 'api_token' to reconcile")
    assert settings.email is not None and settings.api_token is not None
    return Pager(
        "Zendesk", (f"{settings.email}/token", settings.api_token), timeout=settings.timeout, **options
    )


def changed(pager: Pager, settings: Settings, start: datetime, end: datetime) -> Iterator[Mapping[str, Any]]:
    params: dict[str, Any] = {"start_time": int(start.timestamp())}
    while True:
        page = require(pager.get(settings.base_url + EXPORT, params), dict, f"Zendesk's {EXPORT} answer")
        for ticket in require(page.get("tickets", []), list, "'tickets'"):
            if (
                isinstance(ticket, dict)
                and ticket.get("status") != "deleted"
                and within(updated_at(ticket), start, end)
            ):
                yield ticket
        cursor = page.get("after_cursor")
        if page.get("end_of_stream", True) or not cursor:
            return
        params = {"cursor": cursor}


def updated_at(ticket: Mapping[str, Any]) -> datetime | None:
    value = ticket.get("updated_at")
    try:
        return datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        return None


def ticket_id(ticket: Mapping[str, Any]) -> str:
    return str(ticket.get("id"))


def delivery(ticket: Mapping[str, Any], snapshot: Ticket | None, settings: Settings) -> Found | None:
    ident = ticket_id(ticket)
    updated = ticket.get("updated_at")
    delivery_id = change_id(ident, updated)
    if delivery_id is None:
        return None
    if snapshot is None and ticket.get("created_at") == updated:
        event = "ticket.created"
    elif snapshot is not None and (ticket.get("priority") or None) != snapshot.platform_priority:
        event = "ticket.priority_changed"
    else:
        event = "ticket.updated"
    body = {
        "event": event,
        "ticket": {
            "id": ident,
            "title": _text(ticket.get("subject")),
            "status": _text(ticket.get("status")),
            "priority": _text(ticket.get("priority")),
            "tags": " ".join(t for t in ticket.get("tags") or [] if isinstance(t, str)),
            "assignee_id": _text(ticket.get("assignee_id")),
            "group_id": _text(ticket.get("group_id")),
            "link": "",
            "created_at": _text(ticket.get("created_at")),
            "updated_at": _text(updated),
            "fields": {str(f["id"]): _text(f.get("value")) for f in ticket.get("custom_fields") or []
                       if isinstance(f, dict) and "id" in f},
        },
        # The export names the requester by id only; the template's placeholders would render blanks.
        "requester": {"id": _text(ticket.get("requester_id")), "name": "", "email": "", "language": "",
                      "tier": "", "region": ""},
        "current_user": {"id": "", "name": ""},
        "comment": {"id": "", "body": "", "public": "", "author_id": "", "author_name": ""},
    }  # fmt: skip
    return Found(ident, delivery_id, TRIGGER_EVENT_TYPE_PREFIX + event, body)


def _text(value: Any) -> str:
    return "" if value is None else str(value)


def with_missed_comment(
    pager: Pager, ticket: Mapping[str, Any], snapshot: Ticket | None, settings: Settings, found: Found
) -> list[Found]:
    """The missed change, and the newest comment if Escalator has not seen it."""
    url = f"{settings.base_url}/api/v2/tickets/{found.ticket_id}/comments.json"
    page = require(pager.get(url, {"sort_order": "desc", "per_page": 1}), dict, "Zendesk's comments answer")
    comments = [c for c in require(page.get("comments", []), list, "'comments'") if isinstance(c, dict)]
    if not comments:
        return [found]
    newest = comments[0]
    created = newest.get("created_at")
    delivery_id = change_id(found.ticket_id, created, comment=True)
    seen = snapshot.updated_at if snapshot is not None else None
    try:
        at = parse_datetime(created, "comments[0].created_at")
    except PayloadError:
        return [found]
    if delivery_id is None or at is None or (seen is not None and at <= seen):
        return [found]
    comment = {
        "id": _text(newest.get("id")),
        "body": _text(newest.get("plain_body") or newest.get("body")),
        "public": "true" if newest.get("public") else "false",
        "author_id": _text(newest.get("author_id")),
        "author_name": "",
    }
    body = {**found.body, "event": "ticket.comment_added", "comment": comment}
    return [
        found,
        Found(found.ticket_id, delivery_id, TRIGGER_EVENT_TYPE_PREFIX + "ticket.comment_added", body),
    ]
