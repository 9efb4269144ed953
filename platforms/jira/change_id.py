"""The delivery id of one change to an issue, the same whether a webhook or the reconcile job saw it.

Jira's own identifier header differs per delivery, and a reconciled copy of a change has no header
at all; the issue id and the instant the issue was last updated name the change itself, so a late
webhook and its reconciled copy are stored once. `updated` is compared as an instant (epoch
milliseconds): webhooks and REST answers may render it in different time zones. Only a webhook that
changes fields (a changelog with items) is named this way: adding or editing a comment alone may
leave `updated` where it was. A new comment is named by the comment instead (issue id / comment id):
Jira sends it twice when both `comment_created` and `jira:issue_updated` are subscribed, and the
reconcile job finds it in the issue's comments, and each copy is then one delivery. An edited comment
keeps Jira's identifier header.
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


def comment_id(issue_id: str | None, comment: Any) -> str | None:
    """`<issue id>/comment/<comment id>` for a new comment; None when either is missing."""
    ident = comment.get("id") if isinstance(comment, Mapping) else None
    if not issue_id or isinstance(ident, bool) or not isinstance(ident, str | int) or str(ident) == "":
        return None
    return f"{issue_id}/comment/{ident}"
