"""`escalator user add NAME --role viewer|operator` and `escalator user token NAME`: print the config
entry for a console user (password hash) or an API token (its SHA-256); nothing is written anywhere.
`escalator console index`: bring the console's read model up to date (after an upgrade on a big log)."""

from __future__ import annotations

import argparse
import getpass
import re
import secrets
import sys

from connector.cli_common import EXIT_OK, EXIT_USAGE, command, config_arg, group, load, open_database
from console.auth import ROLES, hash_password, token_digest

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")
MIN_PASSWORD = 12


def add_commands(sub) -> None:
    users = group(sub, "user", "console users and API tokens (prints config entries)")
    add = command(
        users, "add", "print the config entry of a console user with a hashed password",
        "Ask for a password (twice) and print the `console.users` entry to paste into the config. "
        "With --password-stdin the password is read from standard input instead (one line).",
    )  # fmt: skip
    add.add_argument("name", help="the login name (letters, digits, . _ @ -)")
    add.add_argument(
        "--role", choices=ROLES, default="viewer", help="viewer reads; operator may retry/discard"
    )
    add.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    add.set_defaults(run=_add)
    token = command(
        users, "token", "make an API bearer token and print its config entry",
        "Print a new random token once (give it to the API client) and the `console.tokens` entry, "
        "which holds only its SHA-256.",
    )  # fmt: skip
    token.add_argument("name", help="what the token is for, e.g. reporting")
    token.add_argument("--role", choices=ROLES, default="viewer")
    token.set_defaults(run=_token)

    console = group(sub, "console", "the web console's read model of the audit log")
    index = command(
        console, "index", "bring the console's read model up to date with the audit log",
        "The console indexes new audit records as it serves pages, a few thousand per request. After "
        "an upgrade on a large log, run this once so no page waits; --rebuild drops and rebuilds it.",
    )  # fmt: skip
    config_arg(index)
    index.add_argument("--rebuild", action="store_true", help="drop the read model and index the whole log")
    index.set_defaults(run=_index)


def _index(args: argparse.Namespace) -> int:
    import time

    from console import facts

    engine = open_database(load(args))
    started = time.monotonic()
    done = facts.rebuild(engine) if args.rebuild else facts.catch_up(engine)
    print(
        f"indexed {done} audit records in {time.monotonic() - started:.1f} s; {facts.behind(engine)} behind"
    )
    engine.dispose()
    return EXIT_OK


def _add(args: argparse.Namespace) -> int:
    if not NAME.match(args.name):
        print(
            f"escalator: user name {args.name!r}: use letters, digits, . _ @ - (at most 64)", file=sys.stderr
        )
        return EXIT_USAGE
    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = getpass.getpass("password: ")
        if getpass.getpass("again: ") != password:
            print("escalator: the two passwords differ; nothing printed", file=sys.stderr)
            return EXIT_USAGE
    if len(password) < MIN_PASSWORD:
        print(f"escalator: the password must have at least {MIN_PASSWORD} characters", file=sys.stderr)
        return EXIT_USAGE
    print("# add under `console: users:` in the config file")
    print(f"{args.name}:")
    print(f"  role: {args.role}")
    print(f'  password_hash: "{hash_password(password)}"')
    return EXIT_OK


def _token(args: argparse.Namespace) -> int:
    if not NAME.match(args.name):
        print(
            f"escalator: token name {args.name!r}: use letters, digits, . _ @ - (at most 64)", file=sys.stderr
        )
        return EXIT_USAGE
    token = "esc_" + secrets.token_urlsafe(32)
    print(f"# the token (shown once; give it to the client as `Authorization: Bearer …`): {token}")
    print("# add under `console: tokens:` in the config file")
    print(f"{args.name}:")
    print(f"  role: {args.role}")
    print(f'  sha256: "{token_digest(token)}"')
    return EXIT_OK
