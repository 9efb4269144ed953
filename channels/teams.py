"""Microsoft Teams through a Workflows "When a Teams webhook request is received" URL, posting an
Adaptive Card (the Office 365 connectors and their MessageCard format are retired).

A workflow posts each card as a new message: Teams gives a webhook no thread to reply in, so each card
carries the ticket key in its title and the same facts, and the ticket's messages read as one story.
"""

from __future__ import annotations

import json
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from policies.markup import markdown_text

from . import http
from .message import Message, Receipt

CARD_SCHEMA = "http://adaptivecards.io/schemas/adaptive-card.json"
CARD_VERSION = "1.4"  # what Teams renders everywhere (desktop, web, mobile)


class TeamsSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    type: Literal["teams"]
    url: str = Field("", description="the workflow's HTTP POST URL; empty: messages are rendered, not sent")
    timeout_seconds: float = Field(10.0, gt=0)
    language: str | None = None

    @property
    def can_send(self) -> bool:
        return bool(self.url)


def _plain(text: str) -> str:
    """`text` with no Markdown link in it. A TextBlock renders a subset of Markdown, and a message
    quotes a ticket's title or a requester's reply: `[verify your account](https://evil.example)` in one
    became a link in the on-call channel. What a Zendesk note does with a value (policies/markup.py),
    a card does with the whole text, as Slack's escaping does there."""
    return markdown_text(text)


def render(message: Message) -> dict:
    """The workflow request: one message attachment holding the Adaptive Card."""
    body: list[dict] = [
        {"type": "TextBlock", "text": _plain(message.headline), "weight": "Bolder", "size": "Medium",
         "wrap": True},
        {"type": "TextBlock", "text": _plain(message.text), "wrap": True},
    ]  # fmt: skip
    if message.facts:
        body.append({"type": "FactSet", "facts": [{"title": k, "value": v} for k, v in message.facts]})
    card: dict = {"type": "AdaptiveCard", "$schema": CARD_SCHEMA, "version": CARD_VERSION, "body": body}
    if message.ticket_url:
        card["actions"] = [
            {"type": "Action.OpenUrl", "title": f"Open {message.ticket_key}", "url": message.ticket_url}
        ]
    return {
        "type": "message",
        "attachments": [
            {"contentType": "application/vnd.microsoft.card.adaptive", "contentUrl": None, "content": card}
        ],
    }


class TeamsChannel:
    def __init__(self, settings: TeamsSettings):
        self.settings = settings

    def send(self, message: Message, thread: str | None) -> Receipt:
        body = json.dumps(render(message), ensure_ascii=False).encode()
        response = http.post(
            "teams",
            self.settings.url,
            body,
            {"Content-Type": "application/json"},
            self.settings.timeout_seconds,
        )
        return Receipt(status=response.status_code, answer=f"{response.status_code} {response.reason}")
