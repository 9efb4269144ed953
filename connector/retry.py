"""When to try a transient failure again."""

from __future__ import annotations

import random


def backoff_seconds(
    attempts: int,
    retry_after: float | None,
    *,
    initial: float,
    maximum: float,
    rng: random.Random | None = None,
) -> float:
    """Exponential backoff with ±20 % jitter, never sooner than the platform's Retry-After."""
    rng = rng or random.Random()
    exponential = min(maximum, initial * 2 ** max(0, attempts - 1)) * rng.uniform(0.8, 1.2)
    return max(exponential, retry_after or 0.0)
