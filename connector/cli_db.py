"""`escalator db upgrade | current | check`: the database schema, without starting anything."""

from __future__ import annotations

import sys
from pathlib import Path

from connector.cli_common import EXIT_OK, EXIT_PROBLEM, command, config_arg, group, load


def add_commands(sub) -> None:
    db = group(
        sub, "db", "the database schema: upgrade, show or check its version",
        "The database schema is versioned (Alembic). `serve` and `work` upgrade it when they start; "
        "with several replicas, run `escalator db upgrade` once before starting the new version.",
    )  # fmt: skip
    upgrade = command(db, "upgrade", "bring the schema to this version's newest revision (idempotent)")
    config_arg(upgrade)
    upgrade.set_defaults(run=_upgrade)
    current = command(db, "current", "print the database's revision and the newest this version knows")
    config_arg(current)
    current.set_defaults(run=_current)
    check = command(
        db, "check", "exit 1 unless the schema is at the newest revision (for deploy scripts)",
        "Exit 0 when the schema is at this version's newest revision, 1 when it is behind, empty or "
        "newer than this version, 2 when the database cannot be reached. Writes nothing; a SQLite file "
        "that does not exist is not created.",
    )  # fmt: skip
    config_arg(check)
    check.set_defaults(run=_check)


def _engine(args, *, create: bool):
    from connector.store.db import make_engine

    url = load(args).database
    engine = make_engine(url)
    database = engine.url.database if engine.dialect.name == "sqlite" else None
    if not create and database and database != ":memory:" and not Path(database).exists():
        return None, f"{database} does not exist yet: `escalator db upgrade` (or serve) creates it"
    return engine, None


def _upgrade(args) -> int:
    from connector.store.schema import upgrade

    engine, _ = _engine(args, create=True)
    before, after = upgrade(engine)
    if not after.known:
        print(f"escalator: {after}", file=sys.stderr)
        return EXIT_PROBLEM
    if before.current == after.current:
        print(f"nothing to do: {after}")
    else:
        print(f"upgraded from {before.current or 'an empty database'} to {after.current}")
    return EXIT_OK


def _current(args) -> int:
    from connector.store.schema import state

    engine, missing = _engine(args, create=False)
    if engine is None:
        print(missing)
        return EXIT_OK
    print(state(engine))
    return EXIT_OK


def _check(args) -> int:
    from connector.store.schema import state

    engine, missing = _engine(args, create=False)
    if engine is None:
        print(missing, file=sys.stderr)
        return EXIT_PROBLEM
    now = state(engine)
    print(now, file=sys.stdout if now.up_to_date else sys.stderr)
    return EXIT_OK if now.up_to_date else EXIT_PROBLEM
