"""One message about one ticket, ready for any channel, and what a channel answers when it took it."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

# How an instant is written in a message (`Message.at`, the webhook body's timestamp): UTC, seconds.
INSTANT_FORMAT = "%Y-%m-%dT%H:%M:%SZ"


@dataclass(frozen=True)
class Message:
    """What every channel renders: a headline, the text, a few facts and a link to the ticket.

    `id` is stable for one queued notification (webhook-id, e-mail Message-ID): a receiver can drop a
    copy that a crash between the send and its record made Escalator send again.
    """

    id: str
    platform: str
    ticket_id: str
    ticket_key: str
    title: str
    text: str
    ticket_url: str | None = None
    kind: str = "notice"  # notice | update | report: what the message is in the ticket's thread
    facts: tuple[tuple[str, str], ...] = ()
    language: str = "en"
    at: str | None = None  # when the decision asked for it (ISO 8601, UTC): the same on every attempt

    @property
    def headline(self) -> str:
        title = f": {self.title}" if self.title else ""
        return f"{self.ticket_key}{title}"

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "platform": self.platform,
            "ticket_id": self.ticket_id,
            "ticket_key": self.ticket_key,
            "title": self.title,
            "text": self.text,
            "ticket_url": self.ticket_url,
            "kind": self.kind,
            "facts": [list(f) for f in self.facts],
            "language": self.language,
            "at": self.at,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Message:
        """The message as queued. Keys this version does not know are left out: during a rolling upgrade
        a replica still on it sends what a newer one queued (which failed its outbox round forever)."""
        known = {f.name: data[f.name] for f in fields(cls) if f.name in data}
        return cls(**{**known, "facts": tuple((str(k), str(v)) for k, v in data.get("facts") or ())})


@dataclass(frozen=True)
class Receipt:
    """The channel took the message. `thread` is what later messages about the ticket reply to
    (Slack's ts, the first e-mail's Message-ID); None when the channel has no threads."""

    status: int
    answer: str = ""
    thread: str | None = None
    details: dict[str, Any] = field(default_factory=dict)
