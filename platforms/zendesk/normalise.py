"""Zendesk payloads → canonical `TicketEvent` / `Ticket`.

Three shapes reach this module: our trigger template (every value a string, tags one
space-separated string, "" for an empty placeholder), Zendesk's event envelope (`detail`
snapshot + `event` change), and the REST ticket object that `ZendeskClient.fetch` reads.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from connector.model import (
    Change,
    Comment,
    EventKind,
    Person,
    Requester,
    Ticket,
    TicketEvent,
    TicketRef,
)
from platforms.base import Delivery, ui_url
from platforms.errors import PayloadError
from platforms.zendesk.values import (
    as_flag,
    as_mapping,
    as_text,
    id_person,
    optional_id,
    parse_datetime,
    priority,
    status,
    status_name,
    tags,
    ticket_ref,
    version,
)
from platforms.zendesk.webhook import (
    HANDLED_EVENT_TYPES,
    TRIGGER_EVENTS,
    event_ticket_id,
    is_event_subscription,
    ticket_id_text,
    trigger_event,
    trigger_ticket_id,
)


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
    values = as_mapping(payload.get("ticket"), "ticket")
    notes: list[str] = []
    requester = _trigger_requester(payload.get("requester"))
    updated_raw = as_text(values.get("updated_at"), "ticket.updated_at")
    ticket = Ticket(
        ref=ticket_ref(trigger_ticket_id(payload), as_text(values.get("link"), "ticket.link") or None),
        title=as_text(values.get("title"), "ticket.title"),
        status=status(values.get("status"), "ticket.status"),
        platform_priority=priority(values.get("priority"), "ticket.priority"),
        labels=tags(values.get("tags"), "ticket.tags"),
        assignee=optional_id(values.get("assignee_id"), "ticket.assignee_id"),
        group=optional_id(values.get("group_id"), "ticket.group_id"),
        requester=requester,
        fields=_template_fields(values.get("fields"), notes),
        created_at=_skipped(notes, parse_datetime, values.get("created_at"), "ticket.created_at"),
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
    if kind is not EventKind.TICKET_CREATED and comment is None:
        ticket = dataclasses.replace(ticket, first_reply_at=_answered_by(payload.get("comment"), ticket))
    return TicketEvent(
        kind=kind,
        ticket=ticket,
        actor=actor,
        changes=changes,
        comment=comment,
        occurred_at=ticket.updated_at,
        delivery_id=delivery.delivery_id,
        notes=tuple(notes),
    )


def _skipped(notes: list[str], read: Any, *args: Any) -> Any:
    """`read(*args)`, or None with a note when an optional value is there but unreadable."""
    try:
        return read(*args)
    except PayloadError as exc:
        notes.append(f"skipped: {exc}")
        return None


def _answered_by(value: Any, ticket: Ticket) -> datetime | None:
    """A ticket update whose latest comment is a public one by someone other than the requester has
    been answered (by then: the update's instant). A ticket Escalator first sees that way has had its
    first response. The placeholder is optional: an empty or unreadable one shows no reply."""
    try:
        latest = _trigger_comment(value, ticket.requester) if value is not None else None
    except PayloadError:
        return None
    if latest is None or not latest.public or latest.by_requester or ticket.requester is None:
        return None
    return ticket.updated_at


def _trigger_requester(value: Any) -> Requester | None:
    if value is None:
        return None
    requester = as_mapping(value, "requester")
    ident = optional_id(requester.get("id"), "requester.id")
    if ident is None:
        return None
    return Requester(
        id=ident,
        name=as_text(requester.get("name"), "requester.name"),
        email=as_text(requester.get("email"), "requester.email") or None,
        tier=as_text(requester.get("tier"), "requester.tier").strip(),
        region=as_text(requester.get("region"), "requester.region").strip(),
        language=as_text(requester.get("language"), "requester.language").strip(),
    )


def _trigger_person(value: Any, where: str) -> Person | None:
    if value is None:
        return None
    person = as_mapping(value, where)
    ident = optional_id(person.get("id"), f"{where}.id")
    return None if ident is None else Person(id=ident, name=as_text(person.get("name"), f"{where}.name"))


def _trigger_comment(value: Any, requester: Requester | None) -> Comment:
    comment = as_mapping(value, "comment")
    ident = optional_id(comment.get("id"), "comment.id")
    if ident is None:
        raise PayloadError("Zendesk trigger body: 'comment.id' is empty on a ticket.comment_added event")
    author_id = optional_id(comment.get("author_id"), "comment.author_id")
    if author_id is None:
        raise PayloadError("Zendesk trigger body: 'comment.author_id' is empty")
    author = Person(id=author_id, name=as_text(comment.get("author_name"), "comment.author_name"))
    return Comment(
        id=ident,
        text=as_text(comment.get("body"), "comment.body"),
        author=author,
        public=as_flag(comment.get("public"), "comment.public"),
        by_requester=requester is not None and author.id == requester.id,
    )


def _template_fields(value: Any, notes: list[str]) -> dict[str, Any]:
    """Custom fields by field id. A plain string stays a string ("" is unset); an entry
    `{"type": ..., "value": "{{ticket.ticket_field_<id>}}"}` is parsed as that type. A value that
    does not read as its type is left out with a note (the policy then reads its default)."""
    if value is None:
        return {}
    entries = as_mapping(value, "ticket.fields")
    parsed: dict[str, Any] = {}
    for field_id, entry in entries.items():
        where = f"ticket.fields.{field_id}"
        try:
            if isinstance(entry, Mapping):
                parsed[str(field_id)] = _typed(entry.get("type"), as_text(entry.get("value"), where), where)
            else:
                parsed[str(field_id)] = as_text(entry, where) or None
        except PayloadError as exc:
            notes.append(f"skipped: {exc}")
    return parsed


def _typed(kind: Any, text: str, where: str) -> Any:
    text = text.strip()
    if kind == "text":
        return text or None
    if text == "":
        return None
    try:
        if kind == "checkbox":
            return as_flag(text, where)
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
    detail = as_mapping(payload.get("detail"), "detail")
    notes: list[str] = []
    ticket = ticket_from_detail(detail, event_ticket_id(payload), notes)
    change = payload.get("event")
    change = {} if change is None else as_mapping(change, "event")
    actor = id_person(detail.get("actor_id"), "detail.actor_id")
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
        occurred_at=_skipped(notes, parse_datetime, payload.get("time"), "time"),
        delivery_id=delivery.delivery_id,
        notes=tuple(notes),
    )


def ticket_from_detail(detail: Mapping[str, Any], ident: str, notes: list[str] | None = None) -> Ticket:
    """A ticket snapshot from an event's `detail` (ids as strings, names in upper case)."""
    # The envelope names the account by number, not by URL: no agent link.
    return _snapshot(detail, "detail", ticket_ref(ident, None), notes=notes)


def _event_changes(event_type: str, change: Mapping[str, Any], ticket: Ticket) -> tuple[Change, ...]:
    """`event.previous`/`event.current` (or the tag lists) as the canonical field names."""
    name = event_type.rsplit(".", 1)[-1]
    previous, current = change.get("previous"), change.get("current")
    if name == "priority_changed":
        return (Change("priority", priority(previous, "event.previous"), priority(current, "event.current")),)
    if name == "status_changed":
        return (Change("status", status_name(previous), status_name(current)),)
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
    comment = as_mapping(value, "event.comment")
    ident = optional_id(comment.get("id"), "event.comment.id")
    if ident is None:
        raise PayloadError("Zendesk event: 'event.comment.id' missing")
    author_obj = as_mapping(comment.get("author"), "event.comment.author")
    author = id_person(author_obj.get("id"), "event.comment.author.id")
    if author is None:
        raise PayloadError("Zendesk event: 'event.comment.author.id' missing")
    author = Person(id=author.id, name=as_text(author_obj.get("name"), "event.comment.author.name"))
    public = comment.get("is_public")
    return Comment(
        id=ident,
        text=as_text(comment.get("body"), "event.comment.body"),
        author=author,
        public=public if isinstance(public, bool) else as_flag(public, "event.comment.is_public"),
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
    source: Mapping[str, Any],
    where: str,
    ref: TicketRef,
    fields: dict[str, Any] | None = None,
    notes: list[str] | None = None,
) -> Ticket:
    """The ticket fields an event's `detail` and the REST ticket object share, read alike;
    `where` names the object in errors ("detail.status", "ticket.status"). An unreadable
    `created_at` is left out with a note (`updated_at` is the safe_update token: required)."""
    notes = notes if notes is not None else []
    requester_id = optional_id(source.get("requester_id"), f"{where}.requester_id")
    updated_raw = source.get("updated_at")
    return Ticket(
        ref=ref,
        title=as_text(source.get("subject"), f"{where}.subject"),
        status=status(source.get("status"), f"{where}.status"),
        platform_priority=priority(source.get("priority"), f"{where}.priority"),
        labels=tags(source.get("tags"), f"{where}.tags"),
        assignee=optional_id(source.get("assignee_id"), f"{where}.assignee_id"),
        group=optional_id(source.get("group_id"), f"{where}.group_id"),
        requester=Requester(id=requester_id) if requester_id else None,
        fields=fields or {},
        created_at=_skipped(notes, parse_datetime, source.get("created_at"), f"{where}.created_at"),
        updated_at=parse_datetime(updated_raw, f"{where}.updated_at"),
        version=version(updated_raw),
    )


def agent_url(api_url: Any, ident: str) -> str | None:
    """`<base>/agent/tickets/<id>` from the ticket's API `url` (keeps a proxy's path prefix)."""
    return ui_url(api_url, "/api/v2/", f"agent/tickets/{ident}")
