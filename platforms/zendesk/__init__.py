"""Zendesk Support adapter.

    from platforms.zendesk import provider, Settings, ZendeskClient

`provider` knows Zendesk's webhooks, both our trigger template and event subscriptions
(verify, identify, normalise); `ZendeskClient(settings)` turns a plan into the one Update
Ticket request and sends it. Layout: settings.py (config), webhook.py (signature,
delivery id, event dispatch), normalise.py (payload → TicketEvent, REST ticket → Ticket),
client.py (plan → request, send, fetch), trigger_template.json + README.md (what an admin
installs in Zendesk).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from connector.model import TicketEvent
from platforms.base import CAP_ASSIGNEE, CAP_GROUP, CAP_INTERNAL_NOTES, CAP_LABELS, CAP_PRIORITY, Delivery
from platforms.zendesk import normalise as _normalise
from platforms.zendesk import webhook as _webhook
from platforms.zendesk.client import ZendeskClient
from platforms.zendesk.settings import Settings

__all__ = ["Settings", "ZendeskClient", "ZendeskProvider", "provider"]


class ZendeskProvider:
    """Stateless knowledge of Zendesk's inbound side (implements `platforms.base.Provider`).

    Zendesk has everything the policy can ask for: priority, an assignee and a group,
    tags, and internal notes (a comment with `public: false`).
    """

    key = "zendesk"
    capabilities = frozenset({CAP_PRIORITY, CAP_ASSIGNEE, CAP_GROUP, CAP_LABELS, CAP_INTERNAL_NOTES})

    def verify(self, headers: Mapping[str, str], body: bytes, settings: Settings, now: datetime) -> None:
        """Raise SignatureError unless `X-Zendesk-Webhook-Signature` signs timestamp + body, recently."""
        _webhook.verify(
            headers, body, settings.webhook_secret or "", now,
            max_age_seconds=settings.max_signature_age_seconds,
        )  # fmt: skip

    def identify(self, headers: Mapping[str, str], payload: Mapping[str, Any]) -> Delivery:
        """Delivery id, event type and ticket id; PayloadError on a wrong shape."""
        return _webhook.identify(headers, payload)

    def normalise(self, payload: Mapping[str, Any], delivery: Delivery) -> TicketEvent:
        """The canonical event; PayloadError on a wrong shape."""
        return _normalise.normalise(payload, delivery)


provider = ZendeskProvider()
