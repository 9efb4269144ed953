"""SLA durations and percentages as policy files write them: `15m`, `1h`, `4h`, `2d 4h`, `75%`.

A duration is an amount of time on the clock's calendar: `m` minutes, `h` hours, `d` days of 24 hours.
On a business-hours calendar `1d` is therefore 24 business hours (about 2.4 ten-hour working days), not
one working day; `policy check` warns when a `d` target runs on such a calendar (write hours instead).
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

_PART = re.compile(r"\s*(\d+)\s*([dhm])", re.IGNORECASE)
_UNITS = {"d": timedelta(days=1), "h": timedelta(hours=1), "m": timedelta(minutes=1)}
_ORDER = "dhm"


def parse_duration(value: Any) -> timedelta:
    """`"1h 30m"` → 1:30:00; raises ValueError saying what a duration looks like."""
    hint = "a duration such as 15m, 1h, 4h, 2d or 1h 30m"
    if not isinstance(value, str) or isinstance(value, bool):
        raise ValueError(f"must be {hint} (got {value!r})")
    text, pos, total, seen = value.strip(), 0, timedelta(), ""
    while pos < len(text):
        match = _PART.match(text, pos)
        if match is None:
            raise ValueError(f"must be {hint} (got {value!r})")
        unit = match.group(2).lower()
        if seen and _ORDER.index(unit) <= _ORDER.index(seen[-1]):
            raise ValueError(f"must list days, hours, minutes once each, in that order (got {value!r})")
        seen += unit
        total += int(match.group(1)) * _UNITS[unit]
        pos = match.end()
    if not seen:
        raise ValueError(f"must be {hint} (got {value!r})")
    if total <= timedelta():
        raise ValueError(f"must be longer than zero (got {value!r})")
    return total


def format_duration(value: timedelta) -> str:
    """The inverse of parse_duration for display: 0:15:00 → "15m", 52:00:00 → "2d 4h"; seconds dropped."""
    minutes = int(value.total_seconds() // 60)
    if minutes <= 0:
        return "0m"
    days, rest = divmod(minutes, 24 * 60)
    hours, minutes = divmod(rest, 60)
    parts = [f"{n}{unit}" for n, unit in ((days, "d"), (hours, "h"), (minutes, "m")) if n]
    return " ".join(parts)


def parse_percent(value: Any) -> int:
    """`"75%"` or 75 → 75; only whole percentages from 1 to 99 (100 % is the breach itself)."""
    number: Any = value
    if isinstance(value, str):
        match = re.fullmatch(r"\s*(\d+)\s*%\s*", value)
        number = int(match.group(1)) if match else None
    if isinstance(number, bool) or not isinstance(number, int):
        raise ValueError(f"must be a percentage such as 75% (got {value!r})")
    if not 1 <= number <= 99:
        raise ValueError(f"must be between 1% and 99% (got {value!r}; 100% is the breach itself)")
    return number
