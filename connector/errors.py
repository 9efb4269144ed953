"""Errors an admin causes and can fix, reported as one line that says what to do (exit 2)."""

from __future__ import annotations


def first_line(exc: BaseException) -> str:
    """What an exception says, on one line for a log: the first line of its message (a driver's runs
    on to the statement and a link), or its type's name when it says nothing (`TimeoutError()`)."""
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


class StartupError(Exception):
    """Escalator cannot start or reach what it needs; the message is one line: what, and what to do."""
