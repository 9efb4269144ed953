from __future__ import annotations

import pytest

from tests.support.harness import start


@pytest.fixture
def launch():
    """Start Escalators for a test; every one's connections are closed at teardown."""
    started = []

    def _launch(config, clock=None):
        esc = start(config, clock)
        started.append(esc)
        return esc

    yield _launch
    for esc in started:
        esc.rt.close()
