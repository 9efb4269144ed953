"""The delivery id of one update of a ticket, the same whether a trigger's webhook or the reconcile
job saw it.

A trigger's invocation id differs per delivery, and a reconciled copy has none; the ticket id and
its `updated_at` (to the second: what `updated_stamp` and `{{ticket.updated_at_with_timestamp}}`
carry) name the update itself. The four triggers of one update send at most one ticket-level event
(created, priority changed or updated: their conditions exclude each other) and at most one comment
event, so the comment's id has its own suffix and never collides with the ticket-level one.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

COMMENT_SUFFIX = ":comment"


def change_id(ticket_id: str, updated_at: Any, *, comment: bool = False) -> str | None:
    """`<ticket id>@<updated_at, epoch seconds>` (+ ":comment"); None when updated_at has no seconds."""
    if not isinstance(updated_at, str) or len(updated_at.strip()) < 19:
        return None  # e.g. "2013-12-12T05:35Z": an account that renders no seconds cannot be matched
    try:
        instant = datetime.fromisoformat(updated_at.strip())
    except ValueError:
        return None
    if instant.tzinfo is None:
        return None
    return f"{ticket_id}@{int(instant.timestamp())}" + (COMMENT_SUFFIX if comment else "")
