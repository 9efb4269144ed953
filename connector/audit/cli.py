"""`escalator audit …`: export, show, verify, checkpoint, keygen, forget, prune."""

from __future__ import annotations

import argparse
import functools
import json
import os
import re
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from connector.audit import checkpoints as cps
from connector.audit import export as audit_export
from connector.audit import keys as audit_keys
from connector.audit import offline, privacy, verification
from connector.cli_common import EXIT_OK, EXIT_PROBLEM, EXIT_USAGE, command, config_arg, group, load
from connector.cli_common import open_database as _open_database

_RELATIVE = re.compile(r"^\s*(\d+)\s*([mhdw])\s*$")
_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def add_commands(sub) -> None:
    """Register the `audit` group on the top-level subparsers."""
    audit_cmd = group(
        sub, "audit", "read, verify and look after the audit log",
        "The hash-chained, signed audit log: export it, show one record, verify it (from the database "
        "or from an export, with the public key and the checkpoints), sign checkpoints, and meet GDPR "
        "duties (forget one person, prune old records). docs/audit.md explains what it proves.",
    )  # fmt: skip

    out = command(audit_cmd, "export", "write audit records as JSON lines or CSV")
    config_arg(out)
    out.add_argument("--format", choices=("jsonl", "csv"), default="jsonl")
    out.add_argument("--platform", help="only this platform (jira, zendesk, servicenow)")
    out.add_argument(
        "--since", type=since, help="only records from then on: ISO-8601 (UTC if no zone) or 24h, 7d"
    )
    out.add_argument("--ticket", help="only this ticket, by id or key (10040 or TES-42)")
    out.add_argument("--rule", help="only records where this rule fired")
    out.add_argument(
        "--proof", action="store_true",
        help="the whole chain with the checkpoints, for `audit verify --export` (JSON lines, no filters)",
    )  # fmt: skip
    out.add_argument("--output", "-o", help="file to write (default: standard output)")
    out.set_defaults(run=_export)

    show = command(audit_cmd, "show", "print one audit record in full, with its hashes")
    config_arg(show)
    show.add_argument("seq", type=int, help="the record's seq (the first column of an export)")
    show.set_defaults(run=_show)

    check = command(
        audit_cmd, "verify", "prove the chain unbroken; names the first bad record and prints the head",
        "Re-compute every record's hash and link and compare every column with the hashed record. With "
        "--public-key, check every signature; with --checkpoints, prove the database (or the export) "
        "still holds exactly what each signed checkpoint covers. With --export, verify an export file "
        "alone, no database needed.",
    )  # fmt: skip
    config_arg(check)
    check.add_argument(
        "--public-key", action="append", metavar="FILE", help="Ed25519 public key (PEM); repeat"
    )
    check.add_argument(
        "--checkpoints", metavar="PATH", help="a checkpoint directory, or a file of checkpoint lines"
    )
    check.add_argument(
        "--export", metavar="FILE", help="verify this `audit export --proof` file, not the database"
    )
    check.set_defaults(run=_verify)

    point = command(audit_cmd, "checkpoint", "sign the chain's head now and write the checkpoint out")
    config_arg(point)
    point.add_argument("--to", help="directory, - (stdout) or http(s) URL (default: audit.checkpoints.to)")
    point.set_defaults(run=_checkpoint)

    keygen = command(audit_cmd, "keygen", "make an Ed25519 key pair for signing the audit log")
    keygen.add_argument(
        "--private-key", required=True, metavar="FILE", help="where the private key goes (0600)"
    )
    keygen.add_argument("--public-key", required=True, metavar="FILE", help="where the public key goes")
    keygen.set_defaults(run=_keygen)

    forget = command(
        audit_cmd, "forget", "erase one person (GDPR Art. 17); the chain still verifies",
        "Delete the person's pseudonym mapping and their clear text in the ticket memory and kept "
        "webhook bodies. Records keep their pseudonyms, which then point at nobody. Audited.",
    )  # fmt: skip
    config_arg(forget)
    forget.add_argument("--platform", required=True, help="jira, zendesk or servicenow")
    forget.add_argument("--person", required=True, metavar="ID", help="the person's id on that platform")
    forget.set_defaults(run=_forget)

    prune = command(
        audit_cmd, "prune", "remove records older than the retention; a signed checkpoint marks the cut",
        "Remove every record before --before (default: now minus audit.retention_days; never younger "
        "than the retention). A checkpoint signing the cut is written out first, so what remains "
        "still verifies. Audited.",
    )  # fmt: skip
    config_arg(prune)
    prune.add_argument("--before", type=since, help="ISO-8601 date/time (UTC if no zone) or 400d")
    prune.add_argument("--to", help="where the cut's checkpoint goes (default: audit.checkpoints.to)")
    prune.set_defaults(run=_prune)


def since(value: str) -> datetime:
    """ISO-8601 (UTC when no zone) or a relative time back from now: 30m, 24h, 7d, 2w."""
    match = _RELATIVE.match(value)
    if match:
        return datetime.now(UTC) - timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})
    try:
        when = datetime.fromisoformat(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(
            f"not a date/time: {value!r} (ISO-8601 such as 2026-11-01T09:00:00Z, or 30m, 24h, 7d, 2w)"
        ) from exc
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def _pipe_safe(run: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """`escalator audit export | head`: a reader that goes away ends the command quietly."""

    @functools.wraps(run)
    def wrapper(args: argparse.Namespace) -> int:
        try:
            return run(args)
        except BrokenPipeError:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())  # so the interpreter's final flush fails silently
            return EXIT_OK

    return wrapper


def _keys(config) -> audit_keys.AuditKeys:
    return audit_keys.AuditKeys.load(config.audit.signing_key, config.audit.pseudonym_key)


def _fail(message: str, status: int = EXIT_USAGE) -> int:
    print(f"escalator: {message}", file=sys.stderr)
    return status


@_pipe_safe
def _export(args: argparse.Namespace) -> int:
    if args.proof and (args.platform or args.since or args.ticket or args.rule or args.format != "jsonl"):
        return _fail("--proof exports the whole chain as JSON lines: it takes no filters and no --format")
    engine = _open_database(load(args))
    if args.proof:
        write = offline.write_proof
    else:
        items = audit_export.records(
            engine, platform=args.platform, since=args.since, ticket=args.ticket, rule=args.rule
        )
        writer = audit_export.write_csv if args.format == "csv" else audit_export.write_jsonl

        def write(_engine, out):
            return writer(items, out)

    if args.output:
        with open(args.output, "w", encoding="utf-8", newline="") as out:
            count = write(engine, out)
        print(f"wrote {count} audit records to {args.output}", file=sys.stderr)
    else:
        write(engine, sys.stdout)
        sys.stdout.flush()
    return EXIT_OK


@_pipe_safe
def _show(args: argparse.Namespace) -> int:
    found = list(audit_export.records(_open_database(load(args)), seq=args.seq))
    if not found:
        return _fail(f"no audit record with seq={args.seq}", EXIT_PROBLEM)
    print(json.dumps(found[0], indent=2, sort_keys=True, ensure_ascii=False))
    sys.stdout.flush()
    return EXIT_OK


def _verify(args: argparse.Namespace) -> int:
    try:
        public = audit_keys.load_public_keys(args.public_key or ())
        outside = cps.read(args.checkpoints) if args.checkpoints else []
        if outside and not public:
            return _fail("--checkpoints needs --public-key: a checkpoint is only as good as its signature")
        if args.export:
            if not public:
                return _fail("--export needs --public-key: the export proves itself only with it")
            result = offline.verify_export(args.export, public, outside)
        else:
            checkpoints = cps.prove(outside, public) if outside else []
            result = verification.verify(
                _open_database(load(args)), public_keys=public or None, checkpoints=checkpoints
            )
    except (audit_keys.AuditKeyError, offline.ExportError) as exc:
        return _fail(str(exc))
    except cps.CheckpointError as exc:
        print(f"audit checkpoints BROKEN: {exc}")
        return EXIT_PROBLEM
    print(result)
    return EXIT_OK if result.ok else EXIT_PROBLEM


def _checkpoint(args: argparse.Namespace) -> int:
    config = load(args)
    destination = args.to or config.audit.checkpoints.to
    if not destination:
        return _fail("say where the checkpoint goes: --to DIR|-|URL, or audit.checkpoints.to in the config")
    try:
        keys = _keys(config)
    except audit_keys.AuditKeyError as exc:
        return _fail(str(exc))
    if keys.signer is None:
        return _fail(f"no signing key: set audit.signing_key or {audit_keys.SIGNING_KEY_ENV}")
    try:
        checkpoint, where = cps.make(
            _open_database(config), keys.signer, cps.sink_for(destination), now=datetime.now(UTC)
        )
    except cps.CheckpointError as exc:
        return _fail(str(exc), EXIT_PROBLEM)
    print(
        f"checkpoint #{checkpoint.number}: records seq={checkpoint.first_seq}..{checkpoint.last_seq}, "
        f"head {checkpoint.head_hash}, signed by key {checkpoint.key_id}, written to {where}",
        file=sys.stderr,
    )
    return EXIT_OK


def _keygen(args: argparse.Namespace) -> int:
    try:
        kid = audit_keys.generate(Path(args.private_key), Path(args.public_key))
    except audit_keys.AuditKeyError as exc:
        return _fail(str(exc))
    print(
        f"key {kid}: private key in {args.private_key} (keep it off the database host's backups; "
        f"set audit.signing_key to it), public key in {args.public_key} (give it to auditors)"
    )
    return EXIT_OK


def _forget(args: argparse.Namespace) -> int:
    config = load(args)
    try:
        keys = _keys(config)
        done = privacy.forget(
            _open_database(config), keys, args.platform, args.person,
            now=datetime.now(UTC), actor=privacy.operator(),
        )  # fmt: skip
    except (audit_keys.AuditKeyError, privacy.PrivacyError) as exc:
        return _fail(str(exc))
    print(done)
    return EXIT_OK


def _prune(args: argparse.Namespace) -> int:
    config = load(args)
    destination = args.to or config.audit.checkpoints.to
    try:
        done = privacy.prune(
            _open_database(config), _keys(config), cps.sink_for(destination) if destination else None,
            before=args.before, retention_days=config.audit.retention_days,
            now=datetime.now(UTC), actor=privacy.operator(),
        )  # fmt: skip
    except (audit_keys.AuditKeyError, privacy.PrivacyError) as exc:
        return _fail(str(exc))
    except cps.CheckpointError as exc:
        return _fail(f"nothing was pruned: {exc}", EXIT_PROBLEM)
    print(done, file=sys.stderr)
    return EXIT_OK
