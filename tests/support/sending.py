"""Send a whole plan through a client, as the adapter tests need it.

The worker does this itself (connector/pipeline.py `_apply`), skipping requests the platform
already confirmed; adapter tests only need every request sent in order, stopping at the first
error.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from connector.model import Plan
from platforms.base import PlatformClient, SentRequest


@dataclass
class ApplyResult:
    sent: list[SentRequest] = field(default_factory=list)


def apply_plan(client: PlatformClient, plan: Plan) -> ApplyResult:
    """Send every request of `plan` in order; stop at the first error (it propagates)."""
    result = ApplyResult()
    for request in client.render(plan):
        result.sent.append(client.send(request))
    return result
