from __future__ import annotations

import pytest

from policies import Policy, load_policy
from tests.policies.policy_helpers import EXAMPLE


@pytest.fixture(scope="session")
def example() -> Policy:
    return load_policy(EXAMPLE)
