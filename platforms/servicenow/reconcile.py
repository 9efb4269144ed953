"""Reconcile reader for ServiceNow: incidents updated in a window, through the Table API
(`GET /api/now/table/incident?sysparm_query=sys_updated_on>=…^ORDERBYsys_updated_on`, paged by
`sysparm_offset`), as the business rule's delivery the change would have sent.

The business rule sends `sys_id:sys_mod_count` as the delivery id, which the record also carries,
so a late business-rule call and its reconciled copy are one delivery. `sys_updated_on` values are
UTC; the query's date literal is read in the API user's time zone, so Escalator's user should keep
the instance default (GMT) zone; the overlap absorbs small differences. Tags are not in the record:
a reconciled change carries none (README). The comment text is not in it either: for a change whose
delivery never came, the newest "Additional comments" entry added since Escalator last saw the
incident is read from the journal (`sys_journal_field`), one request per missed change, and carried
as the business rule would have carried it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from typing import Any

from connector.model import Ticket
from platforms.errors import NotConfigured, PayloadError
from platforms.reconciling import Found, Pager, require, within
from platforms.servicenow.normalise import parse_datetime
from platforms.servicenow.settings import Settings
from platforms.servicenow.webhook import mod_count_of, sys_id_of

PAGE_SIZE = 100
FIELDS = (
    "sys_id", "number", "sys_mod_count", "sys_created_on", "sys_updated_on", "sys_updated_by",
    "short_description", "state", "impact", "urgency", "priority", "assignment_group", "assigned_to",
    "caller_id", "caller_id.user_name", "caller_id.name", "caller_id.email",
)  # fmt: skip
# What the business rule reports in `changes` that a record and a snapshot both show.
_WATCHED = {"impact": "impact", "urgency": "urgency", "priority": "priority"}


def pager(settings: Settings, **options: Any) -> Pager:
    if not settings.can_write:
        raise NotConfigured("platforms.servicenow needs 'user' and 'password' to reconcile")
    assert settings.user is not None and settings.password is not None
    return Pager("ServiceNow", (settings.user, settings.password), timeout=settings.timeout,
                 reset_header="X-RateLimit-Reset", **options)  # fmt: skip


def changed(pager: Pager, settings: Settings, start: datetime, end: datetime) -> Iterator[Mapping[str, Any]]:
    since = start.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")
    fields = ",".join((*FIELDS, *(f for f in settings.extra_fields if f not in FIELDS)))
    offset = 0
    while True:
        params = {
            "sysparm_query": f"sys_updated_on>={since}^ORDERBYsys_updated_on",
            "sysparm_fields": fields,
            "sysparm_exclude_reference_link": "true",
            "sysparm_limit": PAGE_SIZE,
            "sysparm_offset": offset,
        }
        page = require(
            pager.get(f"{settings.base_url}/api/now/table/incident", params), dict, "the Table API answer"
        )
        rows = require(page.get("result", []), list, "'result'")
        for record in rows:
            if isinstance(record, dict) and within(updated_at(record), start, end):
                yield record
        if len(rows) < PAGE_SIZE:
            return
        offset += PAGE_SIZE


def updated_at(record: Mapping[str, Any]) -> datetime | None:
    try:
        return parse_datetime(record.get("sys_updated_on"), "sys_updated_on")
    except PayloadError:
        return None


def ticket_id(record: Mapping[str, Any]) -> str:
    return str(record.get("sys_id"))


def delivery(record: Mapping[str, Any], snapshot: Ticket | None, settings: Settings) -> Found | None:
    try:
        sys_id, mod_count = sys_id_of(record), mod_count_of(record)
    except PayloadError:
        return None
    operation = "insert" if mod_count == "0" else "update"
    changes = []
    for field, name in _WATCHED.items():
        before = (
            None
            if snapshot is None
            else (snapshot.fields.get(name) if name != "priority" else snapshot.platform_priority)
        )
        now = str(record.get(field) or "")
        if operation == "insert" or (snapshot is not None and (before or "") != now):
            if now or before:
                changes.append(
                    {"field": field, "previous": None if operation == "insert" else before, "current": now}
                )
    caller = {
        "user_name": str(record.get("caller_id.user_name") or ""),
        "name": str(record.get("caller_id.name") or ""),
        "email": str(record.get("caller_id.email") or ""),
        "region": "", "tier": "", "language": "",
    }  # fmt: skip
    body: dict[str, Any] = {
        "payload_version": 1, "table": "incident", "operation": operation,
        "instance_url": settings.base_url,
        **{name: str(record.get(name) or "") for name in FIELDS if "." not in name},
        "sys_id": sys_id, "sys_mod_count": mod_count,
        "caller": caller if record.get("caller_id") else None,
        "extra_fields": {name: str(record.get(name) or "") for name in settings.extra_fields},
        "changes": changes, "comment": None, "work_note_added": False, "tags": [],
    }  # fmt: skip
    return Found(
        sys_id,
        f"{sys_id}:{mod_count}",
        f"incident.{'inserted' if operation == 'insert' else 'updated'}",
        body,
    )


JOURNAL = "/api/now/table/sys_journal_field"


def with_missed_comment(
    pager: Pager, record: Mapping[str, Any], snapshot: Ticket | None, settings: Settings, found: Found
) -> list[Found]:
    """The missed change, carrying the newest customer-visible comment Escalator has not seen."""
    seen = snapshot.updated_at if snapshot is not None else None
    query = f"name=incident^element_id={found.ticket_id}^element=comments"
    if seen is not None:
        query += f"^sys_created_on>{seen.astimezone(UTC).strftime('%Y-%m-%d %H:%M:%S')}"
    params = {
        "sysparm_query": query + "^ORDERBYDESCsys_created_on",
        "sysparm_fields": "sys_id,value,sys_created_by,sys_created_on",
        "sysparm_limit": 1,
    }
    page = require(pager.get(settings.base_url + JOURNAL, params), dict, "the journal's Table API answer")
    entries = [e for e in require(page.get("result", []), list, "'result'") if isinstance(e, dict)]
    if not entries:
        return [found]
    entry = entries[0]
    comment = {
        "sys_id": str(entry.get("sys_id") or ""),
        "text": str(entry.get("value") or ""),
        "author": str(entry.get("sys_created_by") or ""),
        "created": str(entry.get("sys_created_on") or ""),
    }
    return [dataclasses.replace(found, body={**found.body, "comment": comment})]
