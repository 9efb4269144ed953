"""The database schema's version: which Alembic revision a database is at, and the code's newest."""

from __future__ import annotations

import functools
from dataclasses import dataclass

from sqlalchemy import Engine

from connector.store.db import MIGRATIONS, check_reachable, migrate


@dataclass(frozen=True)
class SchemaState:
    current: str | None  # None: an empty database (never migrated)
    head: str  # the newest revision this code knows

    @property
    def up_to_date(self) -> bool:
        return self.current == self.head

    @property
    def known(self) -> bool:
        """False when the database is at a revision this code does not have (a newer Escalator's)."""
        return self.current is None or self.current in _revisions()

    def __str__(self) -> str:
        if self.up_to_date:
            return f"schema at {self.head} (the newest)"
        if self.current is None:
            return f"empty database: no schema yet (the newest is {self.head}; `escalator db upgrade`)"
        if not self.known:
            return (
                f"schema at {self.current}, which this Escalator does not know (its newest is {self.head}): "
                "a newer version migrated it; upgrade Escalator"
            )
        return f"schema at {self.current}, behind {self.head}: `escalator db upgrade` (serve does it too)"


@functools.cache  # the migrations this code ships: read once
def head() -> str:
    from alembic.script import ScriptDirectory

    return ScriptDirectory(str(MIGRATIONS)).get_current_head()


@functools.cache
def _revisions() -> frozenset[str]:
    from alembic.script import ScriptDirectory

    return frozenset(rev.revision for rev in ScriptDirectory(str(MIGRATIONS)).walk_revisions())


def state(engine: Engine) -> SchemaState:
    """Where the database is; reads only (DatabaseUnavailable when it cannot be reached)."""
    from alembic.runtime.migration import MigrationContext

    check_reachable(engine)
    with engine.connect() as conn:
        current = MigrationContext.configure(conn).get_current_revision()
    return SchemaState(current, head())


def upgrade(engine: Engine) -> tuple[SchemaState, SchemaState]:
    """Migrate to the newest revision; the state before and after."""
    before = state(engine)
    if not before.known:
        return before, before
    migrate(engine)
    return before, state(engine)
