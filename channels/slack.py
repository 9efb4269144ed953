"""Slack: `chat.postMessage` with a bot token and Block Kit, one thread per ticket.

The first message about a ticket starts a thread; its `ts` (the Receipt's thread) is what every later
message replies to with `thread_ts`. slack_sdk's own retry handlers are off: the outbox owns retries
and honours Slack's Retry-After on 429.
"""

from __future__ import annotations

import json
from typing import Literal
from urllib.error import URLError

from pydantic import BaseModel, ConfigDict, Field
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.models.blocks import ContextBlock, MarkdownTextObject, SectionBlock

from .errors import (
    TRANSIENT_STATUSES,
    RejectedByChannel,
    TransientChannelError,
    retry_after_seconds,
    shorten,
)
from .message import Message, Receipt

DEFAULT_API_URL = "https://slack.com/api/"
# Slack's own errors that mean "later" rather than "never".
_TRANSIENT_ERRORS = frozenset(
    {"ratelimited", "service_unavailable", "fatal_error", "internal_error", "request_timeout"}
)


class SlackSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    type: Literal["slack"]
    token: str = Field("", description="the bot token (xoxb-…); empty: messages are rendered, not sent")
    channel: str = Field(min_length=1, description="channel name (#support-oncall) or id (C0123…)")
    api_url: str = Field(DEFAULT_API_URL, description="Slack's Web API base; a proxy or a local fake")
    timeout_seconds: float = Field(10.0, gt=0)
    language: str | None = None

    @property
    def can_send(self) -> bool:
        return bool(self.token)


def _escape(text: str) -> str:
    """Slack's mrkdwn control characters (&, <, >) as its docs say to escape them."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def render(settings: SlackSettings, message: Message, thread: str | None) -> dict:
    """The chat.postMessage arguments: Block Kit blocks plus a plain `text` for notifications."""
    link = (
        f"<{message.ticket_url}|{_escape(message.ticket_key)}>"
        if message.ticket_url
        else _escape(message.ticket_key)
    )
    title = f" {_escape(message.title)}" if message.title else ""
    blocks = [
        SectionBlock(text=MarkdownTextObject(text=f"*{link}*{title}")),
        SectionBlock(text=MarkdownTextObject(text=_escape(message.text)[:3000])),
    ]
    if message.facts:
        facts = [MarkdownTextObject(text=f"*{_escape(k)}:* {_escape(v)}") for k, v in message.facts[:10]]
        blocks.append(ContextBlock(elements=facts))
    args = {
        "channel": settings.channel,
        # The fallback text notifies too: escaped like the blocks, or a quoted "<!channel>" pings everyone.
        "text": _escape(f"{message.headline} — {message.text}")[:3000],
        "blocks": [b.to_dict() for b in blocks],
        "unfurl_links": False,
    }
    if thread:
        args["thread_ts"] = thread
    return args


class SlackChannel:
    def __init__(self, settings: SlackSettings):
        self.settings = settings
        self._client: WebClient | None = None

    def client(self) -> WebClient:
        if self._client is None:  # lazily: building a client must never need the network
            base = (
                self.settings.api_url if self.settings.api_url.endswith("/") else self.settings.api_url + "/"
            )
            self._client = WebClient(
                token=self.settings.token,
                base_url=base,
                timeout=int(max(1, self.settings.timeout_seconds)),
                retry_handlers=[],
            )
        return self._client

    def send(self, message: Message, thread: str | None) -> Receipt:
        args = render(self.settings, message, thread)
        try:
            response = self.client().chat_postMessage(**args)
        except SlackApiError as exc:
            raise _api_error(exc) from exc
        except (URLError, TimeoutError, OSError) as exc:
            raise TransientChannelError(f"slack: cannot reach {self.settings.api_url}: {exc}") from exc
        except (SlackClientError, json.JSONDecodeError) as exc:
            raise TransientChannelError(f"slack: unreadable answer: {exc}") from exc
        ts = response.get("ts")
        started = thread or ts
        return Receipt(
            status=response.status_code,
            answer=f"ok ts={ts}",
            thread=started,
            details={"ts": ts, "channel": response.get("channel")},
        )


def _api_error(exc: SlackApiError):
    response = exc.response
    status = response.status_code
    data = response.data if isinstance(response.data, dict) else {}
    error = data.get("error") or shorten(str(response.data or ""))
    answer = shorten(f"{status} {error}")
    if status in TRANSIENT_STATUSES or error in _TRANSIENT_ERRORS:
        retry_after = retry_after_seconds(
            (response.headers or {}).get("Retry-After") or (response.headers or {}).get("retry-after")
        )
        return TransientChannelError(
            f"slack: {answer}", status=status, answer=answer, retry_after=retry_after
        )
    return RejectedByChannel(f"slack: {answer}", status=status, answer=answer)
