"""An Escalator with Jira, the example policy (its P1 protocol notifies `oncall` and `managers`) and
channels chosen per test, a fake clock, real stand-in servers for Slack and SMTP, and `responses` for
Jira, Teams and webhooks."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
import responses

from connector.config import Config
from connector.outbox import OutboxSender
from connector.scheduler import tick
from tests.conformance.drivers import OUTAGE, JiraDriver, after, decide
from tests.support.channels import FakeSlack, start_smtp
from tests.support.harness import Escalator, FakeClock, start

TEAMS_URL = "https://prod-00.westeurope.logic.azure.com/workflows/abc/triggers/manual/paths/invoke"
HOOK_URL = "https://pager.example.test/hooks/escalator"
HOOK_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


def escalator(db_url: str, channels: dict[str, Any], **notifications: Any) -> Escalator:
    config = Config.model_validate(
        {
            "database": db_url,
            "dry_run": False,
            "worker": {"backoff_initial_seconds": 2, "backoff_max_seconds": 60},
            "platforms": {"jira": dict(JiraDriver.settings)},
            "notifications": {"channels": channels, "backoff_initial_seconds": 2, "backoff_max_seconds": 60,
                              **notifications},
        }
    )  # fmt: skip
    return start(config, FakeClock())


@pytest.fixture
def slack():
    fake = FakeSlack().start()
    yield fake
    fake.stop()


@pytest.fixture
def smtp():
    server = start_smtp()
    yield server
    server.stop()


@pytest.fixture
def api():
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield mock


def slack_channel(fake: FakeSlack, **extra: Any) -> dict[str, Any]:
    return {
        "type": "slack",
        "token": "xoxb-test-token",
        "channel": "#support-oncall",
        "api_url": fake.url,
        **extra,
    }


def email_channel(server, **extra: Any) -> dict[str, Any]:
    return {"type": "email", "host": "127.0.0.1", "port": server.port, "security": "none",
            "sender": "escalator@shop.example", "to": ["support-managers@shop.example"], **extra}  # fmt: skip


class Story:
    """The P1 story on Jira: an outage ticket, hours passing, replies, resolution."""

    def __init__(self, esc: Escalator, api: responses.RequestsMock):
        self.esc = esc
        self.api = api
        self.driver = JiraDriver(esc.rt.policy.current.platforms["jira"])
        self.driver.register_write(api)
        api.add(responses.POST, f"{JiraDriver.settings['url']}/rest/api/2/issue/SHOP-1/comment", status=201,
                json={"id": "90001"})  # fmt: skip
        self.sender = OutboxSender(esc.rt)
        self.spec = OUTAGE
        self.created = esc.clock()

    def open_p1(self) -> dict[str, Any]:
        record = decide(self.esc, self.driver, self.driver.created(self.spec, self.esc.clock()))
        self.spec = after(self.spec, self.driver.effect(self.driver.writes(self.api), self.spec))
        return record

    def wait(self, minutes: float) -> list[dict[str, Any]]:
        """Let time pass minute by minute, firing timers and sending like the worker process; the
        records made."""
        before = len(self.esc.audit())
        for _ in range(int(minutes)):
            self.esc.clock.advance(60)
            tick(self.esc.rt)
            self.esc.work()
            self.send()
        return self.esc.audit()[before:]

    def send(self) -> int:
        return self.sender.send_due()

    def elapsed(self) -> timedelta:
        return self.esc.clock() - self.created
