"""Shared fixtures: a migrated database on SQLite (always) and on the real PostgreSQL (when
ESCALATOR_TEST_POSTGRES_URL names one; .ci/run sets it).

A test gets a database of its own. Migrating one from nothing costs far more than the test that uses
it (SQLite 0.1 s, PostgreSQL 0.2–0.3 s, for each of a thousand tests), so the schema is migrated once
per test session (per xdist worker) and each test gets a copy: the SQLite file copied, the PostgreSQL
database created from the migrated one as its template. What a test finds is exactly what `migrate`
leaves (the copy is made by the same code, and migrating it again is a no-op). A test about migrating
itself asks for `empty_db_url` (or `postgres_url`), a database nothing has touched."""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, text

from connector.store.db import make_engine, migrate

POSTGRES_URL = os.environ.get("ESCALATOR_TEST_POSTGRES_URL")


def pytest_collection_modifyitems(config, items) -> None:
    """Without a PostgreSQL URL its tests are left out, and said once (see the summary), not per test."""
    if POSTGRES_URL:
        return
    left_out = [item for item in items if item.get_closest_marker("postgres")]
    if left_out:
        items[:] = [item for item in items if not item.get_closest_marker("postgres")]
        config.hook.pytest_deselected(items=left_out)
        config.stash[_POSTGRES_LEFT_OUT] = len(left_out)
        if hasattr(config, "workeroutput"):  # an xdist worker: its controller writes the summary
            config.workeroutput["postgres_left_out"] = len(left_out)


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node, error) -> None:
    """xdist's controller: every worker collected the whole suite, so each counts the same."""
    left_out = getattr(node, "workeroutput", {}).get("postgres_left_out", 0)
    config = node.config
    config.stash[_POSTGRES_LEFT_OUT] = max(config.stash.get(_POSTGRES_LEFT_OUT, 0), left_out)


def pytest_terminal_summary(terminalreporter, config) -> None:
    if hasattr(config, "workeroutput"):
        return
    if left_out := config.stash.get(_POSTGRES_LEFT_OUT, 0):
        terminalreporter.write_line(
            f"PostgreSQL: {left_out} tests not run (set ESCALATOR_TEST_POSTGRES_URL="
            "postgresql://USER@HOST:PORT/postgres to run them; .ci/run does)",
            yellow=True,
        )


_POSTGRES_LEFT_OUT = pytest.StashKey[int]()


# --- SQLite -------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def _migrated_sqlite_file(tmp_path_factory) -> Path:
    """One SQLite file migrated to the newest schema, the original every test's copy is made from."""
    path = tmp_path_factory.mktemp("migrated") / "escalator.db"
    engine = make_engine(f"sqlite:///{path}")
    migrate(engine)
    engine.dispose()  # the last connection closed: the WAL is checkpointed into the file and removed
    assert not Path(f"{path}-wal").exists(), "the migrated SQLite file still has a WAL beside it"
    return path


@pytest.fixture
def empty_sqlite_url(tmp_path) -> str:
    """A path where no database is yet."""
    return f"sqlite:///{tmp_path / 'escalator.db'}"


@pytest.fixture
def sqlite_url(tmp_path, _migrated_sqlite_file) -> str:
    """A SQLite database of this test's own, migrated to the newest schema."""
    shutil.copyfile(_migrated_sqlite_file, tmp_path / "escalator.db")
    return f"sqlite:///{tmp_path / 'escalator.db'}"


# --- PostgreSQL ---------------------------------------------------------------------------------


@contextmanager
def postgres_database(prefix: str = "escalator_test", template: str | None = None) -> Iterator[str]:
    """A new PostgreSQL database (empty, or a copy of `template`), dropped afterwards; its URL."""
    if not POSTGRES_URL:
        pytest.skip("ESCALATOR_TEST_POSTGRES_URL is not set: PostgreSQL store tests skipped")
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    admin = create_engine(_driver(POSTGRES_URL), isolation_level="AUTOCOMMIT")
    copy = f' TEMPLATE "{template}"' if template else ""
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"{copy}'))
        base, _, _ = _driver(POSTGRES_URL).rpartition("/")
        try:
            yield f"{base}/{name}"
        finally:
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()


class _PostgresCopies:
    """This process's copies of the migrated template. Creating one (0.3-0.5 s) and dropping one
    (0.1-0.3 s) is PostgreSQL's disk work, not this process's: a thread of its own makes the next copy
    while a test runs and drops the finished ones, one statement at a time, so a test's setup and
    teardown seldom wait for them. A copy is still untouched until its test takes it."""

    def __init__(self, template: str):
        self.template = template
        self.admin = create_engine(_driver(POSTGRES_URL), isolation_level="AUTOCOMMIT")
        self.base = _driver(POSTGRES_URL).rpartition("/")[0]
        self.thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="postgres-copies")
        self.drops: list[Future] = []
        self.next = self.thread.submit(self._create)

    def _create(self) -> str:
        name = f"escalator_test_{uuid.uuid4().hex[:12]}"
        with self.admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}" TEMPLATE "{self.template}"'))
        return name

    def _drop(self, name: str) -> None:
        with self.admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))

    def take(self) -> str:
        """A new copy, the URL of a database no one else has used; the next is started at once."""
        taken, self.next = self.next, None
        try:
            name = taken.result()
        finally:
            self.next = self.thread.submit(self._create)
        return f"{self.base}/{name}"

    def drop(self, url: str) -> None:
        self.drops.append(self.thread.submit(self._drop, url.rpartition("/")[2]))

    def close(self) -> None:
        """Drop the copy made ahead and wait for every drop; a failed one fails the session."""
        if self.next is not None:
            self.drops.append(self.thread.submit(lambda made: self._drop(made.result()), self.next))
        self.thread.shutdown(wait=True)
        self.admin.dispose()
        for done in self.drops:
            done.result()


@pytest.fixture(scope="session")
def _migrated_postgres_template() -> Iterator[str]:
    """One PostgreSQL database migrated to the newest schema, the template of every test's database.
    A template may have no connection open while it is copied: its engine is disposed at once."""
    with postgres_database("escalator_template") as url:
        engine = make_engine(url)
        migrate(engine)
        engine.dispose()
        yield url.rpartition("/")[2]


@pytest.fixture(scope="session")
def _postgres_copies(_migrated_postgres_template) -> Iterator[_PostgresCopies]:
    copies = _PostgresCopies(_migrated_postgres_template)
    yield copies
    copies.close()


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh, empty PostgreSQL database for one test, dropped afterwards."""
    with postgres_database() as url:
        yield url


@pytest.fixture
def migrated_postgres_url(request) -> Iterator[str]:
    """A PostgreSQL database of this test's own, migrated to the newest schema, dropped afterwards."""
    if not POSTGRES_URL:
        pytest.skip("ESCALATOR_TEST_POSTGRES_URL is not set: PostgreSQL store tests skipped")
    copies: _PostgresCopies = request.getfixturevalue("_postgres_copies")
    url = copies.take()
    yield url
    copies.drop(url)


def _driver(url: str) -> str:
    return url.replace("postgresql://", "postgresql+psycopg://", 1)


# --- both ---------------------------------------------------------------------------------------


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request) -> str:
    """Each store test runs on SQLite and on the real PostgreSQL, migrated to the newest schema."""
    fixture = "sqlite_url" if request.param == "sqlite" else "migrated_postgres_url"
    return request.getfixturevalue(fixture)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def empty_db_url(request) -> str:
    """SQLite and the real PostgreSQL as nothing has touched them, for the tests about migrating."""
    fixture = "empty_sqlite_url" if request.param == "sqlite" else "postgres_url"
    return request.getfixturevalue(fixture)


@pytest.fixture
def engine(db_url) -> Iterator[Engine]:
    eng = make_engine(db_url)
    migrate(eng)  # already done by the copy: a no-op, as on every start of a deployed Escalator
    yield eng
    eng.dispose()
