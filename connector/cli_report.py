"""`escalator report incident PLATFORM TICKET [--format md|json]`: the post-incident report on demand."""

from __future__ import annotations

import sys

from connector.cli_common import EXIT_PROBLEM, command, config_arg, group, load


def add_commands(sub) -> None:
    report = group(sub, "report", "reports built from the audit log")
    incident = command(
        report,
        "incident",
        "a ticket's post-incident report: timeline, response and resolution times, rules",
        "The post-incident report of one ticket, built from the audit log and the ticket's SLA clocks: "
        "the timeline, time to first response and to resolution against their targets, the rules fired.",
    )
    config_arg(incident)
    incident.add_argument("platform", help="jira, zendesk or servicenow")
    incident.add_argument("ticket", help="the ticket's key (ESC-42) or id")
    incident.add_argument("--format", choices=("md", "json"), default="md")
    incident.add_argument("--language", help="the report's language (default: the policy's default_language)")
    incident.set_defaults(run=_incident)


def _incident(args) -> int:
    from connector.report import TicketNotFound, find_ticket, incident_report, render
    from connector.store.db import make_engine, migrate
    from policies import load_policy

    config = load(args)
    engine = make_engine(config.database)
    try:
        migrate(engine)
        policy = load_policy(config.policy)
        try:
            ticket_id = find_ticket(engine, args.platform, args.ticket)
            report = incident_report(engine, policy, args.platform, ticket_id, language=args.language)
        except TicketNotFound as exc:
            print(f"escalator: {exc}", file=sys.stderr)
            return EXIT_PROBLEM
        sys.stdout.write(render(report, args.format))
        return 0
    finally:
        engine.dispose()
