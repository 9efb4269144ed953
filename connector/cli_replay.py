"""`escalator replay`: try a policy on the deliveries Escalator kept (see connector/replay.py)."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from connector.cli_common import EXIT_OK, EXIT_USAGE, command, config_arg, load, timestamp


def add_commands(sub: Any) -> None:
    replay = command(
        sub, "replay", "re-judge stored deliveries under a candidate policy; report what would differ",
        "Judge every webhook delivery Escalator kept (the inbox keeps bodies for inbox.retention_days) "
        "under the policy in force and under --policy, with the worker's own judgement, and report the "
        "difference: outcomes, rules, priorities, tiers, requests, notifications, and the tickets whose "
        "priority, tier or notes would differ. Nothing is stored or sent.",
    )  # fmt: skip
    config_arg(replay)
    replay.add_argument(
        "--policy", help="the candidate policy file (default: the config's, to compare with itself)"
    )
    replay.add_argument(
        "--since", type=timestamp, help="only deliveries received at or after this ISO-8601 time"
    )
    replay.add_argument("--platform", help="only this platform (jira, zendesk, servicenow)")
    replay.add_argument("--format", choices=("text", "json", "md"), default="text")
    replay.set_defaults(run=_replay)


def _replay(args: argparse.Namespace) -> int:
    from connector.replay import ReplayError, replay
    from connector.replay_report import as_json, as_markdown, as_text
    from connector.store.db import make_engine, migrate
    from policies import load_policy

    config = load(args)
    in_force = load_policy(config.policy)
    candidate = load_policy(args.policy) if args.policy else in_force
    engine = make_engine(config.database)
    try:
        migrate(engine)
        report = replay(engine, config, in_force, candidate, since=args.since, platform=args.platform)
    except ReplayError as exc:
        print(f"escalator replay: {exc}", file=sys.stderr)
        return EXIT_USAGE
    finally:
        engine.dispose()
    if args.format == "json":
        print(json.dumps(as_json(report), indent=2, ensure_ascii=False))
    elif args.format == "md":
        print(as_markdown(report))
    else:
        print(as_text(report))
    return EXIT_OK
