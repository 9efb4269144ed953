"""Shared fixtures: a migrated database on SQLite (always) and on the real PostgreSQL (when
ESCALATOR_TEST_POSTGRES_URL names one; .ci/run sets it)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

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


def pytest_terminal_summary(terminalreporter, config) -> None:
    if left_out := config.stash.get(_POSTGRES_LEFT_OUT, 0):
        terminalreporter.write_line(
            f"PostgreSQL: {left_out} tests not run (set ESCALATOR_TEST_POSTGRES_URL="
            "postgresql://USER@HOST:PORT/postgres to run them; .ci/run does)",
            yellow=True,
        )


_POSTGRES_LEFT_OUT = pytest.StashKey[int]()


@pytest.fixture
def sqlite_url(tmp_path) -> str:
    return f"sqlite:///{tmp_path / 'escalator.db'}"


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh, empty PostgreSQL database for one test, dropped afterwards."""
    if not POSTGRES_URL:
        pytest.skip("ESCALATOR_TEST_POSTGRES_URL is not set: PostgreSQL store tests skipped")
    name = f"escalator_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(_driver(POSTGRES_URL), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    base, _, _ = _driver(POSTGRES_URL).rpartition("/")
    try:
        yield f"{base}/{name}"
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def _driver(url: str) -> str:
    return url.replace("postgresql://", "postgresql+psycopg://", 1)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request) -> str:
    """Each store test runs on SQLite and on the real PostgreSQL."""
    fixture = "sqlite_url" if request.param == "sqlite" else "postgres_url"
    return request.getfixturevalue(fixture)


@pytest.fixture
def engine(db_url) -> Iterator[Engine]:
    eng = make_engine(db_url)
    migrate(eng)
    yield eng
    eng.dispose()
