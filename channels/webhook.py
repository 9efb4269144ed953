"""A generic webhook for anything else (paging tools, chat bridges), signed as the Standard Webhooks
spec says: `webhook-id`, `webhook-timestamp` and `webhook-signature: v1,<base64 HMAC-SHA256>` over
`{id}.{timestamp}.{body}`, keyed with the base64 secret (`whsec_` prefix optional)."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import time
from collections.abc import Callable
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from . import http
from .message import INSTANT_FORMAT, Message, Receipt

SECRET_PREFIX = "whsec_"


class WebhookSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    type: Literal["webhook"]
    url: str = Field("", description="where to POST; empty: messages are rendered, not sent")
    secret: str = Field(
        description="the signing secret: base64, as Standard Webhooks tools make it (whsec_…)"
    )
    timeout_seconds: float = Field(10.0, gt=0)
    language: str | None = None

    @field_validator("secret")
    @classmethod
    def _base64(cls, value: str) -> str:
        signing_key(value)
        return value

    @property
    def can_send(self) -> bool:
        return bool(self.url)


def signing_key(secret: str) -> bytes:
    """The HMAC key a Standard Webhooks secret stands for; ValueError when it is not base64."""
    try:
        key = base64.b64decode(secret.removeprefix(SECRET_PREFIX), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError("is not a Standard Webhooks secret: base64 (optionally prefixed whsec_)") from exc
    if len(key) < 16:
        raise ValueError("is too short: a Standard Webhooks secret holds 24 to 64 random bytes")
    return key


def sign(secret: str, message_id: str, timestamp: int, body: bytes) -> str:
    """The `webhook-signature` header value (one v1 signature)."""
    signed = f"{message_id}.{timestamp}.".encode() + body
    digest = hmac.new(signing_key(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def render(message: Message) -> dict:
    data = message.to_json()
    data.pop("at")  # the body's own timestamp says it
    return {"type": f"ticket.{message.kind}", "timestamp": message.at, "data": data}


class WebhookChannel:
    def __init__(self, settings: WebhookSettings, clock: Callable[[], float] = time.time):
        self.settings = settings
        self.clock = clock

    def request(self, message: Message) -> tuple[bytes, dict[str, str]]:
        """The body and headers; the id is the message's, so a receiver can drop a repeated delivery."""
        now = int(self.clock())
        payload = render(message)
        # When the event happened (Standard Webhooks), so a retry sends the same body; the attempt's
        # own time is the signed webhook-timestamp header. A message queued before `at` existed: now.
        payload["timestamp"] = message.at or time.strftime(INSTANT_FORMAT, time.gmtime(now))
        body = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()
        webhook_id = f"msg_{message.id}"
        return body, {
            "Content-Type": "application/json",
            "webhook-id": webhook_id,
            "webhook-timestamp": str(now),
            "webhook-signature": sign(self.settings.secret, webhook_id, now, body),
        }

    def send(self, message: Message, thread: str | None) -> Receipt:
        body, headers = self.request(message)
        response = http.post("webhook", self.settings.url, body, headers, self.settings.timeout_seconds)
        return Receipt(status=response.status_code, answer=f"{response.status_code} {response.reason}")
