"""A console over the hand-counted history (tests/console/seed.py), on SQLite and PostgreSQL."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import insert
from werkzeug.security import generate_password_hash

from connector.app import create_app
from connector.config import Config
from connector.runtime import Runtime, build_runtime
from connector.store.db import writing
from connector.store.tables import inbox
from console.auth import token_digest
from tests.conftest import postgres_database
from tests.console import seed
from tests.support.harness import FakeClock

PASSWORDS = {"vera": "viewer-password-1", "otto": "operator-password-2"}
TOKENS = {"reader": "esc_reader_token_abcdefghijklmnop", "ops": "esc_operator_token_qrstuvwxyz012345"}
# Secrets that must never appear on a page or in an API answer.
SECRETS = {
    "jira_api_token": "jira-api-token-SECRET-9f8e7d",
    "webhook_secret": "webhook-SECRET-1a2b3c",
    "console_secret_key": "console-session-key-SECRET-0123456789abcdef",
}
# Hashing is slow on purpose; once per test session is enough.
HASHES = {name: generate_password_hash(pw, method="pbkdf2:sha256:1000") for name, pw in PASSWORDS.items()}


def console_config(db_url: str, *, server: dict[str, Any] | None = None, **console: Any) -> Config:
    return Config.model_validate(
        {
            "database": db_url,
            "dry_run": True,
            "server": server or {},
            "platforms": {
                "jira": {
                    "url": seed.JIRA, "email": "bot@acme.test", "api_token": SECRETS["jira_api_token"],
                    "webhook_secret": SECRETS["webhook_secret"], "account_id": "bot-account",
                },
            },
            "console": {
                "secret_key": SECRETS["console_secret_key"],
                "users": {
                    "vera": {"role": "viewer", "password_hash": HASHES["vera"]},
                    "otto": {"role": "operator", "password_hash": HASHES["otto"]},
                },
                "tokens": {
                    "reader": {"role": "viewer", "sha256": token_digest(TOKENS["reader"])},
                    "ops": {"role": "operator", "sha256": token_digest(TOKENS["ops"])},
                },
                **console,
            },
        }
    )  # fmt: skip


@dataclass
class Console:
    rt: Runtime
    app: Flask
    clock: FakeClock

    def client(self) -> FlaskClient:
        client = self.app.test_client()
        client.environ_base["wsgi.url_scheme"] = "https"  # the session cookie is Secure
        return client

    def login(self, name: str = "vera", client: FlaskClient | None = None) -> FlaskClient:
        client = client or self.client()
        page = client.get("/console/login")
        answer = client.post(
            "/console/login",
            data={"name": name, "password": PASSWORDS[name], "csrf_token": csrf_of(page.text)},
        )
        assert answer.status_code == 302, answer.text
        return client

    def failed_event(self, error: str = "Jira answered 400: Field 'priority' cannot be set") -> int:
        now = self.clock()
        with writing(self.rt.engine) as conn:
            return conn.execute(
                insert(inbox).returning(inbox.c.id),
                {
                    "platform": "jira", "delivery_id": f"failed-{now.timestamp()}-{error[:8]}",
                    "event_type": "jira:issue_updated", "ticket_id": "10002", "received_at": now - timedelta(hours=1),  # noqa: E501
                    "body": b"{}", "ignored": False, "status": "failed", "attempts": 5, "next_attempt_at": now,  # noqa: E501
                    "last_error": error, "finished_at": now,
                },
            ).scalar_one()  # fmt: skip


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert found, "no CSRF token in the form"
    return found.group(1)


def bearer(name: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKENS[name]}"}


def make_console(db_url: str, *, server: dict[str, Any] | None = None, **console: Any) -> Console:
    clock = FakeClock(seed.NOW)
    rt = build_runtime(console_config(db_url, server=server, **console), clock=clock)
    seed.seed(rt.engine, sha=rt.policy.current.sha256, version=rt.policy.current.version)
    return Console(rt, create_app(rt), clock)


@pytest.fixture
def console(db_url) -> Iterator[Console]:
    made = make_console(db_url)
    yield made
    made.rt.close()


@pytest.fixture
def sqlite_console(sqlite_url) -> Iterator[Console]:
    made = make_console(sqlite_url)
    yield made
    made.rt.close()


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def shared_console(request, tmp_path_factory) -> Iterator[Console]:
    """One seeded console per module and backend, for tests that only read."""
    if request.param == "sqlite":
        made = make_console(f"sqlite:///{tmp_path_factory.mktemp('console') / 'escalator.db'}")
        yield made
        made.rt.close()
        return
    template = request.getfixturevalue("_migrated_postgres_template")
    with postgres_database("escalator_console", template=template) as url:
        made = make_console(url)
        yield made
        made.rt.close()


def make_console_for(db_url: str) -> Console:
    """A console with the test users over an empty database (the benchmark seeds its own history)."""
    clock = FakeClock(seed.NOW)
    rt = build_runtime(console_config(db_url), clock=clock)
    return Console(rt, create_app(rt), clock)
