"""The variables conditions and note templates see, built from the canonical model.

One schema (`variable_schema`) serves three purposes: the load-time path check in `conditions.py`, the
zero-value sample every condition and template is tried against at load, and the README's variables table.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from connector.minimise import mask_personal_data
from connector.model import Reply, SlaSignal, TicketEvent

from .durations import format_duration

STRING, BOOL, INT, NUMBER, LIST, MAP = "string", "bool", "int", "number", "list", "map"
FIELD_TYPES = (BOOL, INT, NUMBER, STRING, LIST)
ZERO: Mapping[str, Any] = {STRING: "", BOOL: False, INT: 0, NUMBER: 0.0, LIST: (), MAP: {}}

_PERSON = {"id": STRING, "name": STRING}
_REQUESTER = {"id": STRING, "name": STRING, "tier": STRING, "region": STRING, "language": STRING}
_TICKET = {
    "id": STRING,
    "key": STRING,
    "platform": STRING,
    "url": STRING,
    "title": STRING,
    "status": STRING,
    "priority": STRING,
    "labels": LIST,
    "assignee": STRING,
    "group": STRING,
    "tier": STRING,
    "created": STRING,
    "requester": _REQUESTER,
}
_EVENT = {"kind": STRING, "actor": {**_PERSON, "is_requester": BOOL}, "changed": LIST, "changes": MAP}
_COMMENT = {"id": STRING, "text": STRING, "public": BOOL, "by_requester": BOOL, "author": _PERSON}
# priority_from: "matrix" (impact × urgency and raises), "rule" (a rule's `priority:`), "person" (a
# priority a person set, kept by raise_only) or "platform" (what the ticket showed, kept).
_DECISION = {"priority": STRING, "impact": STRING, "urgency": STRING, "priority_from": STRING}
# On time events: the clock that fired (connector.model.SlaSignal); zero values on every other event.
_SLA = {
    "metric": STRING,
    "target": STRING,
    "due": STRING,
    "due_local": STRING,
    "fired_at": STRING,
    "percent": INT,
    "late": BOOL,
    "calendar": STRING,
}

# The ticket's latest public comment (the event's own, else the last one remembered): no name, no
# address; zero values when it has none. Texts of messages to chat and mail quote it.
_LAST_REPLY = {"text": STRING, "by": STRING, "at": STRING}
REPLY_EXCERPT = 160  # characters of a reply kept and quoted

# Roots by where a condition sits: `decision` is the output of impact/urgency, so those cannot read it.
ROOTS_FOR_LEVELS = ("ticket", "event", "comment")
ROOTS_FOR_RULES = ("ticket", "event", "comment", "decision", "sla", "last_reply")
# SLA clock conditions (pick_calendar, pause_when) read the ticket only: they describe its state.
ROOTS_FOR_CLOCKS = ("ticket",)
# Why a root that exists elsewhere cannot be used in a place (shown in the load error).
UNAVAILABLE = {
    "decision": "it is computed from impact and urgency (use it in 'raise' and in rules)",
    "sla": "it describes SLA time events (use it in rules)",
    "event": "SLA clocks follow the ticket's state, not one event",
    "comment": "SLA clocks follow the ticket's state, not one event",
    "last_reply": "it is what people said, not what the ticket is (use it in rules)",
}


@dataclass(frozen=True)
class FieldDef:
    """A declared custom field: `ticket.fields.<name>`, coerced to `type`, `default` when absent."""

    name: str
    type: str
    default: Any

    def read(self, raw: Any) -> Any:
        """The platform's raw value as this field's type; the default when absent or unparseable."""
        value = coerce(self.type, raw)
        return self.default if value is _MISSING else value


def variable_schema(fields: Sequence[FieldDef]) -> dict[str, Any]:
    """Every variable path conditions may use: nested dicts are objects, strings are leaf types."""
    ticket = {**_TICKET, "fields": {f.name: f.type for f in fields}}
    return {"ticket": ticket, "event": _EVENT, "comment": _COMMENT, "decision": _DECISION, "sla": _SLA,
            "last_reply": _LAST_REPLY}  # fmt: skip


def clock_schema(fields: Sequence[FieldDef]) -> dict[str, Any]:
    """The variables of SLA clock conditions: the ticket without `tier` (the clocks do not know it)."""
    ticket = dict(variable_schema(fields)["ticket"])
    del ticket["tier"]
    return {"ticket": ticket}


def zero_sample(fields: Sequence[FieldDef]) -> dict[str, Any]:
    """Zero values for every variable (declared fields take their defaults): the load-time test input."""

    def zero(node: Any) -> Any:
        return {k: zero(v) for k, v in node.items()} if isinstance(node, dict) else _fresh(ZERO[node])

    sample = zero(variable_schema(fields))
    sample["ticket"]["fields"] = {f.name: _fresh(f.default) for f in fields}
    return sample


def ticket_variables(
    event: TicketEvent, tier: str, fields: Sequence[FieldDef], field_ids: Mapping[str, str]
) -> dict[str, Any]:
    """`ticket`: the snapshot, None as "", labels sorted, no e-mail, declared fields read via the mapping."""
    t = event.ticket
    r = t.requester
    raw = t.fields
    return {
        "id": t.ref.id,
        "key": t.ref.key,
        "platform": t.ref.platform,
        "url": t.ref.url or "",
        "title": t.title,
        "status": _enum_value(t.status),
        "priority": _enum_value(t.priority),
        "labels": sorted(t.labels),
        "assignee": t.assignee or "",
        "group": t.group or "",
        "tier": tier,
        "created": _iso(t.created_at) if t.created_at is not None else "",
        "requester": {
            "id": r.id if r else "",
            "name": r.name if r else "",
            "tier": r.tier if r else "",
            "region": r.region if r else "",
            "language": r.language if r else "",
        },
        "fields": {
            f.name: f.read(raw.get(field_ids[f.name])) if f.name in field_ids else _fresh(f.default)
            for f in fields
        },
    }


def sla_variables(signal: SlaSignal | None, timezone: str = "UTC") -> dict[str, Any]:
    """`sla`: the time event's clock (due and fired_at as UTC ISO-8601, due_local in `timezone`)."""
    if signal is None:
        return {k: _fresh(ZERO[kind]) for k, kind in _SLA.items()}
    local = signal.due.astimezone(ZoneInfo(timezone))
    return {
        "metric": signal.metric,
        "target": format_duration(signal.target),
        "due": _iso(signal.due),
        "due_local": local.strftime("%Y-%m-%d %H:%M %Z"),
        "fired_at": _iso(signal.fired_at),
        "percent": signal.percent,
        "late": signal.late,
        "calendar": signal.calendar,
    }


def excerpt(text: str) -> str:
    """A reply as others may read it: one line, e-mails, phones and IP addresses masked (before the
    cut, so a cut never leaves half an address), at most REPLY_EXCERPT characters."""
    line = mask_personal_data(" ".join(text.split())) or ""
    return line if len(line) <= REPLY_EXCERPT else line[: REPLY_EXCERPT - 1] + "…"


def last_reply_variables(event: TicketEvent, remembered: Reply | None) -> dict[str, Any]:
    """`last_reply`: the event's public comment, else the last one remembered (`TicketState.last_reply`).

    The text is masked again and, when it was cut, loses its last partial word: an excerpt stored
    before masking at capture may end in half an address the masks cannot recognise."""
    comment = event.comment
    if comment is not None and comment.public:
        at = event.occurred_at
        text, by_requester = excerpt(comment.text), comment.by_requester
    elif remembered is not None:
        at, text, by_requester = remembered.at, remembered.excerpt, remembered.by_requester
    else:
        return {"text": "", "by": "", "at": ""}
    text = mask_personal_data(" ".join(text.split())) or ""
    if text.endswith("…"):
        text = text[:-1].rsplit(" ", 1)[0].rstrip(" ,;:") + " …"
    if len(text) > REPLY_EXCERPT:
        text = text[: REPLY_EXCERPT - 1] + "…"
    return {"text": text, "by": "requester" if by_requester else "agent", "at": _iso(at) if at else ""}


def _iso(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def event_variables(event: TicketEvent) -> dict[str, Any]:
    """`event`: kind, actor (with is_requester), changed field names and their before/after strings."""
    actor, requester = event.actor, event.ticket.requester
    return {
        "kind": _enum_value(event.kind),
        "actor": {
            "id": actor.id if actor else "",
            "name": actor.name if actor else "",
            "is_requester": bool(actor and requester and actor.id and actor.id == requester.id),
        },
        "changed": [c.field for c in event.changes],
        "changes": {c.field: {"before": c.before or "", "after": c.after or ""} for c in event.changes},
    }


def comment_variables(event: TicketEvent) -> dict[str, Any]:
    """`comment`: the event's comment, or zero values when it has none."""
    c = event.comment
    if c is None:
        return {
            "id": "",
            "text": "",
            "public": False,
            "by_requester": False,
            "author": {"id": "", "name": ""},
        }
    return {
        "id": c.id,
        "text": c.text,
        "public": c.public,
        "by_requester": c.by_requester,
        "author": {"id": c.author.id, "name": c.author.name},
    }


# --- coercion of raw platform values -------------------------------------------------------------

_MISSING: Any = object()
_TRUE = frozenset({"true", "yes", "y", "on", "1", "checked"})
_FALSE = frozenset({"false", "no", "n", "off", "0", "", "none", "unchecked"})


def coerce(kind: str, raw: Any) -> Any:
    """`raw` as `kind`, or _MISSING. Jira option fields arrive as {"value": "Yes"}; users as {"name": …}."""
    if raw is None:
        return _MISSING
    if isinstance(raw, Mapping):
        inner = raw.get("value", raw.get("name", _MISSING))
        return _MISSING if inner is _MISSING else coerce(kind, inner)
    if kind == BOOL:
        return _to_bool(raw)
    if kind in (INT, NUMBER):
        number = _to_number(raw)
        if number is _MISSING:
            return _MISSING
        return float(number) if kind == NUMBER else int(number)
    if kind == STRING:
        if isinstance(raw, bool):
            return "true" if raw else "false"
        return str(raw) if isinstance(raw, str | int | float) else _MISSING
    if kind == LIST:
        if isinstance(raw, str):
            return [raw] if raw else []
        if isinstance(raw, list | tuple | set | frozenset):
            items = (coerce(STRING, item) for item in raw)
            return [item for item in items if item is not _MISSING]
    return _MISSING


def _to_bool(raw: Any) -> Any:
    if isinstance(raw, bool):
        return raw
    if isinstance(raw, int | float):
        return raw != 0
    if isinstance(raw, str):
        text = raw.strip().lower()
        return True if text in _TRUE else False if text in _FALSE else _MISSING
    if isinstance(raw, list | tuple):  # a Jira checkbox field: a list of the ticked options
        return any(coerce(BOOL, item) is True for item in raw)
    return _MISSING


def _to_number(raw: Any) -> Any:
    if isinstance(raw, bool):
        return _MISSING  # True is not a count
    if isinstance(raw, int):
        return raw
    if isinstance(raw, float):
        return raw if math.isfinite(raw) else _MISSING
    if isinstance(raw, str):
        text = raw.strip()
        try:
            return int(text)
        except ValueError:
            pass
        try:
            value = float(text)
        except ValueError:
            return _MISSING
        return value if math.isfinite(value) else _MISSING
    return _MISSING


def _enum_value(value: Any) -> str:
    if value is None:
        return ""
    return str(getattr(value, "value", value))


def _fresh(value: Any) -> Any:
    """A copy of list defaults so no evaluation can share (or mutate) another's list."""
    return list(value) if isinstance(value, list | tuple) else value
