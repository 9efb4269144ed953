"""`escalator audit …`: read, verify and export the audit log."""

from __future__ import annotations

import argparse
import sys

from connector.audit import export as audit_export
from connector.audit import verification
from connector.cli_common import command, config_arg, group, load, open_database, timestamp


def add_commands(sub) -> None:
    """Register the `audit` group on the top-level subparsers."""
    audit_cmd = group(sub, "audit", "read the audit log")
    out = command(audit_cmd, "export", "write audit records as JSON lines or CSV")
    config_arg(out)
    out.add_argument("--format", choices=("jsonl", "csv"), default="jsonl")
    out.add_argument("--platform", help="only this platform (jira, zendesk, servicenow)")
    out.add_argument(
        "--since", type=timestamp, help="only records at or after this ISO-8601 date/time (UTC if no zone)"
    )
    out.add_argument("--ticket", help="only this ticket id")
    out.add_argument("--rule", help="only records where this rule fired")
    out.add_argument("--output", "-o", help="file to write (default: standard output)")
    out.set_defaults(run=_export)
    check = command(audit_cmd, "verify", "prove the hash chain is unbroken; names the first bad record")
    config_arg(check)
    check.set_defaults(run=_verify)


def _export(args: argparse.Namespace) -> int:
    engine = open_database(load(args))
    items = audit_export.records(
        engine, platform=args.platform, since=args.since, ticket=args.ticket, rule=args.rule
    )
    write = audit_export.write_csv if args.format == "csv" else audit_export.write_jsonl
    if args.output:
        with open(args.output, "w", encoding="utf-8", newline="") as out:
            count = write(items, out)
        print(f"wrote {count} audit records to {args.output}", file=sys.stderr)
    else:
        write(items, sys.stdout)
    return 0


def _verify(args: argparse.Namespace) -> int:
    result = verification.verify(open_database(load(args)))
    print(result)
    return 0 if result.ok else 1
