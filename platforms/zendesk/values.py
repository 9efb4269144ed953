"""Zendesk values → canonical ones, shared by the three shapes `normalise` reads: statuses and
priorities in any of their spellings, tags, ids, timestamps, flags, and typed reads that name
where a wrong value was found."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from connector.model import Person, Status, TicketRef
from platforms.errors import PayloadError

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


def status_name(value: Any) -> str | None:
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


def id_person(value: Any, where: str) -> Person | None:
    ident = optional_id(value, where)
    return None if ident is None else Person(id=ident)


def as_flag(value: Any, where: str) -> bool:
    text = value.strip().lower() if isinstance(value, str) else None
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise PayloadError(f"Zendesk payload: '{where}' is {value!r}, not true or false")


def as_mapping(value: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise PayloadError(f"Zendesk payload has no '{where}' object")
    return value


def as_text(value: Any, where: str) -> str:
    """A string value; absent is "". Numbers are accepted (ids, hand-edited templates)."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    raise PayloadError(f"Zendesk payload: '{where}' is not text")
