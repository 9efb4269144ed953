"""Canonical types shared by every part of Escalator.

Platform adapters translate their payloads INTO these types and translate a
`Plan` OUT to their own requests; the policy evaluator only ever sees these.
This module imports nothing of ours.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import Enum, StrEnum
from typing import Any


class Priority(StrEnum):
    """Platform-neutral priority. P1 is the most urgent."""

    P1 = "P1"
    P2 = "P2"
    P3 = "P3"
    P4 = "P4"

    @property
    def rank(self) -> int:
        """1 for P1 … 4 for P4: lower is more urgent."""
        return int(self.value[1])

    def raised(self, steps: int) -> Priority:
        """This priority made `steps` levels more urgent, never past P1."""
        return Priority(f"P{max(1, min(4, self.rank - steps))}")

    def outranks(self, other: Priority | None) -> bool:
        """True when this priority is more urgent than `other` (anything outranks None)."""
        return other is None or self.rank < other.rank


class Status(StrEnum):
    """Normalised ticket status; each platform maps its own workflow onto these."""

    NEW = "new"
    OPEN = "open"
    IN_PROGRESS = "in_progress"
    PENDING = "pending"
    ON_HOLD = "on_hold"
    RESOLVED = "resolved"
    CLOSED = "closed"


class EventKind(StrEnum):
    """What happened to a ticket. Policy rules name these in `on:`."""

    TICKET_CREATED = "ticket.created"
    TICKET_UPDATED = "ticket.updated"
    COMMENT_ADDED = "comment.added"
    # Time events: raised by Escalator's own SLA timers, not by a platform.
    SLA_WARNING = "sla.warning"
    SLA_BREACHED = "sla.breached"
    UPDATE_DUE = "update.due"
    # Raised by a follow-the-sun tier's handover timer when the holding team's calendar closes.
    HANDOVER = "handover"

    @property
    def is_timer(self) -> bool:
        """True for the events Escalator's SLA timers raise."""
        return self in (EventKind.SLA_WARNING, EventKind.SLA_BREACHED, EventKind.UPDATE_DUE)


@dataclass(frozen=True)
class Person:
    """Someone acting on a platform, identified by the platform's account id."""

    id: str
    name: str = ""
    email: str | None = None


@dataclass(frozen=True)
class Requester:
    """The customer who raised the ticket; tier / region / language feed the policy."""

    id: str
    name: str = ""
    email: str | None = None
    tier: str = ""
    region: str = ""
    language: str = ""


@dataclass(frozen=True)
class TicketRef:
    """Enough to find a ticket again: platform, stable id, human key, browse URL."""

    platform: str
    id: str
    key: str
    url: str | None = None


@dataclass(frozen=True)
class Ticket:
    """A snapshot of a ticket as the platform showed it when the event was sent."""

    ref: TicketRef
    title: str = ""
    status: Status = Status.OPEN
    priority: Priority | None = None
    platform_priority: str | None = None
    labels: frozenset[str] = frozenset()
    assignee: str | None = None
    group: str | None = None
    requester: Requester | None = None
    # Platform fields by the platform's own id (e.g. Jira "customfield_10050"),
    # raw values; the policy names the ones it reads.
    fields: Mapping[str, Any] = field(default_factory=dict)
    created_at: datetime | None = None
    updated_at: datetime | None = None
    # The platform's concurrency token for this snapshot, when it has one (Zendesk's
    # `updated_at` for `safe_update`, ServiceNow's `sys_mod_count`); None on Jira.
    version: str | None = None
    # The earliest public reply by someone other than the requester that the payload shows
    # (e.g. Jira's `fields.comment.comments`): a ticket first seen after it was answered
    # has had its first response. None when the payload shows none (or carries no comments).
    first_reply_at: datetime | None = None


@dataclass(frozen=True)
class Change:
    """One field changed by the event, as the platform's display strings."""

    field: str
    before: str | None
    after: str | None


@dataclass(frozen=True)
class Comment:
    id: str
    text: str
    author: Person
    public: bool = True
    by_requester: bool = False


@dataclass(frozen=True)
class SlaSignal:
    """Why a time event fired: which SLA clock, its target, and when it was due.

    `percent` is 100 for a breach or an update reminder, the `warn_at` share for a
    warning. `late` is set when the timer fired noticeably after `due` (e.g. the
    connector was down at the time).
    """

    metric: str  # first_response | next_response | update_every | resolution
    target: timedelta
    due: datetime
    fired_at: datetime
    percent: int = 100
    calendar: str = ""
    late: bool = False


@dataclass(frozen=True)
class TicketEvent:
    """One thing that happened to one ticket, in canonical form."""

    kind: EventKind
    ticket: Ticket
    actor: Person | None = None
    changes: tuple[Change, ...] = ()
    comment: Comment | None = None
    occurred_at: datetime | None = None
    delivery_id: str = ""
    sla: SlaSignal | None = None  # set on time events only
    # The payload named the ticket but did not carry it (Jira Server's `comment_created` has no
    # `issue`): `ticket` holds the reference only, and the worker completes it from what it
    # remembers of the ticket or with one read.
    ticket_partial: bool = False
    # Optional values the reader could not read and skipped (an unreadable timestamp, …): the
    # event is still decided, and the audit record says what was left out.
    notes: tuple[str, ...] = ()

    def changed(self, field_name: str) -> Change | None:
        """The change to `field_name` in this event, if any."""
        return next((c for c in self.changes if c.field == field_name), None)


# --- actions: what a decision asks for, platform-neutral ---------------------


@dataclass(frozen=True)
class SetPriority:
    priority: Priority


@dataclass(frozen=True)
class AssignTier:
    """Move the ticket to an escalation tier; each platform maps tiers to people/groups."""

    tier: str


@dataclass(frozen=True)
class AssignGroup:
    group: str


@dataclass(frozen=True)
class AssignUser:
    user: str


@dataclass(frozen=True)
class HandOver:
    """Hand the ticket from one team of a follow-the-sun tier to another (the platform mapping says who)."""

    tier: str
    team: str
    from_team: str


@dataclass(frozen=True)
class AddLabel:
    label: str


@dataclass(frozen=True)
class RemoveLabel:
    label: str


@dataclass(frozen=True)
class AddNote:
    """A note for agents; `internal` notes are never shown to the requester."""

    text: str
    internal: bool = True


Action = SetPriority | AssignTier | AssignGroup | AssignUser | HandOver | AddLabel | RemoveLabel | AddNote


def action_to_dict(action: Action) -> dict[str, Any]:
    """A JSON-ready form of an action, for the audit log and dry-run output."""
    kind = {
        SetPriority: "set_priority",
        AssignTier: "assign_tier",
        AssignGroup: "assign_group",
        AssignUser: "assign_user",
        HandOver: "hand_over",
        AddLabel: "add_label",
        RemoveLabel: "remove_label",
        AddNote: "add_note",
    }[type(action)]
    body = {k: (v.value if isinstance(v, Enum) else v) for k, v in vars(action).items()}
    return {"action": kind, **body}


@dataclass(frozen=True)
class Notify:
    """A message for a channel, rendered in every language the policy has (the outbox picks the
    channel's). kind: notice | update | report (the post-incident report, built when it is sent)."""

    channel: str
    texts: tuple[tuple[str, str], ...] = ()
    kind: str = "notice"

    def text(self, language: str | None, default: str) -> str:
        """The text in `language` (or its base language), else in `default`."""
        found = dict(self.texts)
        for wanted in (language, (language or "").replace("-", "_").split("_")[0], default):
            if wanted and wanted in found:
                return found[wanted]
        return next(iter(found.values()), "")


@dataclass(frozen=True)
class Decision:
    """What the policy decided for one event, with the reasons. Pure data."""

    priority_before: Priority | None
    priority_after: Priority | None
    priority_why: str
    tier_before: str | None
    tier_after: str | None
    actions: tuple[Action, ...] = ()
    rules: tuple[str, ...] = ()
    reasons: tuple[str, ...] = ()
    notifications: tuple[Notify, ...] = ()  # not ticket writes: they go to the outbox


# --- plan: a decision reduced to what the ticket does not already show -------


@dataclass(frozen=True)
class Note:
    text: str
    internal: bool = True
    # The decision the note belongs to, carried where the platform lets us read it back (a Jira
    # comment property, a trailer line elsewhere): after a crash, the worker looks for it on the
    # ticket before sending the note again. Stable across retries of the same delivery.
    mark: str | None = None


@dataclass(frozen=True)
class Plan:
    """The platform-level changes one write must make. Empty means: send nothing."""

    ticket: TicketRef
    priority: str | None = None  # the platform's priority name/value to set
    assignee: str | None = None  # platform account id
    group: str | None = None  # platform group id
    fields: Mapping[str, Any] = field(default_factory=dict)  # other platform fields to set
    labels_add: frozenset[str] = frozenset()
    labels_remove: frozenset[str] = frozenset()
    labels_current: frozenset[str] = frozenset()  # what the ticket shows now (full-list platforms)
    note: Note | None = None
    ticket_version: str | None = None  # Ticket.version of the snapshot the plan was made from

    @property
    def is_empty(self) -> bool:
        return not (
            self.priority is not None
            or self.assignee is not None
            or self.group is not None
            or self.fields
            or self.labels_add
            or self.labels_remove
            or self.note is not None
        )

    @property
    def labels_after(self) -> frozenset[str]:
        return (self.labels_current | self.labels_add) - self.labels_remove


@dataclass(frozen=True)
class Reply:
    """The last public comment on a ticket, remembered with its SLA clocks (policies.sla): a
    handover's note and the P1 hourly update quote it. `excerpt` has e-mails, phones and IP addresses
    masked and is cut to a few lines."""

    at: datetime
    by_requester: bool
    author: str  # the platform's display name
    excerpt: str

    def to_json(self) -> dict[str, Any]:
        return {
            "at": self.at.astimezone(UTC).isoformat(),
            "by_requester": self.by_requester,
            "author": self.author,
            "excerpt": self.excerpt,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | None) -> Reply | None:
        if not data:
            return None
        return cls(datetime.fromisoformat(data["at"]).astimezone(UTC), bool(data.get("by_requester")),
                   data.get("author", ""), data.get("excerpt", ""))  # fmt: skip


@dataclass(frozen=True)
class TicketState:
    """What Escalator remembers about a ticket between events (input to the policy)."""

    tier: str | None = None  # the tier Escalator last put the ticket in
    priority_pinned: bool = False  # a person set the priority; raise_only leaves it alone
    last_reply: Reply | None = None  # the last public comment before this event (SLA state keeps it)
