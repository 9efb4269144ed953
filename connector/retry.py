"""When to try a transient failure again."""

from __future__ import annotations

import random
import threading
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


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


class Stranded(Generic[T]):
    """What the database failed under while it was being handled (a restart, say), kept to be given
    back as soon as the database answers again instead of waiting out its lease (minutes)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._items: list[T] = []

    def __len__(self) -> int:
        return len(self._items)

    def add(self, item: T) -> None:
        with self._lock:
            self._items.append(item)

    def give_back(self, back: Callable[[list[T]], object]) -> None:
        """`back(all kept)`, in one go; when it fails they are kept for the next try, and it raises."""
        with self._lock:
            items, self._items = self._items, []
        if not items:
            return
        try:
            back(items)
        except BaseException:
            with self._lock:
                self._items[:0] = items
            raise
