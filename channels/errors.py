"""What a send can end in besides success. Configuration mistakes and refusals are never retried;
transient failures (429, 5xx, timeouts, connection errors) are, no sooner than the channel's Retry-After."""

from __future__ import annotations


class ChannelError(Exception):
    """A send that did not happen; `answer` is what the channel said (status and body, shortened)."""

    def __init__(self, message: str, *, status: int | None = None, answer: str = ""):
        super().__init__(message)
        self.status = status
        self.answer = answer


class TransientChannelError(ChannelError):
    """Try again later: rate limited, the channel is down, or the request timed out."""

    def __init__(
        self, message: str, *, status: int | None = None, answer: str = "", retry_after: float | None = None
    ):
        super().__init__(message, status=status, answer=answer)
        self.retry_after = retry_after


class RejectedByChannel(ChannelError):
    """The channel refused the message (bad token, unknown channel, malformed card): no retry helps."""


TRANSIENT_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})
ANSWER_LIMIT = 500


def retry_after_seconds(value: str | None) -> float | None:
    """Retry-After in seconds (the HTTP-date form is rare for these APIs and read as 'no hint')."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


def shorten(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= ANSWER_LIMIT else text[: ANSWER_LIMIT - 1] + "…"
