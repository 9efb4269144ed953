"""A stand-in for policies.sla.Timer with just what the timer store reads."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from connector.model import EventKind


@dataclass(frozen=True)
class Timer:
    metric: str
    kind: EventKind
    percent: int
    due: datetime
    target: timedelta = timedelta(minutes=15)
    calendar: str = "always"

    @property
    def key(self) -> str:
        return f"{self.metric}:{self.kind}:{self.percent}"
