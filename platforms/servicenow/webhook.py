"""Inbound side of the ServiceNow business rule: check the signature, tell what a delivery is.

ServiceNow has no webhooks of its own; business_rule.js (shipped next to this file) posts
the incident as JSON we define and signs it like this:

    X-Escalator-Timestamp: <Unix epoch seconds, decimal digits>
    X-Escalator-Signature: base64(HMAC-SHA256(key, timestamp + "." + body))

`key` is the UTF-8 bytes of the shared secret. The script gets there with
`CertificateEncryption.generateMac(gs.base64Encode(secret), "HmacSHA256", data)`:
generateMac wants its key base64-encoded and decodes it back to those bytes. The body
is pure ASCII (the script escapes every other character as \\uXXXX), so there is no
doubt about which bytes were signed.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

from connector.model import EventKind
from platforms.base import Delivery, check_base64_hmac, header
from platforms.errors import PayloadError, SignatureError

if TYPE_CHECKING:
    from platforms.servicenow.settings import Settings

SIGNATURE_HEADER = "X-Escalator-Signature"
TIMESTAMP_HEADER = "X-Escalator-Timestamp"
AUTHORIZATION_HEADER = "Authorization"
DEFAULT_MAX_AGE_SECONDS = 300

TABLE = "incident"
# The business rule sends `operation` as GlideRecord.operation() says it …
_EVENT_SUFFIX = {"insert": "inserted", "update": "updated", "delete": "deleted"}
# … which becomes our event type. A new customer comment turns an update into
# comment.added; normalise.py decides that, since it needs the payload's `comment`.
HANDLED_EVENTS: dict[str, EventKind] = {
    "incident.inserted": EventKind.TICKET_CREATED,
    "incident.updated": EventKind.TICKET_UPDATED,
}
# Sent only when an admin also ticks "Delete" on the business rule; answered 200, never evaluated.
IGNORED_EVENTS: tuple[str, ...] = ("incident.deleted",)

_EPOCH_SECONDS = re.compile(r"[0-9]{1,12}")
_SYS_ID = re.compile(r"[0-9a-f]{32}")
_MOD_COUNT = re.compile(r"[0-9]+")


def mac(secret: str, message: bytes) -> str:
    """base64 HMAC-SHA256 of `message` keyed with the UTF-8 bytes of `secret` (what generateMac returns)."""
    digest = hmac.new(secret.encode("utf-8"), message, hashlib.sha256).digest()
    return base64.b64encode(digest).decode("ascii")


def signature(secret: str, timestamp: str, body: bytes) -> str:
    """The X-Escalator-Signature value business_rule.js sends for `body` at `timestamp`."""
    return mac(secret, timestamp.encode("ascii") + b"." + body)


def verify(
    headers: Mapping[str, str],
    body: bytes,
    secret: str,
    now: datetime,
    *,
    max_age_seconds: int = DEFAULT_MAX_AGE_SECONDS,
) -> None:
    """Raise SignatureError unless the body was signed with `secret` within `max_age_seconds` of `now`.

    The timestamp is inside the signed text, so a captured delivery cannot be replayed
    with a fresh timestamp; a stale one is refused, and a replay within the window is a
    duplicate delivery id (sys_id:sys_mod_count) that the inbox answers once.
    """
    if not secret:
        raise SignatureError("no ServiceNow webhook secret is configured; unsigned deliveries are refused")
    timestamp = header(headers, TIMESTAMP_HEADER)
    if timestamp is None:
        raise SignatureError(f"{TIMESTAMP_HEADER} header is missing")
    given = header(headers, SIGNATURE_HEADER)
    if given is None:
        raise SignatureError(f"{SIGNATURE_HEADER} header is missing")
    if not _EPOCH_SECONDS.fullmatch(timestamp):
        raise SignatureError(f"{TIMESTAMP_HEADER} is not Unix epoch seconds: {timestamp[:40]!r}")
    check_base64_hmac(given, secret, timestamp.encode("ascii") + b"." + body, SIGNATURE_HEADER)
    # Checked after the MAC, so a forged timestamp is reported as a bad signature, not as stale.
    age = now.timestamp() - int(timestamp)
    if age > max_age_seconds:
        raise SignatureError(
            f"{TIMESTAMP_HEADER} is {age:.0f}s old; deliveries older than {max_age_seconds}s are refused"
        )
    if age < -max_age_seconds:
        raise SignatureError(
            f"{TIMESTAMP_HEADER} is {-age:.0f}s in the future (more than {max_age_seconds}s): "
            "check the clocks of the instance and of Escalator"
        )


def verify_basic_auth(headers: Mapping[str, str], settings: Settings) -> None:
    """Raise SignatureError unless the call carries `inbound_user`/`inbound_password` (when configured).

    A second lock beside the signature, for admins whose firewall or proxy wants one;
    does nothing when `inbound_user` is not set.
    """
    if settings.inbound_user is None or settings.inbound_password is None:
        return
    value = header(headers, AUTHORIZATION_HEADER)
    if value is None:
        raise SignatureError(f"{AUTHORIZATION_HEADER} header is missing (basic auth is configured)")
    scheme, _, encoded = value.strip().partition(" ")
    if scheme.lower() != "basic":
        raise SignatureError(f"{AUTHORIZATION_HEADER} is not basic auth")
    try:
        user, sep, password = base64.b64decode(encoded.strip(), validate=True).decode("utf-8").partition(":")
    except (binascii.Error, ValueError):
        raise SignatureError(f"{AUTHORIZATION_HEADER} credentials are not base64 of user:password") from None
    # Both compared, always, so the time taken does not tell which one was wrong.
    user_ok = hmac.compare_digest(user.encode("utf-8"), settings.inbound_user.encode("utf-8"))
    password_ok = hmac.compare_digest(password.encode("utf-8"), settings.inbound_password.encode("utf-8"))
    if not (sep and user_ok and password_ok):
        raise SignatureError("basic auth credentials do not match inbound_user/inbound_password")


def verify_installation(headers: Mapping[str, str], body: bytes, settings: Settings, now: datetime) -> None:
    """Everything an installation's settings say about an inbound call: basic auth, then the signature.

    The core calls this (when a provider has it) instead of `Provider.verify`, which only
    gets the secret and so can check neither basic auth nor a non-default signature age.
    """
    verify_basic_auth(headers, settings)
    verify(
        headers,
        body,
        settings.webhook_secret or "",
        now,
        max_age_seconds=settings.max_signature_age_seconds,
    )


def identify(headers: Mapping[str, str], payload: Mapping[str, Any]) -> Delivery:
    """Delivery id (sys_id:sys_mod_count), event type and incident sys_id; PayloadError on a wrong shape."""
    if not isinstance(payload, Mapping):
        raise PayloadError(f"ServiceNow payload is not a JSON object but {type(payload).__name__}")
    table = payload.get("table", TABLE)
    if not isinstance(table, str) or not table:
        raise PayloadError("ServiceNow payload: 'table' is not a table name")
    operation = payload.get("operation")
    if not isinstance(operation, str) or operation not in _EVENT_SUFFIX:
        raise PayloadError(
            f"ServiceNow payload: 'operation' is {operation!r}, expected 'insert', 'update' or 'delete'"
        )
    event_type = f"{table}.{_EVENT_SUFFIX[operation]}"
    if event_type not in HANDLED_EVENTS:
        # Another table (the rule copied onto problem, say) or a delete: stored, answered, not evaluated.
        sys_id = _optional(sys_id_of, payload)
        mod_count = _optional(mod_count_of, payload)
        if sys_id is None or mod_count is None:
            delivery_id = payload_digest(payload)
        else:
            # The operation is part of the id: a delete carries the same sys_mod_count as the
            # update before it and must not be taken for a duplicate of that update.
            delivery_id = f"{sys_id}:{mod_count}:{operation}"
        return Delivery(delivery_id, event_type, sys_id, ignored=True)
    sys_id = sys_id_of(payload)
    return Delivery(f"{sys_id}:{mod_count_of(payload)}", event_type, sys_id)


def sys_id_of(payload: Mapping[str, Any]) -> str:
    """The record's sys_id (32 lowercase hex digits); PayloadError otherwise."""
    value = payload.get("sys_id")
    if not isinstance(value, str) or not _SYS_ID.fullmatch(value):
        raise PayloadError("ServiceNow payload: 'sys_id' is not a 32-digit hex sys_id")
    return value


def mod_count_of(payload: Mapping[str, Any]) -> str:
    """`sys_mod_count` as the Table API gives it, a string of digits (an int is accepted)."""
    value = payload.get("sys_mod_count")
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return str(value)
    if not isinstance(value, str) or not _MOD_COUNT.fullmatch(value):
        raise PayloadError("ServiceNow payload: 'sys_mod_count' is not a count")
    return value


def payload_digest(payload: Mapping[str, Any]) -> str:
    """A delivery id for an ignored payload that lacks sys_id or sys_mod_count (canonical JSON hash)."""
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return "sha256:" + hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def _optional(read: Any, payload: Mapping[str, Any]) -> str | None:
    try:
        return read(payload)
    except PayloadError:
        return None
