"""Zendesk payloads → canonical `TicketEvent` / `Ticket`.

Three shapes reach this module: our trigger template (every value a string, tags one
space-separated string, "" for an empty placeholder), Zendesk's event envelope (`detail`
snapshot + `event` change), and the REST ticket object that `ZendeskClient.fetch` reads.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

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
from platforms.base import Delivery
from platforms.errors import PayloadError
from platforms.zendesk.webhook import (
    HANDLED_EVENT_TYPES,
    TRIGGER_EVENTS,
    event_ticket_id,
    is_event_subscription,
    ticket_id_text,
    trigger_event,
    trigger_ticket_id,
)

PLATFORM = "zendesk"

# Zendesk's status names: lower case in REST, upper case in events ("HOLD"), and the
# display names in trigger placeholders ("Open", "On-hold"). Deleted/archived/scrubbed
# only appear on events about tickets that are gone.
STATUS_BY_NAME: dict[str, Status] = {
    "new": Status.NEW,
    "open": Status.OPEN,
    "pending": Status.PENDING,
    "hold": Status.ON_HOLD,
    "on-hold": Status.ON_HOLD,
    "on hold": Status.ON_HOLD,
    "solved": Status.RESOLVED,
    "closed": Status.CLOSED,
    "deleted": Status.CLOSED,
    "archived": Status.CLOSED,
    "scrubbed": Status.CLOSED,
}
PRIORITIES: tuple[str, ...] = ("urgent", "high", "normal", "low")
# What an unset priority looks like: null (REST, events), "" or "-" (trigger placeholder).
_NO_PRIORITY = frozenset({"", "-"})

# `updated_stamp` must equal the ticket's `updated_at` to the second; a stamp without
# seconds (a placeholder rendered to the minute) could never match and would turn every
# safe update into a 409.
_STAMP_WITH_SECONDS = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}")
_TRUE = frozenset({"true", "yes", "1"})
_FALSE = frozenset({"false", "no", "0"})


def normalise(payload: Mapping[str, Any], delivery: Delivery) -> TicketEvent:
    """The canonical event for one handled webhook, either body style; PayloadError on a wrong shape."""
    if not isinstance(payload, Mapping):
        raise PayloadError("Zendesk payload is not a JSON object")
    if is_event_subscription(payload):
        return _from_event(payload, delivery)
    return _from_trigger(payload, delivery)


# --- trigger template (trigger_template.json) --------------------------------


def _from_trigger(payload: Mapping[str, Any], delivery: Delivery) -> TicketEvent:
    event = trigger_event(payload)
    kind = TRIGGER_EVENTS[event]
    values = _object(payload.get("ticket"), "ticket")
    requester = _trigger_requester(payload.get("requester"))
    updated_raw = _text(values.get("updated_at"), "ticket.updated_at")
    ticket = Ticket(
        ref=ticket_ref(trigger_ticket_id(payload), _text(values.get("link"), "ticket.link") or None),
        title=_text(values.get("title"), "ticket.title"),
        status=status(values.get("status"), "ticket.status"),
        platform_priority=priority(values.get("priority"), "ticket.priority"),
        labels=tags(values.get("tags"), "ticket.tags"),
        assignee=optional_id(values.get("assignee_id"), "ticket.assignee_id"),
        group=optional_id(values.get("group_id"), "ticket.group_id"),
        requester=requester,
        fields=_template_fields(values.get("fields")),
        created_at=parse_datetime(values.get("created_at"), "ticket.created_at"),
        updated_at=parse_datetime(updated_raw, "ticket.updated_at"),
        version=version(updated_raw),
    )
    actor = _trigger_person(payload.get("current_user"), "current_user")
    comment = None
    changes: tuple[Change, ...] = ()
    if kind is EventKind.COMMENT_ADDED:
        comment = _trigger_comment(payload.get("comment"), requester)
        actor = actor or comment.author
    elif event == "ticket.priority_changed":
        # The trigger's condition ("Priority changed") is the only witness; placeholders
        # cannot show the value before the change.
        changes = (Change("priority", None, ticket.platform_priority),)
    return TicketEvent(
        kind=kind,
        ticket=ticket,
        actor=actor,
        changes=changes,
        comment=comment,
        occurred_at=ticket.updated_at,
        delivery_id=delivery.delivery_id,
    )


def _trigger_requester(value: Any) -> Requester | None:
    if value is None:
        return None
    requester = _object(value, "requester")
    ident = optional_id(requester.get("id"), "requester.id")
    if ident is None:
        return None
    return Requester(
        id=ident,
        name=_text(requester.get("name"), "requester.name"),
        email=_text(requester.get("email"), "requester.email") or None,
        tier=_text(requester.get("tier"), "requester.tier").strip(),
        region=_text(requester.get("region"), "requester.region").strip(),
        language=_text(requester.get("language"), "requester.language").strip(),
    )


def _trigger_person(value: Any, where: str) -> Person | None:
    if value is None:
        return None
    person = _object(value, where)
    ident = optional_id(person.get("id"), f"{where}.id")
    return None if ident is None else Person(id=ident, name=_text(person.get("name"), f"{where}.name"))


def _trigger_comment(value: Any, requester: Requester | None) -> Comment:
    comment = _object(value, "comment")
    ident = optional_id(comment.get("id"), "comment.id")
    if ident is None:
        raise PayloadError("Zendesk trigger body: 'comment.id' is empty on a ticket.comment_added event")
    author_id = optional_id(comment.get("author_id"), "comment.author_id")
    if author_id is None:
        raise PayloadError("Zendesk trigger body: 'comment.author_id' is empty")
    author = Person(id=author_id, name=_text(comment.get("author_name"), "comment.author_name"))
    return Comment(
        id=ident,
        text=_text(comment.get("body"), "comment.body"),
        author=author,
        public=_flag(comment.get("public"), "comment.public"),
        by_requester=requester is not None and author.id == requester.id,
    )


def _template_fields(value: Any) -> dict[str, Any]:
    """Custom fields by field id. A plain string stays a string ("" is unset); an entry
    `{"type": ..., "value": "{{ticket.ticket_field_<id>}}"}` is parsed as that type."""
    if value is None:
        return {}
    entries = _object(value, "ticket.fields")
    parsed: dict[str, Any] = {}
    for field_id, entry in entries.items():
        where = f"ticket.fields.{field_id}"
        if isinstance(entry, Mapping):
            parsed[str(field_id)] = _typed(entry.get("type"), _text(entry.get("value"), where), where)
        else:
            parsed[str(field_id)] = _text(entry, where) or None
    return parsed


def _typed(kind: Any, text: str, where: str) -> Any:
    text = text.strip()
    if kind == "text":
        return text or None
    if text == "":
        return None
    try:
        if kind == "checkbox":
            return _flag(text, where)
        if kind == "integer":
            return int(text)
        if kind == "decimal":
            return float(text)
    except ValueError as exc:
        raise PayloadError(f"Zendesk trigger body: '{where}' is not a {kind}: {text!r}") from exc
    raise PayloadError(
        f"Zendesk trigger body: '{where}.type' {kind!r} is not text, checkbox, integer or decimal"
    )


# --- event subscriptions (zen:event-type:ticket.*) ---------------------------


def _from_event(payload: Mapping[str, Any], delivery: Delivery) -> TicketEvent:
    event_type = payload["type"]
    kind = HANDLED_EVENT_TYPES.get(event_type)
    if kind is None:
        raise PayloadError(f"Zendesk event {event_type!r} is not one we normalise")
    detail = _object(payload.get("detail"), "detail")
    ticket = ticket_from_detail(detail, event_ticket_id(payload))
    change = payload.get("event")
    change = {} if change is None else _object(change, "event")
    actor = _id_person(detail.get("actor_id"), "detail.actor_id")
    comment = None
    if kind is EventKind.COMMENT_ADDED:
        comment = _event_comment(change.get("comment"), ticket.requester)
        actor = actor or comment.author
    return TicketEvent(
        kind=kind,
        ticket=ticket,
        actor=actor,
        changes=_event_changes(event_type, change, ticket),
        comment=comment,
        occurred_at=parse_datetime(payload.get("time"), "time"),
        delivery_id=delivery.delivery_id,
    )


def ticket_from_detail(detail: Mapping[str, Any], ident: str) -> Ticket:
    """A ticket snapshot from an event's `detail` (ids as strings, names in upper case)."""
    # The envelope names the account by number, not by URL: no agent link.
    return _snapshot(detail, "detail", ticket_ref(ident, None))


def _event_changes(event_type: str, change: Mapping[str, Any], ticket: Ticket) -> tuple[Change, ...]:
    """`event.previous`/`event.current` (or the tag lists) as the canonical field names."""
    name = event_type.rsplit(".", 1)[-1]
    previous, current = change.get("previous"), change.get("current")
    if name == "priority_changed":
        return (Change("priority", priority(previous, "event.previous"), priority(current, "event.current")),)
    if name == "status_changed":
        return (Change("status", _status_name(previous), _status_name(current)),)
    if name == "agent_assignment_changed":
        return (Change("assignee", *_id_pair(previous, current)),)
    if name == "group_assignment_changed":
        return (Change("group", *_id_pair(previous, current)),)
    if name == "tags_changed":
        added = tags(change.get("tags_added"), "event.tags_added")
        removed = tags(change.get("tags_removed"), "event.tags_removed")
        before = (ticket.labels - added) | removed
        # Space-separated full lists, as Jira's labels changelog reports them.
        return (Change("labels", " ".join(sorted(before)) or None, " ".join(sorted(ticket.labels)) or None),)
    return ()  # created, comment_added: nothing was changed from a previous value


def _id_pair(previous: Any, current: Any) -> tuple[str | None, str | None]:
    return optional_id(previous, "event.previous"), optional_id(current, "event.current")


def _event_comment(value: Any, requester: Requester | None) -> Comment:
    comment = _object(value, "event.comment")
    ident = optional_id(comment.get("id"), "event.comment.id")
    if ident is None:
        raise PayloadError("Zendesk event: 'event.comment.id' missing")
    author_obj = _object(comment.get("author"), "event.comment.author")
    author = _id_person(author_obj.get("id"), "event.comment.author.id")
    if author is None:
        raise PayloadError("Zendesk event: 'event.comment.author.id' missing")
    author = Person(id=author.id, name=_text(author_obj.get("name"), "event.comment.author.name"))
    public = comment.get("is_public")
    return Comment(
        id=ident,
        text=_text(comment.get("body"), "event.comment.body"),
        author=author,
        public=public if isinstance(public, bool) else _flag(public, "event.comment.is_public"),
        by_requester=requester is not None and author.id == requester.id,
    )


# --- REST ticket object (GET /api/v2/tickets/{id}.json) ----------------------


def normalise_ticket(ticket: Mapping[str, Any]) -> Ticket:
    """A ticket snapshot from the REST ticket object (the value of the response's `ticket`)."""
    if not isinstance(ticket, Mapping):
        raise PayloadError("Zendesk ticket is not a JSON object")
    ident = ticket_id_text(ticket.get("id"), "ticket.id")
    custom = ticket.get("custom_fields") or []
    if not isinstance(custom, list) or not all(isinstance(f, Mapping) and "id" in f for f in custom):
        raise PayloadError("Zendesk ticket: 'custom_fields' is not a list of {id, value}")
    ref = ticket_ref(ident, agent_url(ticket.get("url"), ident))
    return _snapshot(ticket, "ticket", ref, fields={str(f["id"]): f.get("value") for f in custom})


def _snapshot(
    source: Mapping[str, Any], where: str, ref: TicketRef, fields: dict[str, Any] | None = None
) -> Ticket:
    """The ticket fields an event's `detail` and the REST ticket object share, read alike;
    `where` names the object in errors ("detail.status", "ticket.status")."""
    requester_id = optional_id(source.get("requester_id"), f"{where}.requester_id")
    updated_raw = source.get("updated_at")
    return Ticket(
        ref=ref,
        title=_text(source.get("subject"), f"{where}.subject"),
        status=status(source.get("status"), f"{where}.status"),
        platform_priority=priority(source.get("priority"), f"{where}.priority"),
        labels=tags(source.get("tags"), f"{where}.tags"),
        assignee=optional_id(source.get("assignee_id"), f"{where}.assignee_id"),
        group=optional_id(source.get("group_id"), f"{where}.group_id"),
        requester=Requester(id=requester_id) if requester_id else None,
        fields=fields or {},
        created_at=parse_datetime(source.get("created_at"), f"{where}.created_at"),
        updated_at=parse_datetime(updated_raw, f"{where}.updated_at"),
        version=version(updated_raw),
    )


def agent_url(api_url: Any, ident: str) -> str | None:
    """`<base>/agent/tickets/<id>` from the ticket's API `url` (keeps a proxy's path prefix)."""
    if not isinstance(api_url, str):
        return None
    parts = urlsplit(api_url)
    if not parts.scheme or not parts.netloc:
        return None
    prefix = parts.path.split("/api/v2/", 1)[0].rstrip("/")
    return f"{parts.scheme}://{parts.netloc}{prefix}/agent/tickets/{ident}"


# --- values ------------------------------------------------------------------


def ticket_ref(ident: str, url: str | None) -> TicketRef:
    """Zendesk shows a ticket as #<id>; the id is also what the API takes."""
    return TicketRef(PLATFORM, ident, f"#{ident}", url)


def status(value: Any, where: str) -> Status:
    """Normalised status from any of Zendesk's spellings; PayloadError for an unknown one."""
    name = value.strip().lower() if isinstance(value, str) else None
    found = STATUS_BY_NAME.get(name) if name is not None else None
    if found is None:
        raise PayloadError(
            f"Zendesk payload: '{where}' is {value!r}, not a Zendesk status "
            "(new, open, pending, on-hold, solved, closed; trigger placeholders render English names)"
        )
    return found


def _status_name(value: Any) -> str | None:
    # Zendesk's own name in lower case ("hold"), the spelling the REST API uses.
    if not isinstance(value, str):
        return None
    return value.strip().lower() or None


def priority(value: Any, where: str) -> str | None:
    """Zendesk's priority name in lower case (the API's spelling), None when unset."""
    if value is None:
        return None
    name = value.strip().lower() if isinstance(value, str) else None
    if name in _NO_PRIORITY:
        return None
    if name not in PRIORITIES:
        raise PayloadError(f"Zendesk payload: '{where}' is {value!r}, not one of {', '.join(PRIORITIES)}")
    return name


def tags(value: Any, where: str) -> frozenset[str]:
    """Tags from a list (REST, events) or one space-separated string (trigger placeholder)."""
    if value is None:
        return frozenset()
    if isinstance(value, str):
        return frozenset(value.split())
    if isinstance(value, list) and all(isinstance(tag, str) for tag in value):
        return frozenset(tag for tag in value if tag)
    raise PayloadError(f"Zendesk payload: '{where}' is neither a list of tags nor a space-separated string")


def optional_id(value: Any, where: str) -> str | None:
    """A Zendesk id as text; None for null, "" (empty placeholder) and 0 (events' "no such")."""
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value) if value else None
    if isinstance(value, str):
        text = value.strip()
        return None if text in ("", "0") else text
    raise PayloadError(f"Zendesk payload: '{where}' is not an id: {value!r}")


def version(updated_at: Any) -> str | None:
    """The `updated_stamp` to send back: Zendesk's `updated_at` as given, when it has seconds."""
    if isinstance(updated_at, str) and _STAMP_WITH_SECONDS.match(updated_at.strip()):
        return updated_at.strip()
    return None


def parse_datetime(value: Any, where: str) -> datetime | None:
    """An ISO-8601 string ("2023-09-18T23:26:00Z", nanoseconds allowed) as aware UTC; None when empty."""
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise PayloadError(f"Zendesk payload: '{where}' is not a date-time string")
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError as exc:
        raise PayloadError(f"Zendesk payload: '{where}' is not an ISO-8601 date-time: {value!r}") from exc
    # Zendesk's times are UTC ("Z"); should an offset be missing, UTC is still what it means.
    return parsed.astimezone(UTC) if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def _id_person(value: Any, where: str) -> Person | None:
    ident = optional_id(value, where)
    return None if ident is None else Person(id=ident)


def _flag(value: Any, where: str) -> bool:
    text = value.strip().lower() if isinstance(value, str) else None
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise PayloadError(f"Zendesk payload: '{where}' is {value!r}, not true or false")


def _object(value: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise PayloadError(f"Zendesk payload has no '{where}' object")
    return value


def _text(value: Any, where: str) -> str:
    """A string value; absent is "". Numbers are accepted (ids, hand-edited templates)."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    raise PayloadError(f"Zendesk payload: '{where}' is not text")
