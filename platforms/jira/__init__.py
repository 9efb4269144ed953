"""Jira Cloud / Jira Service Management adapter.

    from platforms.jira import provider, Settings, JiraClient

`provider` knows Jira's webhooks (verify, identify, normalise); `JiraClient(settings)`
turns a plan into Jira REST requests and sends them. Layout: settings.py (config),
webhook.py (signature, delivery id, event dispatch), normalise.py (payload → TicketEvent),
client.py (plan → requests, send).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from connector.model import TicketEvent
from platforms.base import CAP_ASSIGNEE, CAP_INTERNAL_NOTES, CAP_LABELS, CAP_PRIORITY, Delivery
from platforms.jira import normalise as _normalise
from platforms.jira import webhook as _webhook
from platforms.jira.client import JiraClient
from platforms.jira.settings import Settings

__all__ = ["JiraClient", "JiraProvider", "Settings", "provider"]


class JiraProvider:
    """Stateless knowledge of Jira's inbound side (implements `platforms.base.Provider`).

    No CAP_GROUP: Jira has no native group assignment; tiers map to an assignee or a
    custom field instead.
    """

    key = "jira"
    capabilities = frozenset({CAP_PRIORITY, CAP_ASSIGNEE, CAP_LABELS, CAP_INTERNAL_NOTES})

    def verify(self, headers: Mapping[str, str], body: bytes, settings: Settings, now: datetime) -> None:
        """Raise SignatureError unless `X-Hub-Signature` matches `body` under the webhook secret."""
        _webhook.verify(headers, body, settings.webhook_secret or "", now)

    def identify(self, headers: Mapping[str, str], payload: Mapping[str, Any]) -> Delivery:
        """Delivery id, event type and issue id; PayloadError on a wrong shape."""
        return _webhook.identify(headers, payload)

    def normalise(self, payload: Mapping[str, Any], delivery: Delivery) -> TicketEvent:
        """The canonical event; PayloadError on a wrong shape."""
        return _normalise.normalise(payload, delivery)


provider = JiraProvider()
