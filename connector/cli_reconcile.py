"""`escalator reconcile`: one reconcile pass now (the worker also runs one per platform on a schedule)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from connector.cli_common import EXIT_OK, EXIT_PROBLEM, EXIT_USAGE, command, config_arg, load, timestamp


def add_commands(sub: Any) -> None:
    reconcile = command(
        sub, "reconcile", "find ticket changes whose webhook never arrived, and queue them for the worker",
        "Ask each configured platform (or --platform) which tickets changed since the last pass, and store "
        "every change Escalator never saw as the delivery its webhook would have been; the worker then "
        "processes it. The first pass ever starts now unless --since says how far back to look.",
    )  # fmt: skip
    config_arg(reconcile)
    reconcile.add_argument("--platform", help="only this platform (jira, zendesk, servicenow)")
    reconcile.add_argument(
        "--since", type=timestamp, help="read changes from this ISO-8601 time (default: the last pass's end)"
    )
    reconcile.set_defaults(run=_reconcile)


def _reconcile(args: argparse.Namespace) -> int:
    from connector.reconcile import reconcile, reconcile_all
    from connector.runtime import build_runtime
    from platforms.errors import PlatformError

    rt = build_runtime(load(args))
    try:
        if args.platform is not None and args.platform not in rt.installations:
            known = ", ".join(rt.installations) or "none"
            print(
                f"escalator reconcile: platform '{args.platform}' is not configured ({known} are)",
                file=sys.stderr,
            )
            return EXIT_USAGE
        try:
            passes = (
                [reconcile(rt, args.platform, since=args.since)]
                if args.platform
                else reconcile_all(rt, since=args.since)
            )
        except PlatformError as exc:
            print(f"escalator reconcile: {args.platform}: {exc}", file=sys.stderr)
            return EXIT_PROBLEM
    finally:
        rt.close()
    failed = False
    for one in passes:
        if one.start is None:
            print(f"{one.platform}: {one.note}")
            failed = failed or one.note.startswith("failed")
            continue
        print(
            f"{one.platform}: {one.start.isoformat()} → {one.end.isoformat()}: {one.changed} changed, "
            f"{one.seen} already seen, {one.missed} missed and queued"
            + (f" ({one.comments} of them comments)" if one.comments else "")
            + f" ({one.requests} requests"
            + (f", {one.waited:.0f}s waiting out rate limits" if one.waited else "")
            + ")"
        )
    return EXIT_PROBLEM if failed else EXIT_OK
