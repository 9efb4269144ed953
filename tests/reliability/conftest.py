"""One Escalator with all three platforms configured (the conformance suite's set-up) on SQLite
and on the real PostgreSQL: the reliability tests break one delivery and watch the others."""

from __future__ import annotations

import pytest

from tests.conformance.conftest import api, driver, platform, start_all_platforms

__all__ = ["api", "driver", "platform"]  # the conformance fixtures, shared as they are


@pytest.fixture
def esc(db_url):
    escalator = start_all_platforms(db_url)
    yield escalator
    escalator.rt.close()
