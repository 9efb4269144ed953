"""Errors an admin causes and can fix, reported as one line that says what to do (exit 2)."""

from __future__ import annotations


class StartupError(Exception):
    """Escalator cannot start or reach what it needs; the message is one line: what, and what to do."""
