"""What every console request reads: the runtime, the clock, a read model brought up to date."""

from __future__ import annotations

import time
from datetime import datetime

from flask import current_app
from sqlalchemy import Engine

from connector.runtime import Runtime
from console import facts
from policies import Policy

CATCH_UP_PER_REQUEST = 5_000  # ~1 s: a large backlog is indexed over several requests (or by `console index`)


def runtime() -> Runtime:
    return current_app.extensions["escalator"]


def engine() -> Engine:
    return runtime().engine


def policy() -> Policy:
    return runtime().policy.current


def now() -> datetime:
    return runtime().clock()


def fresh() -> int:
    """Index audit records written since the last request (bounded); how many are still behind."""
    if not facts.behind(engine()):
        return 0  # nothing new: no write transaction at all
    started = time.monotonic()
    facts.catch_up(engine(), limit=CATCH_UP_PER_REQUEST)
    current_app.extensions["console.catch_up_ms"] = (time.monotonic() - started) * 1000
    return facts.behind(engine())
