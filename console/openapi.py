"""The OpenAPI 3.0 document of /api/v1 (served at /api/v1/openapi.json)."""

from __future__ import annotations

from typing import Any

from connector.audit import OUTCOMES
from connector.events import VISIBLE

S = "string"
TS: dict[str, Any] = {"type": S, "format": "date-time"}


def _n(schema: dict[str, Any]) -> dict[str, Any]:
    return {**schema, "nullable": True}


def _obj(props: dict[str, Any], required: list[str] | None = None) -> dict[str, Any]:
    return {"type": "object", "properties": props, "required": required or list(props)}


ERROR = _obj({"error": {"type": S}})
DECISION_ROW = _obj(
    {
        "seq": {"type": "integer"},
        "at": TS,
        "platform": {"type": S},
        "ticket_id": _n({"type": S}),
        "ticket_key": _n({"type": S}),
        "outcome": {"type": S},
        "trigger_kind": _n({"type": S}),
        "policy_name": _n({"type": S}),
        "policy_version": _n({"type": S}),
        "policy_sha256": _n({"type": S}),
        "tier_from": _n({"type": S}),
        "tier_to": _n({"type": S}),
        "priority_from": _n({"type": S}),
        "priority_to": _n({"type": S}),
        "escalated": {"type": "boolean"},
        "sla_metric": _n({"type": S}),
        "sla_calendar": _n({"type": S}),
        "region": _n({"type": S}),
        "rules": {"type": "array", "items": {"type": S}},
    }
)
CLOCK = _obj(
    {
        "metric": {"type": S},
        "status": {"type": S, "enum": ["running", "paused", "met", "breached"]},
        "open": {"type": "boolean"},
        "at_risk": {"type": "boolean"},
        "started_at": TS,
        "stopped_at": _n(TS),
        "target_seconds": _n({"type": "number"}),
        "calendar": _n({"type": S}),
        "timezone": {"type": S},
        "warn_at": _n(TS),
        "due_at": _n(TS),
        "due_local": _n({"type": S}),
        "warned": {"type": "array", "items": {"type": "integer"}},
    }
)
TICKET = _obj(
    {
        "platform": {"type": S},
        "ticket_id": {"type": S},
        "key": {"type": S},
        "url": _n({"type": S}),
        "tier": _n({"type": S}),
        "priority": _n({"type": S}),
        "priority_pinned": {"type": "boolean"},
        "status": _n({"type": S}),
        "updated_at": _n(TS),
        "sla_calendar": _n({"type": S}),
        "sla_started_at": _n(TS),
        "paused": {"type": "boolean"},
        "clocks": {"type": "array", "items": CLOCK},
        "timers": {"type": "array", "items": {"type": "object"}},
        "timeline": {"type": "array", "items": {"type": "object"}},
        "changes": {"type": "array", "items": {"type": "object"}},
        "truncated": {"type": "boolean"},
        "notifications": {"type": "array", "items": {"type": "object"}},
    }
)
BOARD_ROW = _obj(
    {
        "platform": {"type": S},
        "ticket_id": {"type": S},
        "ticket_key": {"type": S},
        "priority": _n({"type": S}),
        "tier": _n({"type": S}),
        "metric": {"type": S},
        "status": {"type": S, "enum": ["at_risk", "breached"]},
        "calendar": _n({"type": S}),
        "timezone": {"type": S},
        "due_at": _n(TS),
        "due_local": _n({"type": S}),
        "seconds_left": _n({"type": "number"}),
    }
)
CHECKPOINT = _obj(
    {
        "number": {"type": "integer"},
        "kind": {"type": S},
        "first_seq": {"type": "integer"},
        "last_seq": {"type": "integer"},
        "count": {"type": "integer"},
        "head_hash": {"type": S},
        "at": TS,
        "key_id": _n({"type": S}),
        "digest": {"type": S},
        "state": {"type": S, "enum": ["matches", "broken", "pruned"]},
        "why": {"type": S},
    }
)
REPORT = _obj(
    {
        "name": {"type": S},
        "title": {"type": S},
        "about": {"type": S},
        "columns": {"type": "array", "items": {"type": S}},
        "rows": {"type": "array", "items": {"type": "array", "items": {}}},
        "query": {"type": S},
        "notes": {"type": "array", "items": {"type": S}},
    }
)
EVENT = _obj(
    {
        "id": {"type": "integer"},
        "platform": {"type": S},
        "delivery_id": {"type": S},
        "event_type": {"type": S},
        "ticket_id": _n({"type": S}),
        "ticket_key": _n({"type": S}),
        "status": {"type": S},
        "attempts": {"type": "integer"},
        "received_at": TS,
        "next_attempt_at": _n(TS),
        "lease_until": _n(TS),
        "finished_at": _n(TS),
        "last_error": _n({"type": S}),
    },
    ["id", "platform", "status", "attempts", "received_at", "last_error"],
)


def _q(name: str, description: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "description": description,
        "schema": schema or {"type": S},
    }


def _p(name: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": schema or {"type": S}}


def _ok(schema: dict[str, Any], *errors: int) -> dict[str, Any]:
    out: dict[str, Any] = {"200": {"description": "OK", "content": {"application/json": {"schema": schema}}}}
    out["401"] = {
        "description": "no or unknown bearer token",
        "content": {"application/json": {"schema": ERROR}},
    }
    for code in errors:
        out[str(code)] = {"description": "see error", "content": {"application/json": {"schema": ERROR}}}
    return out


RANGE = [
    _q("since", "ISO-8601 instant (UTC if no zone), inclusive", {"type": S, "format": "date-time"}),
    _q("until", "ISO-8601 instant, exclusive", {"type": S, "format": "date-time"}),
    _q("platform", "jira, zendesk or servicenow"),
]


def document() -> dict[str, Any]:
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "Escalator console API",
            "version": "1",
            "description": "Read-only views over Escalator's audit log, tickets, SLA clocks and failed "
            "events; operator tokens may retry or discard failed events. "
            "Every call needs `Authorization: Bearer <token>`.",
        },
        "servers": [{"url": "/api/v1"}],
        "security": [{"bearer": []}],
        "components": {"securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
        "paths": {
            "/decisions": {
                "get": {
                    "summary": "Audit records, newest first, keyset-paginated",
                    "parameters": [
                        *RANGE,
                        _q("key", "ticket key or id"),
                        _q("rule", "a rule that fired"),
                        _q("outcome", "one of " + ", ".join(OUTCOMES)),
                        _q("version", "policy version"),
                        _q(
                            "before",
                            "cursor: next_before of the previous page",
                            {"type": "integer", "minimum": 1, "maximum": 2**62},
                        ),
                        _q("limit", "page size", {"type": "integer", "minimum": 1, "maximum": 200}),
                    ],
                    "responses": _ok(
                        _obj(
                            {
                                "items": {"type": "array", "items": DECISION_ROW},
                                "next_before": _n({"type": "integer"}),
                            }
                        ),
                        400,
                    ),
                }
            },
            "/decisions/{seq}": {
                "get": {
                    "summary": "One audit record in full, with its hashes and chain position",
                    "parameters": [_p("seq", {"type": "integer", "minimum": 1, "maximum": 2**62})],
                    "responses": _ok(
                        _obj(
                            {
                                "seq": {"type": "integer"},
                                "record": {"type": "object"},
                                "prev_hash": {"type": S},
                                "hash": {"type": S},
                                "head_seq": {"type": "integer"},
                                "linked_by_next": _n({"type": "boolean"}),
                            }
                        ),
                        404,
                    ),
                }
            },
            "/tickets": {
                "get": {
                    "summary": "Tickets with this key or id, on any platform",
                    "parameters": [
                        {
                            **_q("q", "ticket key or id", {"type": S, "minLength": 1, "pattern": r"\S"}),
                            "required": True,
                        }
                    ],
                    "responses": _ok(
                        _obj(
                            {
                                "items": {
                                    "type": "array",
                                    "items": _obj(
                                        {
                                            "platform": {"type": S},
                                            "ticket_id": {"type": S},
                                            "key": {"type": S},
                                        }
                                    ),
                                }
                            }
                        ),
                        400,
                    ),
                }
            },
            "/tickets/{platform}/{ticket_id}": {
                "get": {
                    "summary": "One ticket's life: clocks, timers, changes, timeline",
                    "parameters": [_p("platform"), _p("ticket_id")],
                    "responses": _ok(TICKET, 404),
                }
            },
            "/sla/board": {
                "get": {
                    "summary": "Open clocks at risk or breached, soonest due first",
                    "parameters": [
                        _q("platform", "platform"),
                        _q("priority", "P1…P4"),
                        _q("tier", "tier"),
                        _q("calendar", "calendar"),
                        _q("limit", "rows", {"type": "integer", "minimum": 1, "maximum": 500}),
                        _q("offset", "rows to skip", {"type": "integer", "minimum": 0, "maximum": 1_000_000}),
                    ],
                    "responses": _ok(_obj({"at": TS, "items": {"type": "array", "items": BOARD_ROW}})),
                }
            },
            "/reports": {
                "get": {
                    "summary": "The reports there are",
                    "responses": _ok(
                        _obj(
                            {
                                "items": {
                                    "type": "array",
                                    "items": _obj({"name": {"type": S}, "title": {"type": S}}),
                                }
                            }
                        )
                    ),
                }
            },
            "/reports/{name}": {
                "get": {
                    "summary": "One report: columns, rows and the query behind them",
                    "parameters": [_p("name"), *RANGE],
                    "responses": _ok(REPORT, 400, 404),
                }
            },
            "/integrity": {
                "get": {
                    "summary": "Chain head, last verification, signed checkpoints, policy versions in force",
                    "responses": _ok(
                        _obj(
                            {
                                "chain": {"type": "object"},
                                "checkpoints": _obj(
                                    {
                                        "count": {"type": "integer"},
                                        "latest": _n({"type": "object"}),
                                        "records_since": {"type": "integer"},
                                        "items": {"type": "array", "items": CHECKPOINT},
                                    }
                                ),
                                "versions": {"type": "array", "items": {"type": "object"}},
                            }
                        )
                    ),
                }
            },
            "/events": {
                "get": {
                    "summary": "Failed and retrying events, inbox backlog, worker health",
                    "responses": _ok(
                        {
                            "type": "object",
                            "properties": {
                                "events": {"type": "array", "items": EVENT},
                                "backlog": {"type": "object"},
                            },
                            "required": ["events", "backlog"],
                        }
                    ),
                }
            },
            "/events/{event_id}/retry": {
                "post": {
                    "summary": "Queue a failed event again (operator token; audited)",
                    "parameters": [_p("event_id", {"type": "integer", "minimum": 1, "maximum": 2**62})],
                    "responses": _ok(_obj({"message": {"type": S}}), 403, 404, 409),
                }
            },
            "/events/{event_id}/discard": {
                "post": {
                    "summary": "Discard an event with a reason (operator token; audited)",
                    "parameters": [_p("event_id", {"type": "integer", "minimum": 1, "maximum": 2**62})],
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {
                                # Not blank: the reason goes into the audit log (whitespace alone is refused).
                                "schema": _obj(
                                    {"why": {"type": S, "minLength": 1, "maxLength": 500, "pattern": VISIBLE}}
                                )
                            }
                        },
                    },
                    "responses": _ok(_obj({"message": {"type": S}}), 400, 403, 404, 409),
                }
            },
        },
    }
