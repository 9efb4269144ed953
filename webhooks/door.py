"""The door's one verdict: a delivery is stored only if the worker will be able to read it.

Everything the worker needs to turn a delivery into an event is checked here, before the
inbox row exists: the platform's own reader runs (identify, then normalise for an event we
handle), and what it found must fit what the store holds. A delivery refused here is answered
400 with the reason and nothing is stored; one admitted here never ends as "could not be
read" in the worker, and never carries a value the database refuses (issue 11).

The limits (`Bounds`) are the store's columns, read from the table definitions so that the
two cannot drift apart, plus a nesting depth well above any real payload (Jira's ADF
comment bodies, the deepest we know, nest about a dozen levels) and far below where
recursive code (JSON encoders, deep copies) hits Python's recursion limit.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from connector.model import TicketEvent
from connector.store.tables import inbox, tickets
from platforms.base import Delivery, Provider
from platforms.errors import READER_FAILURES, PayloadError

log = logging.getLogger("escalator.webhooks")

_CONTROL = re.compile("[\x00-\x1f\x7f]")


class Refused(Exception):
    """The delivery cannot be admitted (HTTP 400); the message says why."""


@dataclass(frozen=True)
class Bounds:
    """What a delivery may contain. The lengths are the store's columns."""

    max_depth: int = 64
    delivery_id: int = inbox.c.delivery_id.type.length
    event_type: int = inbox.c.event_type.type.length
    ticket_id: int = min(inbox.c.ticket_id.type.length, tickets.c.ticket_id.type.length)
    ticket_key: int = tickets.c.ticket_key.type.length
    person_id: int = tickets.c.requester_id.type.length


BOUNDS = Bounds()


def admit(
    provider: Provider, headers: Mapping[str, str], payload: Any, body: bytes, bounds: Bounds = BOUNDS
) -> Delivery:
    """The delivery `payload` is, once everything the worker will read has been read; Refused otherwise."""
    check_shape(payload, body, bounds)
    try:
        delivery = provider.identify(headers, payload)
        check_delivery(delivery, bounds)
        if not delivery.ignored:
            check_event(provider.normalise(payload, delivery), bounds)
    except PayloadError as exc:
        raise Refused(str(exc)) from exc
    except READER_FAILURES as exc:
        # The reader should have said PayloadError; say where in the log, answer 400 all the same.
        log.warning("%s reader failed on a delivery; refused", provider.key, exc_info=True)
        raise Refused(f"payload could not be read: {type(exc).__name__}: {_short(exc)}") from exc
    return delivery


def check_shape(payload: Any, body: bytes, bounds: Bounds = BOUNDS) -> None:
    """Nesting depth, and no NUL character anywhere (PostgreSQL's text cannot hold one).

    This runs on every delivery, so it walks containers only, a level at a time (one
    comprehension per container); strings are looked at only when the body has a NUL escape.
    """
    if body.count(b"[") + body.count(b"{") > bounds.max_depth:  # else it cannot nest that deep
        level, depth = [payload], 1
        while level:
            if depth > bounds.max_depth:
                raise Refused(f"payload nests deeper than {bounds.max_depth} levels")
            below: list[Any] = []
            for node in level:
                values = node.values() if type(node) is dict else node
                below += [v for v in values if type(v) in _CONTAINERS]
            level, depth = below, depth + 1
    if b"\\u0000" in body:  # raw NUL bytes are not valid JSON; only the escape can carry one
        _check_nul(payload)


_CONTAINERS = frozenset({dict, list})


def _check_nul(payload: Any) -> None:
    stack = [payload]
    while stack:
        node = stack.pop()
        items = node.items() if type(node) is dict else enumerate(node)
        for key, value in items:
            if isinstance(key, str) and "\x00" in key:
                raise Refused(f"payload key {_short(key)!r} contains a NUL character (\\u0000)")
            if type(value) in _CONTAINERS:
                stack.append(value)
            elif isinstance(value, str) and "\x00" in value:
                raise Refused(f"payload field {_short(key)!r} contains a NUL character (\\u0000)")


def check_delivery(delivery: Delivery, bounds: Bounds = BOUNDS) -> None:
    """The inbox row's columns can hold the delivery's id, type and ticket id."""
    if "," in delivery.delivery_id:
        # A sender sends its delivery-id header once; a repeated header reaches us joined by commas.
        raise Refused(f"delivery id {_short(delivery.delivery_id)!r} contains a comma: a repeated header")
    _fits("delivery id", delivery.delivery_id, bounds.delivery_id)
    _fits("event type", delivery.event_type, bounds.event_type)
    _fits("ticket id", delivery.ticket_id, bounds.ticket_id)


def check_event(event: TicketEvent, bounds: Bounds = BOUNDS) -> None:
    """The ticket's memory (id, key, requester) fits its columns."""
    ref = event.ticket.ref
    _fits("ticket id", ref.id, bounds.ticket_id)
    _fits("ticket key", ref.key, bounds.ticket_key)
    requester = event.ticket.requester
    _fits("requester id", requester.id if requester else None, bounds.person_id)


def _fits(what: str, value: str | None, limit: int) -> None:
    if value is None:
        return
    if len(value) > limit:
        raise Refused(f"{what} is {len(value)} characters long; at most {limit} are stored")
    if _CONTROL.search(value):
        raise Refused(f"{what} {_short(value)!r} contains a control character")


def _short(value: object, limit: int = 80) -> str:
    text = str(value)
    return text if len(text) <= limit else text[:limit] + "…"
