"""`escalator install PLATFORM` and `escalator uninstall PLATFORM`: register (or remove) what a
platform needs to call Escalator, through its admin API, with the credentials in the config.

The platform knowledge is in platforms/<p>/install.py; this module picks the platform, prints
a dry run or runs the plan, and hands the admin the one secret Zendesk makes (printed once, or
written to a file only its owner may read).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

from connector.cli_common import EXIT_OK, EXIT_PROBLEM, command, config_arg, load
from connector.config import Config
from platforms import installing
from platforms.installing import InstallError, InstallPlan
from platforms.jira import install as jira_install
from platforms.servicenow import install as servicenow_install
from platforms.zendesk import install as zendesk_install

INSTALLERS: dict[str, ModuleType] = {
    "jira": jira_install,
    "zendesk": zendesk_install,
    "servicenow": servicenow_install,
}


def add_commands(sub: Any) -> None:
    install = command(
        sub, "install", "register Escalator's webhook (and triggers, rules) on a platform through its API",
        "Create or update, through the platform's admin API and with the credentials in the config, what the "
        "platform needs to call Escalator: Jira's admin webhook; Zendesk's webhook, its signing secret and "
        "four triggers; ServiceNow's x_escalator.* properties and business rule. A second run changes "
        "nothing; --dry-run prints the exact requests.",
    )  # fmt: skip
    _common(install)
    install.add_argument(
        "--url", help="Escalator's public base URL the platform calls (default: server.public_url)"
    )
    install.add_argument(
        "--secret-file",
        help="Zendesk: write the webhook's signing secret to this file (mode 0600) instead of printing it",
    )
    install.add_argument(
        "--force", action="store_true", help="send every update even where nothing seems to differ"
    )
    install.set_defaults(run=_install)
    uninstall = command(sub, "uninstall", "remove what `escalator install` created, and nothing else")
    _common(uninstall)
    uninstall.set_defaults(run=_uninstall)


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("platform", choices=sorted(INSTALLERS), help="the platform to set up")
    config_arg(p)
    p.add_argument("--dry-run", action="store_true", help="print the requests it would send; send none")


def _install(args: argparse.Namespace) -> int:
    config = load(args)
    try:
        settings, module = _platform(config, args.platform)
        endpoint = webhook_endpoint(config, args.platform, args.url)
        api = module.admin_api(settings)
        plan: InstallPlan = module.plan_install(api, settings, endpoint, force=args.force)
        return _carry_out(api, plan, args, action="install")
    except InstallError as exc:
        print(f"escalator install {args.platform}: {exc}", file=sys.stderr)
        return EXIT_PROBLEM


def _uninstall(args: argparse.Namespace) -> int:
    config = load(args)
    try:
        settings, module = _platform(config, args.platform)
        api = module.admin_api(settings)
        plan = module.plan_uninstall(api, settings)
        return _carry_out(api, plan, args, action="uninstall")
    except InstallError as exc:
        print(f"escalator uninstall {args.platform}: {exc}", file=sys.stderr)
        return EXIT_PROBLEM


def _platform(config: Config, key: str) -> tuple[Any, ModuleType]:
    settings = config.platform(key)
    if settings is None:
        raise InstallError(f"the config has no platforms.{key} section: add it first (README: Connect)")
    return settings, INSTALLERS[key]


def webhook_endpoint(config: Config, platform: str, url: str | None) -> str:
    """<public URL>/webhooks/<platform>: where the platform must send its calls."""
    base = url or config.server.public_url
    if not base:
        raise InstallError(
            "Escalator's public URL is unknown: pass --url https://escalator.example.com or set "
            "server.public_url in the config (the platform must be able to reach it)"
        )
    if not base.startswith(("https://", "http://")):
        raise InstallError(f"the public URL must start with https:// (got {base!r})")
    return f"{base.rstrip('/')}/webhooks/{platform}"


def _carry_out(api: installing.AdminApi, plan: InstallPlan, args: argparse.Namespace, *, action: str) -> int:
    if args.dry_run:
        print(installing.describe(plan, action=action))
        if plan.revealed:
            _hand_over(plan.revealed, getattr(args, "secret_file", None))
        return EXIT_OK
    outcome = installing.run(api, plan)
    for note in plan.notes:
        print(f"{args.platform}: {note}")
    for step in outcome.sent:
        print(f"{args.platform}: {step.purpose or step.kind}: done")
    if not plan.writes:
        print(f"{args.platform}: nothing to change")
    if outcome.revealed:
        _hand_over(outcome.revealed, getattr(args, "secret_file", None))
    return EXIT_OK


def _hand_over(secret: str, path: str | None) -> None:
    """Zendesk's signing secret, for `webhook_secret`: shown once, or into a file only its owner reads."""
    if path is None:
        print(
            "zendesk: the webhook's signing secret (set it as ZENDESK_WEBHOOK_SECRET; "
            "it is not shown again):\n"
            f"  {secret}"
        )
        return
    target = Path(path)
    try:
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.fchmod(fd, 0o600)  # an existing file keeps its mode through O_CREAT: set it
            os.write(fd, (secret + "\n").encode("utf-8"))
        finally:
            os.close(fd)
    except OSError as exc:
        # The webhook exists now; printing the secret is the only way left to hand it over.
        print(f"zendesk: cannot write {target} ({exc.strerror}); the signing secret instead:\n  {secret}")
        return
    print(
        f"zendesk: the webhook's signing secret is in {target} (mode 0600): set it as ZENDESK_WEBHOOK_SECRET"
    )
