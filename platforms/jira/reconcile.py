"""Reconcile reader for Jira Cloud: issues updated in a window, through the enhanced search
(`GET /rest/api/3/search/jql`, paged by `nextPageToken`), as the `jira:issue_updated` webhook the
change would have sent.

A new comment has its own webhook (`comment_created`), so it is found on its own: the issue's
`comment` field lists its comments, and each one created within the window becomes the delivery
that webhook would have been, named by the comment (see change_id.py), so one whose webhook came is a
duplicate. When the search shows only the first page of an issue's comments, the newest are read.

JQL compares times in the time zone of the user the token belongs to (`GET /rest/api/3/myself`,
`timeZone`) and only to the minute: the window's start is written in that zone, rounded down to
the minute, and the exact bounds are applied to each issue's `updated` instant afterwards.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from connector.model import Ticket
from platforms.errors import NotConfigured, PayloadError
from platforms.jira.change_id import change_id, comment_id
from platforms.jira.normalise import parse_datetime
from platforms.jira.settings import Settings
from platforms.reconciling import Found, Pager, require, within

SEARCH = "/rest/api/3/search/jql"  # Jira Cloud's enhanced search
SERVER_SEARCH = "/rest/api/2/search"  # Jira Server / Data Center
PAGE_SIZE = 100


def pager(settings: Settings, **options: Any) -> Pager:
    if not settings.can_write:
        raise NotConfigured("platforms.jira needs 'email' and 'api_token' to reconcile")
    assert settings.email is not None and settings.api_token is not None
    return Pager("Jira", (settings.email, settings.api_token), timeout=settings.timeout, **options)


def jql(settings: Settings, start: datetime, zone: str) -> str:
    """Issues updated since `start` (in the user's zone, to the minute), oldest first."""
    try:
        local = start.astimezone(ZoneInfo(zone))
    except (ZoneInfoNotFoundError, ValueError):
        local = start.astimezone(ZoneInfo("UTC"))
    clause = f'updated >= "{local.strftime("%Y-%m-%d %H:%M")}"'
    if settings.webhook_jql:  # the webhook's own filter: changes outside it would never have come
        clause = f"({settings.webhook_jql}) AND {clause}"
    return f"{clause} ORDER BY updated ASC"


def changed(pager: Pager, settings: Settings, start: datetime, end: datetime) -> Iterator[Mapping[str, Any]]:
    """The issues (with their changelog) updated within [start, end]."""
    version = "2" if settings.deployment == "server" else "3"
    me = require(pager.get(f"{settings.url}/rest/api/{version}/myself"), dict, "Jira's GET /myself answer")
    params: dict[str, Any] = {
        "jql": jql(settings, start, str(me.get("timeZone") or "UTC")),
        "fields": "*all",
        "expand": "changelog",
        "maxResults": PAGE_SIZE,
    }
    if settings.deployment == "server":
        yield from _server_pages(pager, settings, params, start, end)
        return
    while True:
        page = require(pager.get(settings.url + SEARCH, params), dict, f"Jira's {SEARCH} answer")
        for issue in require(page.get("issues", []), list, "'issues'"):
            if isinstance(issue, dict) and within(updated_at(issue), start, end):
                yield issue
        token = page.get("nextPageToken")
        if page.get("isLast", True) or not token:
            return
        params["nextPageToken"] = token


def _server_pages(pager: Pager, settings: Settings, params: dict[str, Any], start: datetime, end: datetime):
    """Jira Server / Data Center has no enhanced search: `GET /rest/api/2/search`, paged by startAt."""
    params["startAt"] = 0
    while True:
        page = require(
            pager.get(settings.url + SERVER_SEARCH, params), dict, f"Jira's {SERVER_SEARCH} answer"
        )
        issues = require(page.get("issues", []), list, "'issues'")
        for issue in issues:
            if isinstance(issue, dict) and within(updated_at(issue), start, end):
                yield issue
        params["startAt"] += len(issues)
        if not issues or params["startAt"] >= int(page.get("total") or 0):
            return


def updated_at(issue: Mapping[str, Any]) -> datetime | None:
    fields = issue.get("fields")
    return (
        parse_datetime(fields.get("updated"), "issue.fields.updated") if isinstance(fields, Mapping) else None
    )


def ticket_id(issue: Mapping[str, Any]) -> str:
    return str(issue.get("id"))


def delivery(issue: Mapping[str, Any], snapshot: Ticket | None, settings: Settings) -> Found | None:
    """The webhook this change would have sent: the issue, and the changelog entries after the last
    state Escalator saw (the newest entry's author is the actor, so Escalator's own edits stay echoes)."""
    ident = change_id(issue)
    if ident is None:
        return None
    fields = issue.get("fields") or {}
    created = parse_datetime(fields.get("created"), "issue.fields.created")
    updated = updated_at(issue)
    seen = snapshot.updated_at if snapshot is not None else None
    histories = [h for h in (issue.get("changelog") or {}).get("histories") or [] if isinstance(h, dict)]
    newer = [h for h in histories if seen is None or (_at(h) is not None and _at(h) > seen)]  # type: ignore[operator]
    newer.sort(key=lambda h: _at(h) or updated)
    items = [item for h in newer for item in h.get("items") or [] if isinstance(item, dict)]
    is_created = snapshot is None and created is not None and created == updated
    body: dict[str, Any] = {
        "timestamp": round(updated.timestamp() * 1000) if updated else None,
        "webhookEvent": "jira:issue_created" if is_created else "jira:issue_updated",
        "issue_event_type_name": "issue_created" if is_created else "issue_generic",
        "issue": {k: v for k, v in issue.items() if k != "changelog"},
        "changelog": {"id": str(newer[-1].get("id", "")) if newer else "", "items": items},
    }
    if newer and isinstance(newer[-1].get("author"), dict):
        body["user"] = newer[-1]["author"]
    return Found(ticket_id(issue), ident, body["webhookEvent"], body)


def comments(
    pager: Pager, issue: Mapping[str, Any], settings: Settings, start: datetime, end: datetime
) -> Iterator[Found]:
    """Each comment on `issue` created within [start, end], as the `comment_created` webhook it had."""
    fields = issue.get("fields") or {}
    listed = fields.get("comment") if isinstance(fields, Mapping) else None
    if not isinstance(listed, Mapping):
        return
    found = [c for c in listed.get("comments") or [] if isinstance(c, dict)]
    total = listed.get("total")
    if isinstance(total, int) and total > len(found):  # only the oldest page came with the search
        version = "2" if settings.deployment == "server" else "3"
        url = f"{settings.url}/rest/api/{version}/issue/{ticket_id(issue)}/comment"
        page = require(
            pager.get(url, {"orderBy": "-created", "maxResults": PAGE_SIZE}), dict, "Jira's comments answer"
        )
        found = [c for c in require(page.get("comments", []), list, "'comments'") if isinstance(c, dict)]
    trimmed = {k: v for k, v in issue.items() if k != "changelog"}
    for comment in found:
        created = _comment_created(comment)
        ident = comment_id(ticket_id(issue), comment)
        if ident is None or not within(created, start, end):
            continue
        assert created is not None
        body = {
            "timestamp": round(created.timestamp() * 1000),
            "webhookEvent": "comment_created",
            "comment": comment,
            "issue": trimmed,
        }
        yield Found(ticket_id(issue), ident, "comment_created", body)


def _comment_created(comment: Mapping[str, Any]) -> datetime | None:
    try:
        return parse_datetime(comment.get("created"), "comment.created")
    except PayloadError:
        return None


def _at(history: Mapping[str, Any]) -> datetime | None:
    try:
        return parse_datetime(history.get("created"), "changelog.histories.created")
    except PayloadError:  # an unreadable entry is left out, not the whole change
        return None
