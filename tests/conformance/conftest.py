"""One Escalator with all three platforms configured, the example policy, and a fake clock; each
conformance test runs once per platform."""

from __future__ import annotations

import pytest
import responses

from connector.config import Config
from tests.conformance.drivers import DRIVERS, Driver
from tests.support.harness import Escalator, FakeClock, start


def start_all_platforms(database: str) -> Escalator:
    """Escalator on `database` with every platform configured as the drivers expect."""
    config = Config.model_validate(
        {
            "database": database,
            "dry_run": False,
            "worker": {"backoff_initial_seconds": 2, "backoff_max_seconds": 60},
            "platforms": {name: dict(driver.settings) for name, driver in DRIVERS.items()},
        }
    )
    return start(config, FakeClock())


@pytest.fixture(params=sorted(DRIVERS))
def platform(request) -> str:
    return request.param


@pytest.fixture
def esc(sqlite_url):
    escalator = start_all_platforms(sqlite_url)
    yield escalator
    escalator.rt.close()


@pytest.fixture
def driver(esc, platform) -> Driver:
    return DRIVERS[platform](esc.rt.policy.current.platforms[platform])


@pytest.fixture
def api():
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield mock
