"""A ticket's stored snapshot reads back as it was written, and reads when a newer version wrote it."""

from __future__ import annotations

from datetime import UTC, datetime

from connector.codec import ticket_from_json, ticket_to_json
from connector.model import Requester, Status, Ticket, TicketRef

TICKET = Ticket(
    ref=TicketRef("jira", "10001", "SHOP-1", "https://acme.atlassian.net/browse/SHOP-1"),
    title="Checkout is down",
    status=Status.OPEN,
    platform_priority="High",
    labels=frozenset({"outage"}),
    requester=Requester("557058:abc", "Dana", "dana@example.com", tier="gold", region="emea"),
    fields={"customfield_10010": "x"},
    created_at=datetime(2026, 11, 30, 9, 0, tzinfo=UTC),
    updated_at=datetime(2026, 11, 30, 9, 5, tzinfo=UTC),
    version="3",
)


def test_a_snapshot_round_trips():
    assert ticket_from_json(ticket_to_json(TICKET)) == TICKET


def test_a_snapshot_a_newer_version_wrote_reads_without_what_this_one_does_not_know():
    # During a rolling upgrade a replica on this version reads tickets a newer one saved: a field
    # added to the ticket's reference or its requester must not fail every delivery of the ticket.
    stored = ticket_to_json(TICKET)
    stored["ref"]["site"] = "acme-eu"
    stored["requester"]["timezone"] = "Europe/Berlin"
    stored["sentiment"] = "angry"
    assert ticket_from_json(stored) == TICKET
