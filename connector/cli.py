"""The `escalator` command (also `python -m connector`).

Each command group lives in its own module exposing `add_commands(sub)` and is registered here with
one line in `_parser()`; `connector/cli_common.py` holds what they share (--config, exit codes).
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from pathlib import Path

from connector import (
    cli_db,
    cli_events,
    cli_install,
    cli_reconcile,
    cli_replay,
    cli_report,
    cli_serve,
    cli_ticket,
)
from connector.audit import cli as audit_cli
from connector.cli_common import (
    EXIT_CODES,
    EXIT_USAGE,
    command,
    config_arg,
    group,
    load,
    timestamp,
)
from connector.config import ConfigError
from connector.errors import StartupError
from connector.logs import fatal
from connector.version import VERSION
from console import cli as console_cli


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "run"):  # `escalator` or `escalator policy` alone: that level's help
        getattr(args, "group_parser", parser).print_help()
        return EXIT_USAGE
    from policies import PolicyError

    try:
        return args.run(args)
    except ConfigError as exc:
        fatal(f"config error:\n{exc}")
        return EXIT_USAGE
    except PolicyError as exc:
        fatal(f"the policy does not load:\n{exc}")
        return EXIT_USAGE
    except StartupError as exc:
        fatal(str(exc))
        return EXIT_USAGE


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="escalator",
        description="One escalation policy for Jira, Zendesk and ServiceNow.",
        epilog=EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"escalator {VERSION}")
    sub = parser.add_subparsers(metavar="COMMAND", title="commands")
    cli_serve.add_commands(sub)
    console_cli.add_commands(sub)
    cli_ticket.add_commands(sub)
    cli_events.add_commands(sub)
    cli_db.add_commands(sub)

    policy = group(sub, "policy", "work with policy files")
    check = command(
        policy, "check", "validate policy files; prints FILE:LINE: problem",
        "Load each policy file as `serve` would and print FILE:LINE: problem for every error and "
        "warning, or FILE: OK and a summary.",
    )  # fmt: skip
    check.add_argument("files", nargs="+", metavar="FILE")
    check.add_argument(
        "--config", help="also check the channels the policy notifies against this config file"
    )
    check.set_defaults(run=_policy_check)

    doctor = command(
        sub, "doctor", "check config, policy, database and each platform's credentials before going live"
    )
    config_arg(doctor)
    doctor.add_argument(
        "--offline", action="store_true", help="do not ask the platforms who the credentials belong to"
    )
    doctor.set_defaults(run=_doctor)

    simulate = command(
        sub, "simulate", "show what Escalator would do with one webhook payload (nothing is stored or sent)"
    )
    config_arg(simulate)
    simulate.add_argument("platform", help="jira, zendesk or servicenow")
    simulate.add_argument(
        "payload", help="a webhook body as the platform sends it: a JSON file, or - for stdin"
    )
    simulate.add_argument("--policy", help="the policy file to try (default: the config's)")
    simulate.add_argument(
        "--tier", help="the ticket's tier now (default: a ticket never seen, at its mapped tier)"
    )
    simulate.add_argument("--at", type=timestamp, help="when it happens, ISO-8601 (default: now)")
    simulate.add_argument("--format", choices=("text", "json"), default="text")
    simulate.set_defaults(run=_simulate)

    audit_cli.add_commands(sub)
    cli_reconcile.add_commands(sub)
    cli_replay.add_commands(sub)
    cli_install.add_commands(sub)
    cli_report.add_commands(sub)
    return parser


def _doctor(args) -> int:
    from connector.doctor import diagnose, report

    text, status = report(diagnose(load(args), online=not args.offline))
    print(text)
    return status


def _simulate(args) -> int:
    from connector.simulate import SimulationError, as_json, as_text, simulate
    from policies import load_policy

    config = load(args)
    policy = load_policy(args.policy or config.policy)
    try:
        body = sys.stdin.buffer.read() if args.payload == "-" else Path(args.payload).read_bytes()
    except OSError as exc:
        print(f"escalator: cannot read the payload: {exc}", file=sys.stderr)
        return 2
    try:
        sim = simulate(config, policy, args.platform, body, args.at or datetime.now(UTC), tier=args.tier)
    except SimulationError as exc:
        print(f"escalator: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(as_json(sim), indent=2, ensure_ascii=False) if args.format == "json" else as_text(sim))
    return 0


def _policy_check(args) -> int:
    from policies import check_policy, load_policy

    failed = False
    channels = set(load(args).notifications.channels) if args.config else None
    for file in args.files:
        problems = check_policy(file)  # errors and warnings, by line
        if channels is not None and not any(p.is_error for p in problems):
            problems = sorted(
                [*problems, *load_policy(file).channel_problems(channels)], key=lambda p: p.line
            )
        for problem in problems:
            print(problem)
        if any(p.is_error for p in problems):
            failed = True
            continue
        warned = sum(1 for p in problems if not p.is_error)
        note = f" ({warned} warning{'s' if warned != 1 else ''})" if warned else ""
        print(f"{file}: OK{note} — {load_policy(file).summary()}")
    return 1 if failed else 0
