"""One Escalator with all three platforms configured (the conformance drivers' settings) on SQLite
and on the real PostgreSQL: the reliability tests break one delivery and watch the others."""

from __future__ import annotations

import pytest
import responses

from connector.config import Config
from tests.conformance.drivers import DRIVERS, Driver
from tests.support.harness import FakeClock, start


@pytest.fixture(params=sorted(DRIVERS))
def platform(request) -> str:
    return request.param


@pytest.fixture
def esc(db_url):
    config = Config.model_validate(
        {
            "database": db_url,
            "dry_run": False,
            "worker": {"backoff_initial_seconds": 2, "backoff_max_seconds": 60},
            "platforms": {name: dict(driver.settings) for name, driver in DRIVERS.items()},
        }
    )
    escalator = start(config, FakeClock())
    yield escalator
    escalator.rt.close()


@pytest.fixture
def driver(esc, platform) -> Driver:
    return DRIVERS[platform](esc.rt.policy.current.platforms[platform])


@pytest.fixture
def api():
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield mock
