"""ServiceNow adapter (incidents).

    from platforms.servicenow import provider, Settings, ServiceNowClient

ServiceNow sends no webhooks of its own: business_rule.js (an after insert/update rule
on `incident`, installed as README.md explains) posts the incident as JSON we define,
signed with a shared secret. `provider` knows that JSON (verify, identify, normalise);
`ServiceNowClient(settings)` turns a plan into Table API requests and sends them.
Layout: settings.py (config), webhook.py (signature, delivery id), normalise.py
(payload or Table API record → canonical types), client.py (plan → requests, send, fetch).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from connector.model import TicketEvent
from platforms.base import Delivery
from platforms.servicenow import normalise as _normalise
from platforms.servicenow import webhook as _webhook
from platforms.servicenow.client import PROVIDER_CAPABILITIES, ServiceNowClient
from platforms.servicenow.settings import Settings

__all__ = ["ServiceNowClient", "ServiceNowProvider", "Settings", "provider"]


class ServiceNowProvider:
    """Stateless knowledge of the business rule's deliveries (implements `platforms.base.Provider`).

    Priority, assignee, group (assignment_group) and internal notes (work_notes). No
    CAP_LABELS: incidents have no labels field; a client configured with `label_entry`
    adds it for tags (`ServiceNowClient.capabilities`).
    """

    key = "servicenow"
    capabilities = PROVIDER_CAPABILITIES

    def verify(self, headers: Mapping[str, str], body: bytes, settings: Settings, now: datetime) -> None:
        """Raise SignatureError unless X-Escalator-Signature matches the timestamp and body under the
        webhook secret, recently, and the basic-auth credentials match when they are configured."""
        _webhook.verify_installation(headers, body, settings, now)

    def identify(self, headers: Mapping[str, str], payload: Mapping[str, Any]) -> Delivery:
        """Delivery id (sys_id:sys_mod_count), event type, incident sys_id; PayloadError on a wrong shape."""
        return _webhook.identify(headers, payload)

    def normalise(self, payload: Mapping[str, Any], delivery: Delivery) -> TicketEvent:
        """The canonical event; PayloadError on a wrong shape."""
        return _normalise.normalise(payload, delivery)


provider = ServiceNowProvider()
