"""What the reconcile readers share: reading pages of recently changed tickets within a platform's rate
limits, and the delivery a changed ticket becomes.

Each platform's `reconcile.py` knows its search API and turns one record into the body its webhook
would have sent, under the delivery id that webhook would have used, so the core stores it in the
inbox like any delivery and a late webhook of the same change is a duplicate. No store here.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import requests

from platforms.errors import PlatformError, TransientPlatformError, parse_retry_after
from platforms.http import answer_error, body_text, network_errors

DEFAULT_RATE_LIMIT_WAIT = 60.0  # seconds, when a 429 says nothing about when to come back


@dataclass(frozen=True)
class Found:
    """A changed ticket as a delivery: what its webhook would have said, under the webhook's id."""

    ticket_id: str
    delivery_id: str
    event_type: str
    body: Mapping[str, Any]


class Pager:
    """Authenticated GETs that wait out 429 answers (Retry-After, else the platform's reset header, else
    a minute), at most `max_waits` times per pass; any other failure is our PlatformError."""

    def __init__(
        self,
        platform: str,
        auth: tuple[str, str],
        *,
        timeout: float,
        max_waits: int = 5,
        max_wait_seconds: float = 300.0,
        sleep: Callable[[float], None] = time.sleep,
        reset_header: str | None = None,
        session: requests.Session | None = None,
    ):
        self.platform = platform
        self.timeout = timeout
        self.max_waits = max_waits
        self.max_wait_seconds = max_wait_seconds
        self.sleep = sleep
        self.reset_header = reset_header
        self.session = session or requests.Session()
        self.session.auth = auth
        self.session.headers.update({"Accept": "application/json", "User-Agent": "Escalator reconcile"})
        self.requests = 0
        self.waited: list[float] = []

    def get(self, url: str, params: Mapping[str, Any] | None = None) -> Any:
        what = f"GET {url}"
        while True:
            with network_errors(self.platform, what, self.timeout):
                response = self.session.get(url, params=params, timeout=self.timeout)
            self.requests += 1
            if response.status_code == 429 and len(self.waited) < self.max_waits:
                wait = min(self._retry_after(response), self.max_wait_seconds)
                self.waited.append(wait)
                self.sleep(wait)
                continue
            if not 200 <= response.status_code < 300:
                raise answer_error(
                    self.platform, response, what, body_text(response), transient=frozenset({429})
                )
            try:
                return response.json()
            except ValueError as exc:
                raise TransientPlatformError(
                    f"{self.platform} answered {what} with a body that is not JSON"
                ) from exc

    def _retry_after(self, response: requests.Response) -> float:
        wait = parse_retry_after(response.headers.get("Retry-After"))
        if wait is None and self.reset_header:
            reset = response.headers.get(self.reset_header, "").strip()
            if reset.isdigit():
                wait = max(0.0, int(reset) - time.time())
        return DEFAULT_RATE_LIMIT_WAIT if wait is None else wait


def require(value: Any, kind: type, what: str) -> Any:
    if not isinstance(value, kind):
        raise PlatformError(f"{what} is not {'an object' if kind is dict else 'a list'}")
    return value


def within(at: datetime | None, start: datetime, end: datetime) -> bool:
    return at is not None and start <= at <= end
