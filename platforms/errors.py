"""The one error tree for everything a platform can say or do wrong.

Inbound (webhook) problems map to HTTP answers; outbound problems decide
whether the worker retries (transient) or records a failure (rejected).
"""

from __future__ import annotations

import math
from datetime import UTC
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from platforms.base import RateLimitHeaders


class PlatformError(Exception):
    """Base of every platform-related error."""


# --- inbound -----------------------------------------------------------------


class SignatureError(PlatformError):
    """The webhook's signature is missing, malformed, wrong or stale (HTTP 401)."""


class PayloadError(PlatformError):
    """The webhook body is not the shape the platform sends (HTTP 400)."""


# What a reader (identify, normalise) may raise when a payload's shape surprises it in a way it
# did not foresee (a dict where it hashes, a number where it slices, a year out of range; OSError:
# datetime.fromtimestamp past the platform's time_t). Readers do no I/O, so none of these is the
# machine failing. The webhook door and the worker treat them like PayloadError: the same body fails
# the same way again.
READER_FAILURES: tuple[type[BaseException], ...] = (
    ValueError, TypeError, KeyError, IndexError, AttributeError, ArithmeticError, RecursionError, OSError,
)  # fmt: skip


# --- outbound ----------------------------------------------------------------


class TransientPlatformError(PlatformError):
    """429, 5xx, timeout or connection failure: try again later.

    `retry_after` is the platform's own hint in seconds (Retry-After), if it gave one.
    """

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        retry_after: float | None = None,
        limits: RateLimitHeaders | None = None,
    ):
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after
        self.limits = limits  # what the answer said of the rate limit, if anything


class RejectedByPlatform(PlatformError):
    """A 4xx other than 429: the request itself is wrong (mapping, permissions). Never retried blindly."""

    def __init__(self, message: str, *, status: int):
        super().__init__(message)
        self.status = status


class ConflictError(PlatformError):
    """The ticket changed after the snapshot the plan was made from (e.g. Zendesk's 409 on
    `safe_update`). The worker re-reads the ticket (`PlatformClient.fetch`), plans again and retries."""

    def __init__(self, message: str, *, status: int = 409):
        super().__init__(message)
        self.status = status


class NotConfigured(PlatformError):
    """The platform has no settings (or no credentials) in the config."""


# The longest wait a platform's header is taken at: no platform limit resets later than a day, and a
# value beyond it (a typo, "1e12") would otherwise block every write, or overflow a datetime.
MAX_WAIT_SECONDS = 86_400.0


def wait_seconds(value: float | None) -> float | None:
    """A number of seconds read from a header, as a wait: None unless finite, within 0 and a day."""
    if value is None or not math.isfinite(value):
        return None
    return min(max(0.0, value), MAX_WAIT_SECONDS)


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or HTTP date); None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    try:
        return wait_seconds(float(value))
    except ValueError:
        pass
    from datetime import datetime
    from email.utils import parsedate_to_datetime

    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return wait_seconds((when - datetime.now(UTC)).total_seconds())
