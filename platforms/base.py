"""The contract every platform adapter fulfils.

A platform is two things (as in Sentry's integrations):
- a `Provider`: stateless knowledge of the platform's webhooks (verify, identify,
  normalise) and its capabilities;
- a `PlatformClient`: a configured installation holding credentials that turns a
  `Plan` into the exact request(s) we mean and sends them.

Adapters know `connector.model` and their client library; never the store or Flask.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol
from urllib.parse import urlsplit

from connector.model import Plan, Ticket, TicketEvent, TicketRef
from platforms.errors import SignatureError

# Capabilities a platform may lack; the core skips (or the policy check flags) what is missing.
CAP_PRIORITY = "priority"
CAP_ASSIGNEE = "assignee"
CAP_GROUP = "group"
CAP_LABELS = "labels"
CAP_INTERNAL_NOTES = "internal_notes"


def header(headers: Mapping[str, str], name: str) -> str | None:
    """The value of header `name`, whatever the case of the keys in `headers`."""
    value = headers.get(name)  # exact for case-insensitive mappings (Werkzeug, requests)
    if value is not None:
        return value
    wanted = name.lower()
    # .items(), not iteration: iterating Werkzeug's Headers yields (key, value) pairs.
    for key, value in headers.items():
        if key.lower() == wanted:
            return value
    return None


def check_base64_hmac(given: str, secret: str, signed: bytes, header_name: str) -> None:
    """Raise SignatureError unless `given` (header `header_name`) is base64(HMAC-SHA256(secret, signed)).

    Zendesk and ServiceNow sign this way, each over its own text of timestamp and body.
    The comparison takes constant time.
    """
    try:
        digest = base64.b64decode(given.strip(), validate=True)
    except (binascii.Error, ValueError):
        digest = b""
    if len(digest) != hashlib.sha256().digest_size:
        raise SignatureError(f"{header_name} is not the base64 of a 32-byte HMAC-SHA256")
    expected = hmac.new(secret.encode("utf-8"), signed, hashlib.sha256).digest()
    if not hmac.compare_digest(expected, digest):
        raise SignatureError(f"{header_name} does not match the timestamp and body")


def ui_url(api_url: Any, api_root: str, page: str) -> str | None:
    """A page of the platform's UI from a REST URL the payload carries: the part before `api_root`
    (scheme, host and any context path or proxy prefix) + `page`; None when `api_url` is not a URL."""
    if not isinstance(api_url, str):
        return None
    parts = urlsplit(api_url)
    if not parts.scheme or not parts.netloc:
        return None
    prefix = parts.path.split(api_root, 1)[0].rstrip("/")
    return f"{parts.scheme}://{parts.netloc}{prefix}/{page}"


def marked_note(text: str, mark: str | None) -> str:
    """A note's text carrying its decision's mark as a last line, where a platform keeps no other
    place for it (Zendesk comments, ServiceNow journal entries): `marked(text, mark)` is found again."""
    return f"{text}\n\n{note_mark_line(mark)}" if mark else text


def note_mark_line(mark: str) -> str:
    return f"[{mark}]"


@dataclass(frozen=True)
class Delivery:
    """What the inbox needs to know about a webhook before it is processed.

    `ignored` deliveries are stored and answered 200 but never evaluated.
    """

    delivery_id: str
    event_type: str
    ticket_id: str | None
    ignored: bool = False


@dataclass(frozen=True)
class OutboundRequest:
    """One HTTP request exactly as we mean to send it (also what dry-run shows)."""

    method: str
    url: str
    json: Mapping[str, Any] | None = None
    purpose: str = ""


@dataclass(frozen=True)
class RateLimitHeaders:
    """What an answer said about the platform's rate limit (RateLimit-*, X-Rate-Limit-*, X-RateLimit-*)."""

    limit: int | None = None
    remaining: int | None = None
    reset_seconds: float | None = None  # until the count resets
    per_ticket: bool = False  # the limit is the ticket's own (Jira's RateLimit-Reason: per-issue write)


@dataclass(frozen=True)
class SentRequest:
    """One request that went out and the platform's answer."""

    request: OutboundRequest
    status: int
    limits: RateLimitHeaders | None = None


@dataclass(frozen=True)
class Identity:
    """Who the configured credentials act as: `id` is what the platform names as an event's actor
    (and what the client's `own_account_id` must equal for echoes to be recognised)."""

    id: str
    name: str


# What `PlatformClient.site_names` can look up on the live site, for `escalator doctor`.
SITE_PRIORITIES = "priorities"  # the priority names the site has
SITE_FIELDS = "fields"  # ticket field ids
SITE_USERS = "users"  # people that tiers are assigned to
SITE_GROUPS = "groups"  # groups that tiers are assigned to


@dataclass(frozen=True)
class SiteNames:
    """What the live site has of one kind (names or ids, as the policy writes them); `what` says how
    it was asked (for messages), `complete` is False when only part of a long list was read."""

    found: frozenset[str]
    what: str
    complete: bool = True


class Provider(Protocol):
    """Stateless knowledge of one platform's inbound side."""

    key: str
    capabilities: frozenset[str]

    def verify(self, headers: Mapping[str, str], body: bytes, settings: Any, now: datetime) -> None:
        """Raise SignatureError unless the delivery is authentic under this installation's settings
        (its `webhook_secret`, and whatever else the platform checks: a replay window, basic auth)."""

    def identify(self, headers: Mapping[str, str], payload: Mapping[str, Any]) -> Delivery:
        """Delivery id, event type and ticket id; raise PayloadError on a wrong shape."""

    def normalise(self, payload: Mapping[str, Any], delivery: Delivery) -> TicketEvent:
        """The canonical event; raise PayloadError on a wrong shape."""


class PlatformClient(Protocol):
    """A configured installation of one platform: credentials, base URL, our own identity."""

    own_account_id: str | None
    identity_setting: str  # the settings key that holds `own_account_id`, for messages

    def render(self, plan: Plan) -> list[OutboundRequest]:
        """The request(s) `plan` becomes, in send order. Pure: no I/O."""

    def send(self, request: OutboundRequest) -> SentRequest:
        """Send one request. Raises TransientPlatformError, RejectedByPlatform or ConflictError."""

    def fetch(self, ref: TicketRef) -> Ticket:
        """Read the ticket as it is now (one GET), e.g. after a ConflictError.

        Raises TransientPlatformError or RejectedByPlatform like `send`."""

    def whoami(self) -> Identity:
        """The account the credentials act as (one GET; `escalator doctor`). Raises like `send`."""

    def site_names(self, kind: str, wanted: frozenset[str]) -> SiteNames | None:
        """Which of `wanted` (or, for priorities, every name) the live site has, in ONE request;
        None when this platform cannot be asked about `kind`. Raises like `send`."""
