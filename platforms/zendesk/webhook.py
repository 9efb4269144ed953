"""Inbound side of Zendesk webhooks: check the signature, tell what a delivery is.

Zendesk sends two body styles to the same endpoint, and we accept both:

- trigger-driven (`conditional_ticket_events`): the body is OUR JSON template
  (trigger_template.json) rendered with placeholders. Every value is a string, and the
  `event` value is set per trigger by the admin (see README.md).
- event subscriptions (`zen:event-type:ticket.*`): Zendesk's own envelope with `type`,
  `id`, `time`, `subject`, `detail` (a ticket snapshot) and `event` (what changed).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from connector.model import EventKind
from platforms.base import Delivery, check_base64_hmac, header
from platforms.errors import PayloadError, SignatureError
from platforms.zendesk.change_id import change_id

SIGNATURE_HEADER = "X-Zendesk-Webhook-Signature"
TIMESTAMP_HEADER = "X-Zendesk-Webhook-Signature-Timestamp"
DELIVERY_HEADER = "X-Zendesk-Webhook-Invocation-Id"

# DESIGN: a delivery signed more than 5 minutes ago (or ahead) is refused as a replay.
MAX_SIGNATURE_AGE_SECONDS = 300.0

EVENT_TYPE_PREFIX = "zen:event-type:"
TICKET_EVENT_TYPE_PREFIX = "zen:event-type:ticket."
# Event-subscription types we evaluate, and what each means canonically …
HANDLED_EVENT_TYPES: dict[str, EventKind] = {
    "zen:event-type:ticket.created": EventKind.TICKET_CREATED,
    "zen:event-type:ticket.priority_changed": EventKind.TICKET_UPDATED,
    "zen:event-type:ticket.status_changed": EventKind.TICKET_UPDATED,
    "zen:event-type:ticket.tags_changed": EventKind.TICKET_UPDATED,
    "zen:event-type:ticket.agent_assignment_changed": EventKind.TICKET_UPDATED,
    "zen:event-type:ticket.group_assignment_changed": EventKind.TICKET_UPDATED,
    "zen:event-type:ticket.comment_added": EventKind.COMMENT_ADDED,
}
# … and ticket events a subscription may also bring that we knowingly ignore: nothing the
# policy reads changes with them. Any other type (user.*, organization.*, …) is ignored too.
IGNORED_EVENT_TYPES: tuple[str, ...] = (
    "zen:event-type:ticket.subject_changed",
    "zen:event-type:ticket.description_changed",
    "zen:event-type:ticket.type_changed",
    "zen:event-type:ticket.custom_status_changed",
    "zen:event-type:ticket.custom_field_changed",
    "zen:event-type:ticket.comment_made_private",
    "zen:event-type:ticket.comment_redacted",
    "zen:event-type:ticket.followers_changed",
    "zen:event-type:ticket.email_ccs_changed",
    "zen:event-type:ticket.merged",
    "zen:event-type:ticket.soft_deleted",
    "zen:event-type:ticket.permanently_deleted",
    "zen:event-type:ticket.marked_as_spam",
)

# The `event` values of our trigger template; one per trigger (README.md). The names match
# the subscription types so both styles speak one vocabulary.
TRIGGER_EVENTS: dict[str, EventKind] = {
    "ticket.created": EventKind.TICKET_CREATED,
    "ticket.updated": EventKind.TICKET_UPDATED,
    "ticket.priority_changed": EventKind.TICKET_UPDATED,
    "ticket.comment_added": EventKind.COMMENT_ADDED,
}
TRIGGER_EVENT_TYPE_PREFIX = "trigger:"

_TICKET_SUBJECT = re.compile(r"zen:ticket:(\d+)")
_DIGITS = re.compile(r"\d+")


def verify(
    headers: Mapping[str, str],
    body: bytes,
    secret: str,
    now: datetime,
    *,
    max_age_seconds: float = MAX_SIGNATURE_AGE_SECONDS,
) -> None:
    """Raise SignatureError unless the body was signed with `secret` within `max_age_seconds` of `now`.

    Zendesk signs TIMESTAMP + BODY, where TIMESTAMP is the raw value of the timestamp
    header, and sends base64(HMAC-SHA256). Signing the timestamp is what makes the age
    check mean something: an old delivery cannot be replayed with a fresh timestamp.
    """
    if not secret:
        raise SignatureError("no Zendesk webhook secret is configured; unsigned deliveries are refused")
    given = header(headers, SIGNATURE_HEADER)
    if given is None:
        raise SignatureError(f"{SIGNATURE_HEADER} header is missing")
    stamp = header(headers, TIMESTAMP_HEADER)
    if stamp is None:
        raise SignatureError(f"{TIMESTAMP_HEADER} header is missing")
    signed_at = _signed_at(stamp)
    check_base64_hmac(given, secret, stamp.encode("utf-8") + body, SIGNATURE_HEADER)
    # Only an authentic delivery gets this far, so "too old" really means a replay or skew.
    if now.tzinfo is None:
        now = now.replace(tzinfo=UTC)
    age = (now - signed_at).total_seconds()
    if age > max_age_seconds:
        raise SignatureError(
            f"{TIMESTAMP_HEADER} {stamp!r} is {age:.0f}s old; deliveries signed more than "
            f"{max_age_seconds:g}s ago are refused (a replay, or a clock out of sync)"
        )
    if -age > max_age_seconds:
        raise SignatureError(
            f"{TIMESTAMP_HEADER} {stamp!r} is {-age:.0f}s in the future; more than "
            f"{max_age_seconds:g}s ahead is refused (a clock out of sync)"
        )


def _signed_at(stamp: str) -> datetime:
    # Zendesk sends ISO-8601 UTC, e.g. 2023-09-18T23:38:13Z (see tests/fixtures/zendesk/README.md).
    try:
        parsed = datetime.fromisoformat(stamp.strip())
    except ValueError:
        parsed = None
    if parsed is None or parsed.tzinfo is None:
        raise SignatureError(
            f"{TIMESTAMP_HEADER} is not an ISO-8601 date-time with a UTC offset "
            f"(such as 2023-09-18T23:38:13Z): {stamp[:64]!r}"
        )
    return parsed


def identify(headers: Mapping[str, str], payload: Mapping[str, Any]) -> Delivery:
    """Delivery id, event type and ticket id of one webhook; PayloadError on a wrong shape."""
    if not isinstance(payload, Mapping):
        raise PayloadError(f"Zendesk payload is not a JSON object but {type(payload).__name__}")
    if is_event_subscription(payload):
        return _identify_event(headers, payload)
    if "event" in payload:
        return _identify_trigger(headers, payload)
    raise PayloadError(
        "Zendesk payload is neither an event (no 'type' zen:event-type:…) nor Escalator's "
        "trigger template (no 'event')"
    )


def is_event_subscription(payload: Mapping[str, Any]) -> bool:
    """True for Zendesk's event envelope; False for our trigger template."""
    kind = payload.get("type")
    return isinstance(kind, str) and kind.startswith(EVENT_TYPE_PREFIX)


def _identify_event(headers: Mapping[str, str], payload: Mapping[str, Any]) -> Delivery:
    event_type = payload["type"]
    body_id = payload.get("id")
    # The invocation id is what Zendesk keeps across retries; the event id is the fallback
    # for a delivery that lost its headers (a proxy, a replay tool).
    delivery_id = header(headers, DELIVERY_HEADER) or (body_id if isinstance(body_id, str) else None)
    if not delivery_id:
        raise PayloadError(f"Zendesk event has no {DELIVERY_HEADER} header and no 'id'")
    if event_type not in HANDLED_EVENT_TYPES:
        return Delivery(delivery_id, event_type, _optional_event_ticket_id(payload), ignored=True)
    return Delivery(delivery_id, event_type, event_ticket_id(payload))


def _identify_trigger(headers: Mapping[str, str], payload: Mapping[str, Any]) -> Delivery:
    event = trigger_event(payload)
    ticket_id = trigger_ticket_id(payload)
    ticket = payload["ticket"]
    # The reconcile job names the same update the same way, so a late webhook and its copy are one.
    delivery_id = change_id(ticket_id, ticket.get("updated_at"), comment=event == "ticket.comment_added")
    delivery_id = delivery_id or header(headers, DELIVERY_HEADER)
    if not delivery_id:
        # Our template has no id of its own: without the header, two renderings of the same
        # update could not be told from two updates.
        raise PayloadError(f"Zendesk trigger delivery has no {DELIVERY_HEADER} header")
    return Delivery(delivery_id, TRIGGER_EVENT_TYPE_PREFIX + event, ticket_id)


def trigger_event(payload: Mapping[str, Any]) -> str:
    """The template's `event` value; PayloadError unless it is one a trigger may send."""
    event = payload.get("event")
    if not isinstance(event, str) or event not in TRIGGER_EVENTS:
        raise PayloadError(
            f"Zendesk trigger body: 'event' is {event!r}; the trigger must send one of "
            f"{', '.join(TRIGGER_EVENTS)} (see platforms/zendesk/README.md)"
        )
    return event


def trigger_ticket_id(payload: Mapping[str, Any]) -> str:
    """`ticket.id` of a trigger body: the digits {{ticket.id}} renders."""
    ticket = payload.get("ticket")
    if not isinstance(ticket, Mapping):
        raise PayloadError("Zendesk trigger body has no 'ticket' object")
    return ticket_id_text(ticket.get("id"), "ticket.id")


def event_ticket_id(payload: Mapping[str, Any]) -> str:
    """The ticket id of an event: `detail.id`, else the one in `subject` (zen:ticket:<id>)."""
    detail = payload.get("detail")
    if isinstance(detail, Mapping) and detail.get("id") not in (None, ""):
        return ticket_id_text(detail.get("id"), "detail.id")
    subject = payload.get("subject")
    match = _TICKET_SUBJECT.fullmatch(subject) if isinstance(subject, str) else None
    if match is None:
        raise PayloadError("Zendesk ticket event names no ticket ('detail.id' and 'subject' missing)")
    return match[1]


def _optional_event_ticket_id(payload: Mapping[str, Any]) -> str | None:
    # The `detail` of a user or organization event is that user or organization.
    if not payload["type"].startswith(TICKET_EVENT_TYPE_PREFIX):
        return None
    try:
        return event_ticket_id(payload)
    except PayloadError:
        return None  # an ignored event need not be well-formed


def ticket_id_text(value: Any, where: str) -> str:
    """A ticket id as digits; Zendesk sends it as a number (REST) or a string (webhooks)."""
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return str(value)
    if isinstance(value, str) and _DIGITS.fullmatch(value.strip()):
        return value.strip()
    raise PayloadError(f"Zendesk payload: '{where}' is not a ticket id: {value!r}")
