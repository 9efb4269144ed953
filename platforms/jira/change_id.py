"""The delivery id of one change to an issue, the same whether a webhook or the reconcile job saw it.

Jira's own identifier header differs per delivery, and a reconciled copy of a change has no header
at all; the issue id and the instant the issue was last updated name the change itself, so a late
webhook and its reconciled copy are stored once. `updated` is compared as an instant (epoch
milliseconds): webhooks and REST answers may render it in different time zones. Only a webhook that
changes fields (a changelog with items) is named this way: adding or editing a comment alone may
leave `updated` where it was, so such a webhook keeps Jira's identifier header.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any


def change_id(issue: Any) -> str | None:
    """`<issue id>@<updated, epoch ms>` for an issue object; None when it lacks either."""
    if not isinstance(issue, Mapping):
        return None
    ident, fields = issue.get("id"), issue.get("fields")
    updated = fields.get("updated") if isinstance(fields, Mapping) else None
    if isinstance(ident, bool) or not isinstance(ident, str | int) or not isinstance(updated, str):
        return None
    try:
        instant = datetime.fromisoformat(updated)
    except ValueError:
        return None
    if instant.tzinfo is None:
        return None
    return f"{ident}@{round(instant.timestamp() * 1000)}"
