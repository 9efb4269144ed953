"""Jira webhook payload → canonical `TicketEvent`."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from connector.model import (
    Change,
    Comment,
    EventKind,
    Person,
    Requester,
    Status,
    Ticket,
    TicketEvent,
    TicketRef,
)
from platforms.base import Delivery, ui_url
from platforms.errors import PayloadError
from platforms.jira.webhook import event_kind, issue_id

PLATFORM = "jira"

# A workflow's status name says more than its category (JSM's "Waiting for customer"
# is category "indeterminate", like "In Progress"), so known names win.
STATUS_BY_NAME: dict[str, Status] = {
    "open": Status.OPEN,
    "to do": Status.OPEN,
    "reopened": Status.OPEN,
    "waiting for support": Status.OPEN,
    "in progress": Status.IN_PROGRESS,
    "work in progress": Status.IN_PROGRESS,
    "waiting for customer": Status.PENDING,
    "pending": Status.PENDING,
    "on hold": Status.ON_HOLD,
    "resolved": Status.RESOLVED,
    "closed": Status.CLOSED,
    "canceled": Status.CLOSED,
    "cancelled": Status.CLOSED,
}
STATUS_BY_CATEGORY: dict[str, Status] = {
    "new": Status.NEW,
    "indeterminate": Status.IN_PROGRESS,
    "done": Status.RESOLVED,
}

# Changelog fields whose from/to are user ids; for those we report account ids, not
# display names, so they compare with `Ticket.assignee` and `Plan.assignee`.
_USER_FIELDS = frozenset({"assignee", "reporter"})

# JSM marks an internal comment with jsdPublic=false; plain Jira has no such flag.
_JSM_PUBLIC = "jsdPublic"


def normalise(payload: Mapping[str, Any], delivery: Delivery) -> TicketEvent:
    """The canonical event for one handled Jira webhook; PayloadError on a wrong shape.

    Optional values that cannot be read (a timestamp, a date) are left out with a note in
    `TicketEvent.notes`; only what the decision cannot do without raises PayloadError.
    """
    if not isinstance(payload, Mapping):
        raise PayloadError("Jira payload is not a JSON object")
    kind = event_kind(payload)
    if kind is None:
        raise PayloadError(f"Jira event {payload.get('webhookEvent')!r} is not one we normalise")
    notes: list[str] = []
    partial = payload.get("issue") is None and kind is EventKind.COMMENT_ADDED
    if partial:
        # Jira Server / Data Center: `comment_created` carries the comment only.
        ticket = Ticket(ref=TicketRef(PLATFORM, issue_id(payload), ""))
    else:
        ticket = ticket_from_issue(payload.get("issue"), notes)
    changes = changes_from_changelog(payload.get("changelog"))
    if kind is EventKind.COMMENT_ADDED:
        comment: Comment | None = _comment(payload.get("comment"), ticket.requester)
        assert comment is not None
        actor: Person | None = comment.author
    else:
        comment = None
        actor = person(payload.get("user"))
    return TicketEvent(
        kind=kind,
        ticket=ticket,
        actor=actor,
        changes=changes,
        comment=comment,
        occurred_at=_optional(notes, _epoch_ms, payload.get("timestamp")),
        delivery_id=delivery.delivery_id,
        ticket_partial=partial,
        notes=tuple(notes),
    )


def ticket_from_issue(issue: Any, notes: list[str] | None = None) -> Ticket:
    """A ticket snapshot from a webhook's `issue` object (or a GET of the issue).

    Comment events carry a trimmed issue (summary, type, project, assignee, priority,
    status): what is absent stays empty here rather than guessed. Unreadable dates are
    skipped with a note in `notes`.
    """
    notes = notes if notes is not None else []
    if not isinstance(issue, Mapping):
        raise PayloadError("Jira payload has no 'issue' object")
    ident = issue_id({"issue": issue})
    key = issue.get("key")
    if not isinstance(key, str) or not key:
        raise PayloadError("Jira payload: 'issue.key' missing")
    fields = issue.get("fields")
    if not isinstance(fields, Mapping):
        raise PayloadError("Jira payload: 'issue.fields' missing")
    labels = fields.get("labels") or []
    if not isinstance(labels, list) or not all(isinstance(label, str) for label in labels):
        raise PayloadError("Jira payload: 'issue.fields.labels' is not a list of strings")
    reporter = fields.get("reporter")
    requester = _requester(reporter)
    return Ticket(
        ref=TicketRef(PLATFORM, ident, key, browse_url(issue.get("self"), key)),
        title=_text(fields.get("summary")),
        status=status(fields.get("status")),
        priority=None,  # the connector maps the name through the policy's priority table
        platform_priority=_name(fields.get("priority")),
        labels=frozenset(labels),
        assignee=account_id(fields.get("assignee")),
        requester=requester,
        fields={name: value for name, value in fields.items() if name.startswith("customfield_")},
        created_at=_optional(notes, parse_datetime, fields.get("created"), "issue.fields.created"),
        updated_at=_optional(notes, parse_datetime, fields.get("updated"), "issue.fields.updated"),
        first_reply_at=first_reply_at(fields.get("comment"), requester, notes),
    )


def first_reply_at(comments: Any, requester: Requester | None, notes: list[str]) -> datetime | None:
    """The earliest public comment in `fields.comment.comments` not written by the requester.

    Jira lists an issue's comments (the first page of them) in the issue's `comment` field; a
    ticket first seen after an agent answered has had its first response.
    """
    if not isinstance(comments, Mapping) or not isinstance(comments.get("comments"), list):
        return None
    earliest: datetime | None = None
    for entry in comments["comments"]:
        if not isinstance(entry, Mapping) or entry.get(_JSM_PUBLIC) is False:
            continue
        author = account_id(entry.get("author"))
        if author is None or (requester is not None and author == requester.id):
            continue
        at = _optional(notes, parse_datetime, entry.get("created"), "issue.fields.comment.comments[].created")
        if at is not None and (earliest is None or at < earliest):
            earliest = at
    return earliest


def _optional(notes: list[str], read: Any, value: Any, *args: Any) -> Any:
    """`read(value, *args)`, or None with a note when the value is there but unreadable."""
    try:
        return read(value, *args)
    except PayloadError as exc:
        notes.append(f"skipped: {exc}")
        return None


def browse_url(issue_self: Any, key: str) -> str | None:
    """`<site>/browse/<key>` from the issue's REST `self` URL (keeps a Data Center context path)."""
    return ui_url(issue_self, "/rest/", f"browse/{key}")


def status(value: Any) -> Status:
    """Normalised status from Jira's status object: known name first, then category."""
    if not isinstance(value, Mapping):
        return Status.OPEN
    by_name = STATUS_BY_NAME.get(_text(value.get("name")).strip().lower())
    if by_name is not None:
        return by_name
    category = value.get("statusCategory")
    if isinstance(category, Mapping):
        return STATUS_BY_CATEGORY.get(_text(category.get("key")), Status.OPEN)
    return Status.OPEN


def changes_from_changelog(changelog: Any) -> tuple[Change, ...]:
    """One Change per changelog item, keyed by `fieldId` (stable) rather than the display name.

    Labels arrive as space-separated strings ("bad test-label") and are kept as given.
    """
    if changelog is None:
        return ()
    items = changelog.get("items") if isinstance(changelog, Mapping) else None
    if not isinstance(items, list):
        raise PayloadError("Jira payload: 'changelog.items' is not a list")
    changes = []
    for item in items:
        if not isinstance(item, Mapping):
            raise PayloadError("Jira payload: a 'changelog.items' entry is not an object")
        name = item.get("fieldId") or item.get("field")
        if not isinstance(name, str) or not name:
            raise PayloadError("Jira payload: a changelog item names no field")
        if name in _USER_FIELDS:
            before = _user_side(item, "tmpFromAccountId", "from")
            after = _user_side(item, "tmpToAccountId", "to")
        else:
            before, after = _optional_text(item.get("fromString")), _optional_text(item.get("toString"))
        changes.append(Change(name, before, after))
    return tuple(changes)


def _user_side(item: Mapping[str, Any], account_key: str, raw_key: str) -> str | None:
    # Cloud sends the accountId in tmp*AccountId (and, nowadays, in from/to); 2019-era
    # payloads only have the username in from/to. Never the display string: two people
    # can share a display name.
    for key in (account_key, raw_key):
        value = item.get(key)
        if value not in (None, ""):
            return str(value)
    return None


def _comment(value: Any, requester: Requester | None) -> Comment:
    if not isinstance(value, Mapping):
        raise PayloadError("Jira payload has no 'comment' object")
    ident = value.get("id")
    if isinstance(ident, bool) or not isinstance(ident, str | int) or ident == "":
        raise PayloadError("Jira payload: 'comment.id' missing")
    author = person(value.get("author"))
    if author is None:
        raise PayloadError("Jira payload: 'comment.author' missing")
    return Comment(
        id=str(ident),
        text=comment_text(value.get("body")),
        author=author,
        public=value.get(_JSM_PUBLIC) is not False,
        # Jira's comment events carry no reporter, so this stays False unless the
        # payload (or a caller that knows the requester) says otherwise.
        by_requester=requester is not None and author.id == requester.id,
    )


def comment_text(body: Any) -> str:
    """Plain text of a comment body: a v2 wiki-markup string, or an ADF document (v3)."""
    if body is None:
        return ""
    if isinstance(body, str):
        return body
    if isinstance(body, Mapping):
        return _adf_text(body).rstrip("\n")
    raise PayloadError("Jira payload: 'comment.body' is neither text nor a document")


def _adf_text(node: Any) -> str:
    if not isinstance(node, Mapping):
        return ""
    if node.get("type") == "text":
        return _text(node.get("text"))
    children = node.get("content")
    inner = "".join(_adf_text(child) for child in children) if isinstance(children, list) else ""
    return inner + "\n" if node.get("type") == "paragraph" else inner


def account_id(user: Any) -> str | None:
    """A user's accountId (Cloud); on Server / Data Center, which has none, the username (`name`,
    what its REST API takes to assign an issue), else the user `key`."""
    if not isinstance(user, Mapping):
        return None
    for key in ("accountId", "name", "key"):
        value = user.get(key)
        if isinstance(value, str) and value:
            return value
    return None


def person(user: Any) -> Person | None:
    ident = account_id(user)
    if ident is None:
        return None
    return Person(
        id=ident, name=_text(user.get("displayName")), email=_optional_text(user.get("emailAddress"))
    )


def _requester(user: Any) -> Requester | None:
    found = person(user)
    if found is None:
        return None
    return Requester(id=found.id, name=found.name, email=found.email)


def parse_datetime(value: Any, where: str) -> datetime | None:
    """Jira's "2019-02-15T19:01:52.971-0800" as an aware datetime (None when absent)."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise PayloadError(f"Jira payload: '{where}' is not a date-time string")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError as exc:
        raise PayloadError(f"Jira payload: '{where}' is not a date-time: {value!r}") from exc
    # Jira always sends an offset; should one be missing, UTC is its server-side default.
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def _epoch_ms(value: Any) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise PayloadError("Jira payload: 'timestamp' is not epoch milliseconds")
    try:
        return datetime.fromtimestamp(value / 1000, tz=UTC)
    except (OverflowError, OSError, ValueError) as exc:
        raise PayloadError(f"Jira payload: 'timestamp' {value!r} is not a time") from exc


def _name(value: Any) -> str | None:
    return _optional_text(value.get("name")) if isinstance(value, Mapping) else None


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _optional_text(value: Any) -> str | None:
    return value if isinstance(value, str) else None
