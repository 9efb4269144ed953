"""The channel types, registered in one place: a fifth one is a module plus one line here."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, Protocol

from pydantic import Field

from .email import EmailChannel, EmailSettings
from .message import Message, Receipt
from .slack import SlackChannel, SlackSettings
from .teams import TeamsChannel, TeamsSettings
from .webhook import WebhookChannel, WebhookSettings


class Channel(Protocol):
    def send(self, message: Message, thread: str | None) -> Receipt: ...


@dataclass(frozen=True)
class ChannelType:
    settings: type
    make: Callable[[Any], Channel]
    threads: bool  # later messages about a ticket reply to the first one


CHANNEL_TYPES: dict[str, ChannelType] = {
    "slack": ChannelType(SlackSettings, SlackChannel, threads=True),
    "teams": ChannelType(TeamsSettings, TeamsChannel, threads=False),
    "email": ChannelType(EmailSettings, EmailChannel, threads=True),
    "webhook": ChannelType(WebhookSettings, WebhookChannel, threads=False),
}

ChannelSettings = Annotated[
    SlackSettings | TeamsSettings | EmailSettings | WebhookSettings, Field(discriminator="type")
]

# The ticket itself as a target: an internal note on it, through the platform's own client.
TICKET_NOTE = "note"


def make_channel(settings: Any) -> Channel:
    return CHANNEL_TYPES[settings.type].make(settings)
