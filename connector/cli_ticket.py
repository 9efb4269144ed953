"""`escalator ticket show PLATFORM KEY`: one ticket as Escalator knows it."""

from __future__ import annotations

import json
import sys
from datetime import datetime, timedelta

from connector.cli_common import EXIT_OK, EXIT_PROBLEM, command, config_arg, group, load, open_database
from connector.ticket_view import LAST_DECISIONS, TicketView


def add_commands(sub) -> None:
    ticket = group(sub, "ticket", "look at one ticket as Escalator knows it")
    show = command(
        ticket, "show", "tier, priority, SLA clocks, armed timers, last decisions and waiting events",
        "One ticket as Escalator knows it: tier and priority, SLA clocks with their due instants in the "
        "calendar's time zone (computed under the config's policy), the timers armed in the database, "
        "the last decisions from the audit log and the events still waiting.",
    )  # fmt: skip
    config_arg(show)
    show.add_argument("platform", help="jira, zendesk or servicenow")
    show.add_argument("key", help="the ticket's key or id (ABC-123, 4711, INC0010001 or a sys_id)")
    show.add_argument(
        "--decisions",
        type=int,
        default=LAST_DECISIONS,
        help=f"last decisions shown (default {LAST_DECISIONS})",
    )
    show.add_argument("--format", choices=("text", "json"), default="text")
    show.set_defaults(run=_show)


def _show(args) -> int:
    from connector.ticket_view import TicketNotFound, ticket_view
    from policies import load_policy

    config = load(args)
    engine = open_database(config)
    try:
        view = ticket_view(
            engine, load_policy(config.policy), args.platform, args.key, decisions=args.decisions
        )
    except TicketNotFound as exc:
        print(f"escalator: {exc}", file=sys.stderr)
        return EXIT_PROBLEM
    if args.format == "json":
        print(json.dumps(view.to_json(), indent=2, ensure_ascii=False))
    else:
        print(as_text(view))
    return EXIT_OK


def as_text(v: TicketView) -> str:
    lines = [f"{v.platform} {v.key or v.id}" + (f" (id {v.id})" if v.key and v.key != v.id else "")]
    if v.url:
        lines.append(f"  {v.url}")
    if v.title:
        lines.append(f"  title:     {v.title}")
    pinned = " (pinned: a person set it, Escalator only raises it)" if v.priority_pinned else ""
    shown = f" ({v.platform_priority})" if v.platform_priority else ""
    lines.append(f"  priority:  {v.priority or '-'}{shown}{pinned}")
    lines.append(f"  tier:      {v.tier or '-'}")
    lines.append(
        f"  status:    {v.status or '-'}" + (f"   labels: {', '.join(v.labels)}" if v.labels else "")
    )
    lines.append(f"  updated:   {_at(v.updated_at)}")
    if v.clocks:
        where = f"calendar {v.calendar} ({v.zone})" if v.calendar else v.zone
        state = " · PAUSED since " + _at(v.paused_since) if v.paused_since else ""
        state += " · RESOLVED " + _at(v.resolved_at) if v.resolved_at else ""
        lines.append(f"SLA clocks ({v.sla_priority or 'no priority'}, {where}, {v.policy}){state}")
        for c in v.clocks:
            if c.state == "no_target":
                continue  # this priority does not measure it
            target = f"target {_span(c.target)} on {c.calendar} ({c.zone})" if c.target else "no target"
            ran = f", {_span(c.elapsed)} run" if c.elapsed is not None else ""
            line = f"  {c.metric:<15} {c.state:<9} {target}{ran}, since {_at(c.started_at)}"
            if c.due is not None:
                line += f"; due {_at(c.due)}"
            elif c.stopped_at is not None:
                line += f"; stopped {_at(c.stopped_at)}"
            lines.append(line)
            for percent, due in c.warnings:
                lines.append(f"  {'':<15} {'':<9} warning at {percent}%: {_at(due)}")
    else:
        lines.append("SLA clocks: none (no SLA section, or no event has started them)")
    if v.timers:
        lines.append("Timers armed")
        for t in v.timers:
            fired = f"  FIRED {_at(t.fired_at)}, waiting for a worker" if t.fired_at else ""
            lines.append(f"  {t.kind:<13} {t.metric:<15} {t.percent:>3}%  due {_at(t.due)} ({t.zone}){fired}")
    else:
        lines.append("Timers armed: none")
    if v.open_events:
        from connector.cli_events import describe

        lines.append("Events waiting (escalator events retry|discard ID)")
        lines.extend("  " + describe(e) for e in v.open_events)
    lines.append("Last decisions (newest first)" if v.decisions else "Last decisions: none")
    for d in v.decisions:
        change = []
        if d.priority_to and d.priority_to != d.priority_from:
            change.append(f"{d.priority_from or '-'} → {d.priority_to}")
        if d.tier_to and d.tier_to != d.tier_from:
            change.append(f"{d.tier_from or '-'} → {d.tier_to}")
        rules = f"  rules: {', '.join(d.rules)}" if d.rules else ""
        what = f"  {'; '.join(change)}" if change else ""
        lines.append(f"  #{d.seq:<6} {_at(d.at)}  {d.outcome:<10} {d.trigger:<16}{what}{rules}"
                     f"  requests: {d.requests}")  # fmt: skip
        if d.detail and d.outcome not in ("applied", "no_change"):
            lines.append(f"          {d.detail}")
    return "\n".join(lines)


def _at(value: datetime | None) -> str:
    return value.isoformat(sep=" ", timespec="seconds") if value else "-"


def _span(value: timedelta) -> str:
    seconds = int(value.total_seconds())
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, seconds = divmod(rest, 60)
    parts = [f"{n}{u}" for n, u in ((days, "d"), (hours, "h"), (minutes, "m"), (seconds, "s")) if n]
    return " ".join(parts) or "0s"
