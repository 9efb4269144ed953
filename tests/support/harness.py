"""A whole Escalator (config → runtime → Flask app → worker) on a temp SQLite file, with a
controllable clock, for tests that drive real payloads end to end."""

from __future__ import annotations

import hashlib
import hmac
import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from connector.app import create_app
from connector.config import Config
from connector.runtime import Runtime, build_runtime
from connector.worker import drain
from tests.support.fixtures import fixture_bytes

JIRA_URL = "https://acme.atlassian.net"
SECRET = "it-is-a-secret"
BOT = "escalator-bot-account-id"


class FakeClock:
    def __init__(self, start: datetime = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)):
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


def jira_config(db_url: str, *, dry_run: bool | None = None, notes: str = "internal", **jira: Any) -> Config:
    settings = {
        "url": JIRA_URL, "email": "bot@acme.test", "api_token": "token", "webhook_secret": SECRET,
        "account_id": BOT, "notes": notes, **jira,
    }  # fmt: skip
    return Config.model_validate(
        {
            "database": db_url,
            "dry_run": dry_run,
            "worker": {"backoff_initial_seconds": 2, "backoff_max_seconds": 60},
            "platforms": {"jira": settings},
        }
    )


def sign(body: bytes, secret: str = SECRET) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


@dataclass
class Escalator:
    rt: Runtime
    clock: FakeClock

    @property
    def http(self):
        return create_app(self.rt).test_client()

    def deliver(
        self, fixture: str, *, delivery_id: str | None = None, body: bytes | None = None, headers=None
    ):
        """POST a recorded Jira payload, signed, as Jira would."""
        body = body if body is not None else fixture_bytes("jira", fixture)
        sent = {
            "Content-Type": "application/json",
            "X-Hub-Signature": sign(body),
            "X-Atlassian-Webhook-Identifier": delivery_id or str(uuid.uuid4()),
        }
        sent.update(headers or {})
        return self.http.post(
            "/webhooks/jira", data=body, headers={k: v for k, v in sent.items() if v is not None}
        )

    def work(self) -> int:
        return drain(self.rt)

    def audit(self) -> list[dict[str, Any]]:
        from connector import audit

        return list(audit.records(self.rt.engine))


def start(config: Config, clock: FakeClock | None = None) -> Escalator:
    clock = clock or FakeClock()
    return Escalator(build_runtime(config, clock=clock), clock)


def body_of(call) -> dict[str, Any]:
    return json.loads(call.request.body)


def db_path_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'escalator.db'}"
