"""What every `escalator` command module shares: the --config option, loading it, command and group
parsers with descriptions, and the exit codes.

A command group lives in its own module exposing `add_commands(sub)`; `connector/cli.py` registers
it with one line.
"""

from __future__ import annotations

import argparse
import textwrap
from datetime import UTC, datetime
from pathlib import Path

from connector.config import Config, load_config

DEFAULT_CONFIG = "escalator.yaml"

# The exit codes of every command (documented in `escalator --help` and the README).
EXIT_OK = 0  # done; nothing wrong found
EXIT_PROBLEM = 1  # the command ran and found a problem (or refused a request that cannot be done)
EXIT_USAGE = 2  # it could not run: wrong usage, a config or policy that does not load, a start-up failure

EXIT_CODES = """exit codes:
  0  done, nothing wrong found
  1  the command ran and found a problem: policy errors, a doctor FAIL, a broken audit chain,
     a schema behind the code, an unknown ticket or event, a retry or discard refused
  2  it could not run: wrong usage, a config or policy that does not load, a database that
     does not answer (serve and work wait for it instead), a port in use, an unreadable file
     (the message says what to do)"""


def command(sub, name: str, summary: str, description: str | None = None) -> argparse.ArgumentParser:
    """A sub-command whose --help shows `description` (else `summary`) and the exit codes."""
    return sub.add_parser(
        name,
        help=summary,
        description=textwrap.fill(description or _sentence(summary), 100),
        epilog=EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )


def group(sub, name: str, summary: str, description: str | None = None):
    """A command group (`escalator db …`): without an action it prints its own help, not the top level's.
    Returns the group's subparsers, for `command(…)`."""
    parser = command(sub, name, summary, description)
    parser.set_defaults(group_parser=parser)
    return parser.add_subparsers(metavar="ACTION", title="actions")


def config_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--config",
        "-c",
        help=f"config file (default: ./{DEFAULT_CONFIG} if present, else the embedded default)",
    )


def config_path(args) -> str | None:
    """The config file the command reads: --config, else ./escalator.yaml when present, else None."""
    path = getattr(args, "config", None)
    if path is None and Path(DEFAULT_CONFIG).exists():
        path = DEFAULT_CONFIG
    return path


def load(args) -> Config:
    return load_config(config_path(args))


def timestamp(value: str) -> datetime:
    """An ISO-8601 argument; UTC when it names no zone."""
    try:
        when = datetime.fromisoformat(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(
            f"not an ISO-8601 date/time: {value!r} (e.g. 2026-11-01 or 2026-11-01T09:00:00Z)"
        ) from exc
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def _sentence(text: str) -> str:
    return text[:1].upper() + text[1:] + ("" if text.endswith(".") else ".")


def open_database(config: Config):
    """The config's database, migrated to the newest schema (as `serve` would leave it)."""
    from connector.audit.chain import use_keys
    from connector.audit.keys import AuditKeys
    from connector.store.db import make_engine, migrate

    engine = make_engine(config.database)
    migrate(engine)
    # Records an operator's command appends are signed and pseudonymised like the worker's.
    use_keys(engine, AuditKeys.load(config.audit.signing_key, config.audit.pseudonym_key))
    return engine
