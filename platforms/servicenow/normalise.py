"""ServiceNow → canonical types: the business rule's JSON → `TicketEvent`, a Table API record → `Ticket`.

Every value stays the string the Table API would give (impact "1", a reference as its
sys_id): the policy mapping names ServiceNow values as strings (P1 → impact "1",
urgency "1") and the core compares them as such.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
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
from platforms.base import Delivery
from platforms.errors import PayloadError
from platforms.servicenow.webhook import HANDLED_EVENTS, identify, mod_count_of, sys_id_of

PLATFORM = "servicenow"

# Incident `state` choice values of a base instance. A custom state maps to OPEN.
STATUS_BY_STATE: dict[str, Status] = {
    "1": Status.NEW,
    "2": Status.IN_PROGRESS,
    "3": Status.ON_HOLD,
    "6": Status.RESOLVED,
    "7": Status.CLOSED,
    "8": Status.CLOSED,  # Canceled
}

# Always in Ticket.fields: priority is computed from impact × urgency by the instance's
# priority lookup, so a policy reads (and the mapping writes) impact and urgency.
PRIORITY_FIELDS = ("impact", "urgency", "priority")
# A change to any of these means a person (re)chose the priority.
_PRIORITY_INPUTS = frozenset(PRIORITY_FIELDS)
_DATETIME_FORMAT = "%Y-%m-%d %H:%M:%S"  # the Table API's value form, always UTC


def normalise(payload: Mapping[str, Any], delivery: Delivery) -> TicketEvent:
    """The canonical event for one business-rule delivery; PayloadError on a wrong shape.

    An update that adds a customer-visible comment is `comment.added` (with the update's
    field changes kept); any other update is `ticket.updated`; an insert is
    `ticket.created` even when the caller wrote a first comment.
    """
    if not isinstance(payload, Mapping):
        raise PayloadError("ServiceNow payload is not a JSON object")
    kind = HANDLED_EVENTS.get(identify({}, payload).event_type)
    if kind is None:
        raise PayloadError(f"ServiceNow event {delivery.event_type!r} is not one we normalise")
    notes: list[str] = []
    ticket = ticket_from_payload(payload, notes)
    caller = _mapping(payload, "caller", optional=True)
    comment = _comment(payload.get("comment"), ticket, caller)
    if comment is not None and kind is EventKind.TICKET_UPDATED:
        kind = EventKind.COMMENT_ADDED
    updated_by = _text(payload, "sys_updated_by")
    return TicketEvent(
        kind=kind,
        ticket=ticket,
        actor=Person(id=updated_by) if updated_by else None,
        changes=_changes(payload, ticket),
        comment=comment,
        occurred_at=ticket.updated_at,
        delivery_id=delivery.delivery_id,
        notes=tuple(notes),
    )


def ticket_from_payload(payload: Mapping[str, Any], notes: list[str] | None = None) -> Ticket:
    """The incident snapshot the business rule sent. Optional values that do not read (a date, an
    extra field that is not text) are left out with a note in `notes`."""
    notes = notes if notes is not None else []
    sys_id = sys_id_of(payload)
    number = _text(payload, "number")
    if not number:
        raise PayloadError("ServiceNow payload: 'number' missing")
    extra = _mapping(payload, "extra_fields", optional=True) or {}
    fields = {name: _text(payload, name) for name in PRIORITY_FIELDS}
    for name, value in extra.items():
        if not isinstance(value, str):
            notes.append(f"skipped: ServiceNow payload: 'extra_fields.{name}' is not a string")
            continue
        fields.setdefault(name, value)
    tags = payload.get("tags", [])
    if not isinstance(tags, list) or not all(isinstance(tag, str) for tag in tags):
        raise PayloadError("ServiceNow payload: 'tags' is not a list of strings")
    instance_url = _text(payload, "instance_url").rstrip("/")
    return Ticket(
        ref=TicketRef(PLATFORM, sys_id, number, record_url(instance_url, sys_id)),
        title=_text(payload, "short_description"),
        status=status(_text(payload, "state")),
        priority=None,  # the connector maps impact/urgency through the policy's table
        platform_priority=_text(payload, "priority") or None,
        labels=frozenset(tags),
        assignee=_text(payload, "assigned_to") or None,
        group=_text(payload, "assignment_group") or None,
        requester=_requester(_text(payload, "caller_id"), _mapping(payload, "caller", optional=True)),
        fields=fields,
        created_at=_skipped(notes, payload.get("sys_created_on"), "sys_created_on"),
        updated_at=_skipped(notes, payload.get("sys_updated_on"), "sys_updated_on"),
        version=mod_count_of(payload),
    )


def _skipped(notes: list[str], value: Any, where: str) -> datetime | None:
    try:
        return parse_datetime(value, where)
    except PayloadError as exc:
        notes.append(f"skipped: {exc}")
        return None


def normalise_record(
    record: Mapping[str, Any], *, base_url: str | None = None, extra_fields: Iterable[str] = ()
) -> Ticket:
    """A ticket from a Table API incident (`{"result": {...}}` or the record itself).

    References may be `{"link", "value"}` objects or, with sysparm_exclude_reference_link,
    plain sys_id strings. The record names no tags and only the caller's sys_id, so
    `labels` is empty and the requester has no name, tier, region or language.
    """
    if not isinstance(record, Mapping):
        raise PayloadError("ServiceNow record is not a JSON object")
    result = record.get("result", record)
    if not isinstance(result, Mapping):
        raise PayloadError("ServiceNow record: 'result' is not an object")
    flat = {name: _value(result.get(name), name) for name in result}
    sys_id = sys_id_of(flat)
    number = flat.get("number") or ""
    if not number:
        raise PayloadError("ServiceNow record: 'number' missing")
    fields = {name: flat.get(name, "") for name in PRIORITY_FIELDS}
    fields.update({name: flat[name] for name in extra_fields if name in flat and name not in fields})
    caller_id = flat.get("caller_id", "")
    return Ticket(
        ref=TicketRef(PLATFORM, sys_id, number, record_url(base_url.rstrip("/") if base_url else "", sys_id)),
        title=flat.get("short_description", ""),
        status=status(flat.get("state", "")),
        platform_priority=flat.get("priority") or None,
        labels=frozenset(),
        assignee=flat.get("assigned_to") or None,
        group=flat.get("assignment_group") or None,
        requester=Requester(id=caller_id) if caller_id else None,
        fields=fields,
        created_at=parse_datetime(flat.get("sys_created_on"), "sys_created_on"),
        updated_at=parse_datetime(flat.get("sys_updated_on"), "sys_updated_on"),
        version=mod_count_of(flat),
    )


def record_url(instance_url: str, sys_id: str) -> str | None:
    """The incident form in the instance's UI frame, or None when the instance URL is unknown."""
    if not instance_url:
        return None
    return f"{instance_url}/nav_to.do?uri=incident.do?sys_id={sys_id}"


def status(state: str) -> Status:
    """Normalised status from the incident `state` choice value."""
    return STATUS_BY_STATE.get(state.strip(), Status.OPEN)


def parse_datetime(value: Any, where: str) -> datetime | None:
    """ServiceNow's "2015-11-01 22:37:27" (UTC in the Table API and in getValue) as aware UTC."""
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise PayloadError(f"ServiceNow payload: '{where}' is not a date-time string")
    try:
        return datetime.strptime(value, _DATETIME_FORMAT).replace(tzinfo=UTC)
    except ValueError as exc:
        raise PayloadError(f"ServiceNow payload: '{where}' is not YYYY-MM-DD HH:MM:SS: {value!r}") from exc


def _changes(payload: Mapping[str, Any], ticket: Ticket) -> tuple[Change, ...]:
    """The rule's `changes` list, plus what the core needs to see about priority and notes.

    The core takes `changed("priority")` to mean a person chose the priority. On ServiceNow
    a person chooses impact and urgency; priority follows, and may not move at all (impact
    2 → 1 with urgency 1 → 2 is still priority 2). So a change of impact or urgency without
    a priority change adds Change("priority", p, p).
    """
    raw = payload.get("changes", [])
    if not isinstance(raw, list):
        raise PayloadError("ServiceNow payload: 'changes' is not a list")
    changes: list[Change] = []
    for item in raw:
        if not isinstance(item, Mapping):
            raise PayloadError("ServiceNow payload: a 'changes' entry is not an object")
        name = item.get("field")
        if not isinstance(name, str) or not name:
            raise PayloadError("ServiceNow payload: a 'changes' entry names no field")
        changes.append(Change(name, _side(item, "previous", name), _side(item, "current", name)))
    names = {change.field for change in changes}
    if names & _PRIORITY_INPUTS and "priority" not in names:
        changes.append(Change("priority", ticket.platform_priority, ticket.platform_priority))
    work_note = payload.get("work_note_added", False)
    if not isinstance(work_note, bool):
        raise PayloadError("ServiceNow payload: 'work_note_added' is not true or false")
    if work_note:
        # Only the fact: the note's text is for agents and stays in ServiceNow.
        changes.append(Change("work_notes", None, "added"))
    return tuple(changes)


def _comment(value: Any, ticket: Ticket, caller: Mapping[str, Any] | None) -> Comment | None:
    """The newest customer-visible comment ("Additional comments") added by this insert or update."""
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise PayloadError("ServiceNow payload: 'comment' is not an object")
    author = _text(value, "author", "comment.author")
    if not author:
        raise PayloadError("ServiceNow payload: 'comment.author' missing")
    ident = _text(value, "sys_id", "comment.sys_id") or f"{ticket.ref.id}:{ticket.version}"
    caller_user = _text(caller, "user_name", "caller.user_name") if caller is not None else ""
    return Comment(
        id=ident,
        text=_text(value, "text", "comment.text"),
        author=Person(id=author),
        public=True,  # work notes never arrive here: they are `work_note_added`
        # Journal entries name their author by user_name (sys_created_by), so the
        # caller's user_name is what tells a customer's comment from an agent's.
        by_requester=bool(caller_user) and author == caller_user,
    )


def _requester(caller_id: str, caller: Mapping[str, Any] | None) -> Requester | None:
    if not caller_id:
        return None
    if caller is None:
        return Requester(id=caller_id)
    email = _text(caller, "email", "caller.email")
    return Requester(
        id=caller_id,
        name=_text(caller, "name", "caller.name"),
        email=email or None,
        tier=_text(caller, "tier", "caller.tier"),
        region=_text(caller, "region", "caller.region"),
        language=_text(caller, "language", "caller.language"),
    )


def _side(item: Mapping[str, Any], key: str, name: str) -> str | None:
    value = item.get(key)
    if value is None or value == "":
        return None  # unset, as on an insert or an emptied reference
    if not isinstance(value, str):
        raise PayloadError(f"ServiceNow payload: 'changes' {key} of {name!r} is not a string")
    return value


def _value(value: Any, name: str) -> str:
    """A Table API value as a string: references give their `value` (the sys_id)."""
    if isinstance(value, Mapping):
        value = value.get("value", "")
    if value is None:
        return ""
    if not isinstance(value, str):
        raise PayloadError(f"ServiceNow record: '{name}' is not a string")
    return value


def _text(payload: Mapping[str, Any], key: str, where: str | None = None) -> str:
    value = payload.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise PayloadError(f"ServiceNow payload: '{where or key}' is not a string")
    return value


def _mapping(payload: Mapping[str, Any], key: str, *, optional: bool = False) -> Mapping[str, Any] | None:
    value = payload.get(key)
    if value is None and optional:
        return None
    if not isinstance(value, Mapping):
        raise PayloadError(f"ServiceNow payload: '{key}' is not an object")
    return value
