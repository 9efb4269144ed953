"""`escalator events list | retry | discard`: the events that failed, wait or are stuck."""

from __future__ import annotations

import getpass
import json
import sys

from connector.cli_common import EXIT_OK, EXIT_PROBLEM, command, config_arg, group, load, open_database
from connector.events import STATUSES, EventError, EventSummary


def add_commands(sub) -> None:
    events = group(
        sub, "events", "list failed or waiting events; retry or discard one",
        "Events are the webhook deliveries and fired SLA timers in the inbox. Retry and discard are "
        "recorded in the audit log (outcome requeued / discarded) with who did it and why.",
    )  # fmt: skip
    listing = command(
        events, "list", "list events that failed, wait for a retry, wait or are being processed",
        "Newest first. Without --status: every event that is not done (failed, retrying, pending, "
        "processing).",
    )  # fmt: skip
    config_arg(listing)
    listing.add_argument("--status", choices=STATUSES, help="only events in this state")
    listing.add_argument("--platform", help="only this platform (jira, zendesk, servicenow)")
    listing.add_argument("--limit", type=int, default=100, help="at most this many (default 100)")
    listing.add_argument("--format", choices=("text", "json"), default="text")
    listing.set_defaults(run=_list)

    retry = command(
        events, "retry", "put a failed event back in the queue (or try a retrying one now)",
        "Put a failed event back in the queue, or let a retrying one be tried now, with a fresh attempt "
        "count. Requests the platform already confirmed for it are not sent again. The event is judged "
        "on its own payload, even if later events of its ticket were handled since.",
    )  # fmt: skip
    config_arg(retry)
    which = retry.add_mutually_exclusive_group(required=True)
    which.add_argument("id", nargs="?", type=int, help="the event's id (see `escalator events list`)")
    which.add_argument("--failed", action="store_true", help="every failed event (of --platform)")
    retry.add_argument("--platform", help="with --failed: only this platform")
    retry.set_defaults(run=_retry)

    discard = command(
        events, "discard", "give up on an event that failed or waits, saying why",
        "Give up on a failed, retrying or pending event: it is never processed, and its ticket's later "
        "events no longer wait for it. The reason goes into the audit log: no personal data in it.",
    )  # fmt: skip
    config_arg(discard)
    discard.add_argument("id", type=int, help="the event's id (see `escalator events list`)")
    discard.add_argument("--why", required=True, help="the reason, recorded in the audit log")
    discard.set_defaults(run=_discard)


def operator() -> str:
    """Who runs this command, as the audit log records it (pseudonymised)."""
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):  # no user name for this uid (e.g. a bare container)
        return "cli:unknown"


def _list(args) -> int:
    from connector.events import list_events

    engine = open_database(load(args))
    found = list_events(engine, status=args.status, platform=args.platform, limit=args.limit)
    if args.format == "json":
        print(json.dumps([e.to_json() for e in found], indent=2, ensure_ascii=False))
        return EXIT_OK
    if not found:
        print(f"no {args.status or 'open'} events" + (f" on {args.platform}" if args.platform else ""))
        return EXIT_OK
    print(f"{'ID':>8}  {'STATUS':<10} {'PLATFORM':<10} {'TICKET':<14} {'EVENT':<24} ATTEMPTS / WHEN")
    for event in found:
        print(describe(event))
    return EXIT_OK


def describe(event: EventSummary) -> str:
    """One line (two with an error) per event."""
    ticket = event.ticket_key or event.ticket_id or "-"
    when = {
        "retrying": f"next try {_at(event.next_attempt_at)}",
        "pending": f"received {_at(event.received_at)}",
        "processing": f"leased until {_at(event.lease_until)}",
    }.get(event.status, f"finished {_at(event.finished_at)}")
    line = (
        f"{event.id:>8}  {event.status:<10} {event.platform:<10} {ticket:<14} {event.event_type:<24} "
        f"attempts {event.attempts}  {when}"
    )
    if event.last_error:
        line += f"\n          {_one_line(event.last_error)}"
    return line


def _at(value) -> str:
    return value.isoformat(timespec="seconds") if value else "-"


def _one_line(text: str, limit: int = 200) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _retry(args) -> int:
    from connector.events import retry_event, retry_failed

    engine = open_database(load(args))
    if args.failed:
        count = retry_failed(engine, actor=operator(), platform=args.platform)
        print(f"{count} failed event{'s' if count != 1 else ''} put back in the queue")
        return EXIT_OK
    if args.platform:
        print("escalator: --platform goes with --failed, not with an id", file=sys.stderr)
        return EXIT_PROBLEM
    try:
        event = retry_event(engine, args.id, actor=operator())
    except EventError as exc:
        print(f"escalator: {exc}", file=sys.stderr)
        return EXIT_PROBLEM
    print(f"event {event.id} put back in the queue ({event.platform} {event.ticket_key or event.ticket_id})")
    return EXIT_OK


def _discard(args) -> int:
    from connector.events import discard_event

    engine = open_database(load(args))
    try:
        event = discard_event(engine, args.id, why=args.why, actor=operator())
    except EventError as exc:
        print(f"escalator: {exc}", file=sys.stderr)
        return EXIT_PROBLEM
    print(f"event {event.id} discarded ({event.platform} {event.ticket_key or event.ticket_id})")
    return EXIT_OK
