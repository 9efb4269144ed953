"""Business-hours calendars and SLA clock arithmetic. Pure: aware datetimes in, aware UTC datetimes out.

A calendar is open during weekly spans of local wall-clock time (`mon-fri 08:00-18:00`) in an IANA time
zone, except on public holidays (the `holidays` library) and extra closed dates. A span follows the local
clock across DST changes: 08:00-18:00 is ten hours on the days the clocks change, because the change happens
at night. A span edge that falls in a DST gap (a wall time that does not exist) is the instant of the change;
a span end in the repeated hour of the autumn change is its second occurrence.

Calendars without `hours` are open around the clock (holidays and closed dates still close them); the
`24x7` calendar is that in UTC with nothing closed, where `add` is plain addition.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

import holidays as holiday_data

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
ALWAYS = "24x7"
DAY = 24 * 60  # minutes
# How far `add` looks ahead for open time: far beyond any sane target (targets are capped at 365d).
_HORIZON_DAYS = 366 * 20


@dataclass(frozen=True, order=True)
class Span:
    """Open from `start` to `end` minutes after local midnight (end ≤ 1440) on `weekday` (0 = Monday)."""

    weekday: int
    start: int
    end: int

    def __str__(self) -> str:
        return f"{WEEKDAYS[self.weekday]} {_hhmm(self.start)}-{_hhmm(self.end)}"


@dataclass(frozen=True)
class Calendar:
    """When SLA clocks run. `hours=None`: around the clock; `holidays`: (country, subdivision) pairs."""

    name: str
    timezone: str = "UTC"  # IANA name
    hours: tuple[Span, ...] | None = None
    holidays: tuple[tuple[str, str | None], ...] = ()
    closed: frozenset[date] = frozenset()

    @property
    def always_open(self) -> bool:
        return self.hours is None and not self.holidays and not self.closed

    def __hash__(self) -> int:
        # The open-interval cache below is keyed by the calendar, asked a dozen times per decision (a
        # handover's last close walks days back): the fields, holidays and closed dates included, are
        # hashed once. (Kept by @dataclass: a class's own __hash__ is not replaced.)
        found = self.__dict__.get("_hash")
        if found is None:
            found = hash((self.name, self.timezone, self.hours, self.holidays, self.closed))
            object.__setattr__(self, "_hash", found)
        return found

    def __getstate__(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if k != "_hash"}  # a hash is one process's

    def add(self, start: datetime, duration: timedelta) -> datetime:
        """The first instant at which `duration` of open time has elapsed since `start` (UTC)."""
        start = utc(start)
        if duration < timedelta():
            raise ValueError(f"a negative duration cannot be added ({duration})")
        if self.always_open or not duration:
            return start + duration
        remaining = duration
        day = self._local_date(start) - timedelta(days=1)
        for _ in range(_HORIZON_DAYS):
            for opens, closes in _open_intervals(self, day):
                if closes <= start:
                    continue
                opens = max(opens, start)
                if closes - opens >= remaining:
                    return opens + remaining
                remaining -= closes - opens
            day += timedelta(days=1)
        raise ValueError(f"calendar '{self.name}' has no {duration} of open time within {_HORIZON_DAYS} days")

    def between(self, start: datetime, end: datetime) -> timedelta:
        """The open time in [start, end); zero when end is not after start."""
        start, end = utc(start), utc(end)
        if end <= start:
            return timedelta()
        if self.always_open:
            return end - start
        total = timedelta()
        day, last = self._local_date(start) - timedelta(days=1), self._local_date(end) + timedelta(days=1)
        while day <= last:
            for opens, closes in _open_intervals(self, day):
                overlap = min(closes, end) - max(opens, start)
                if overlap > timedelta():
                    total += overlap
            day += timedelta(days=1)
        return total

    def is_open(self, at: datetime) -> bool:
        """True when `at` lies in an open interval (intervals include their start, not their end)."""
        at = utc(at)
        if self.always_open:
            return True
        here = self._local_date(at)
        return any(
            opens <= at < closes
            for day in (here - timedelta(days=1), here, here + timedelta(days=1))
            for opens, closes in _open_intervals(self, day)
        )

    def is_closed_day(self, day: date) -> bool:
        """A holiday or an extra closed date: no open time that local day."""
        return day in self.closed or any(day in holiday_dates(c, s, day.year) for c, s in self.holidays)

    def open_periods(self, since: datetime, *, days: int = 400) -> Iterator[tuple[datetime, datetime]]:
        """The open periods that end after `since`, in time order, each as long as it really lasts: spans
        that touch across midnight (`18:00-24:00` then `00:00-08:00`) are one period. Looks `days` ahead."""
        since = utc(since)
        day = self._local_date(since) - timedelta(days=1)
        current: tuple[datetime, datetime] | None = None
        for _ in range(days + 2):
            for opens, closes in _open_intervals(self, day):
                if closes <= since:
                    continue
                if current is not None and opens <= current[1]:
                    current = (current[0], max(current[1], closes))
                    continue
                if current is not None:
                    yield current
                current = (opens, closes)
            day += timedelta(days=1)
        if current is not None:
            yield current

    def next_open(self, at: datetime) -> datetime | None:
        """`at` when the calendar is open then, else the instant it next opens (None: not within a year)."""
        at = utc(at)
        if self.always_open:
            return at
        period = next(self.open_periods(at), None)
        return None if period is None else max(period[0], at)

    def last_close(self, at: datetime) -> datetime | None:
        """The end of the latest open period that ended at or before `at` (None: none within a year)."""
        if self.always_open:
            return None
        at = utc(at)
        for back in (8, 400):
            last = None
            for _opens, closes in self.open_periods(at - timedelta(days=back), days=back + 1):
                if closes > at:
                    break
                last = closes
            if last is not None:
                return last
        return None

    def next_close(self, at: datetime) -> datetime | None:
        """The instant the open period holding (or, when closed at `at`, next after) `at` ends; None when
        the calendar never closes (open around the clock, no holidays)."""
        if self.always_open:
            return None
        period = next(self.open_periods(utc(at)), None)
        return None if period is None else period[1]

    def weekly_minutes(self) -> dict[int, int]:
        """Open minutes per weekday (0 = Monday) in a week without holidays."""
        if self.hours is None:
            return dict.fromkeys(range(7), DAY)
        out = dict.fromkeys(range(7), 0)
        for span in self.hours:
            out[span.weekday] += span.end - span.start
        return out

    def _local_date(self, at: datetime) -> date:
        return at.astimezone(zone(self.timezone)).date()


def twenty_four_seven(name: str = ALWAYS) -> Calendar:
    """A calendar that is always open (UTC, no holidays): `add` is plain addition."""
    return Calendar(name, "UTC")


# --- clocks with pauses -------------------------------------------------------------------------------

Pause = tuple[datetime, datetime | None]  # [from, until); until None: still paused


def due_at(
    calendar: Calendar, start: datetime, target: timedelta, pauses: Sequence[Pause] = ()
) -> datetime | None:
    """When a clock started at `start` has run for `target` of open time, not counting `pauses`.

    `pauses` are in time order and do not overlap. None when the clock is paused now (an open pause)
    before the target is reached: a paused clock has no due instant; it resumes with the time it had left.
    """
    cursor, remaining = utc(start), target
    for since, until in pauses:
        since = utc(since)
        if until is not None and utc(until) <= cursor:
            continue
        if since > cursor:
            ran = calendar.between(cursor, since)
            if ran >= remaining:
                return calendar.add(cursor, remaining)
            remaining -= ran
        if until is None:
            return None
        cursor = max(cursor, utc(until))
    return calendar.add(cursor, remaining)


def elapsed(calendar: Calendar, start: datetime, at: datetime, pauses: Sequence[Pause] = ()) -> timedelta:
    """How much open time a clock started at `start` has run until `at`, not counting `pauses`."""
    at, total, cursor = utc(at), timedelta(), utc(start)
    for since, until in pauses:
        end = min(utc(since), at)
        total += calendar.between(cursor, end)
        if until is None:
            return total
        cursor = max(cursor, utc(until))
    return total + calendar.between(cursor, at)


# --- open intervals of one local day --------------------------------------------------------------------


@lru_cache(maxsize=8192)
def _open_intervals(calendar: Calendar, day: date) -> tuple[tuple[datetime, datetime], ...]:
    """The UTC intervals in which `calendar` is open on local date `day` (sorted, merged, within the day)."""
    if calendar.is_closed_day(day):
        return ()
    tz = zone(calendar.timezone)
    day_start, day_end = _instant(day, 0, tz), _instant(day + timedelta(days=1), 0, tz)
    if calendar.hours is None:
        spans: Iterable[tuple[int, int]] = [(0, DAY)]
    else:
        spans = [(s.start, s.end) for s in calendar.hours if s.weekday == day.weekday()]
    out: list[tuple[datetime, datetime]] = []
    for start, end in sorted(spans):
        opens = max(_instant(day, start, tz), day_start)
        closes = min(day_end if end == DAY else _instant(day, end, tz, later=True), day_end)
        if closes <= opens:
            continue  # e.g. a span entirely inside a DST gap
        if out and opens <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], closes))
        else:
            out.append((opens, closes))
    return tuple(out)


def _instant(day: date, minute: int, tz: ZoneInfo, *, later: bool = False) -> datetime:
    """The UTC instant of local wall time `minute` on `day`: in a DST gap, the change itself; when the wall
    time happens twice, the first (or with `later`, the second) occurrence."""
    wall = datetime.combine(day, time()) + timedelta(minutes=minute)
    first = wall.replace(tzinfo=tz, fold=0).astimezone(UTC)
    second = wall.replace(tzinfo=tz, fold=1).astimezone(UTC)
    if first == second:
        return first
    if first < second:  # repeated hour (autumn)
        return second if later else first
    # gap (spring): the first whole second whose wall time is not before `wall` (changes are on the second)
    lo, hi = 0, int((first - second).total_seconds())
    while lo < hi:
        mid = (lo + hi) // 2
        if (second + timedelta(seconds=mid)).astimezone(tz).replace(tzinfo=None) >= wall:
            hi = mid
        else:
            lo = mid + 1
    return second + timedelta(seconds=lo)


# --- helpers shared with the loader ----------------------------------------------------------------------


def utc(at: datetime) -> datetime:
    """An aware datetime in UTC; naive datetimes are refused (their time zone would be a guess)."""
    if at.tzinfo is UTC:  # most are already (a few calls per decision each)
        return at
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError(f"a time zone aware datetime is needed (got naive {at.isoformat()})")
    return at.astimezone(UTC)


@lru_cache(maxsize=256)
def zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def zone_problem(name: str) -> str | None:
    """Why `name` is not a usable IANA time zone, or None."""
    try:
        zone(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        close = difflib.get_close_matches(name, sorted(available_timezones()), n=1)
        hint = f"did you mean {close[0]}? " if close else ""
        return (
            f"unknown time zone '{name}' ({hint}an IANA name such as Europe/Berlin, Asia/Jakarta, "
            "America/Los_Angeles)"
        )
    return None


@lru_cache(maxsize=1024)
def holiday_dates(country: str, subdivision: str | None, year: int) -> frozenset[date]:
    """The public holidays of one country (and subdivision) in one year, from the `holidays` library."""
    return frozenset(holiday_data.country_holidays(country, subdiv=subdivision, years=year))


def holiday_problem(country: str, subdivision: str | None) -> str | None:
    """Why a holiday source is unknown to the `holidays` library, or None."""
    supported = holiday_data.list_supported_countries()
    if country not in supported:
        return (
            f"unknown holiday country '{country}' (an ISO 3166 code the holidays library knows, "
            "e.g. DE, ID, US, GB)"
        )
    if subdivision is not None and subdivision not in supported[country]:
        known = [s for s in supported[country] if s.isupper() or s.isdigit()] or list(supported[country])
        shown = ", ".join(known[:20]) + (", …" if len(known) > 20 else "")
        return f"unknown subdivision '{subdivision}' of {country} (known: {shown or 'none'})"
    return None


# --- `hours` entries -----------------------------------------------------------------------------------

_ENTRY = re.compile(r"\s*([A-Za-z,\-\s]+?)\s+(\d.*)\Z")
_RANGE = re.compile(r"\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*\Z")


def parse_hours(entry: str) -> tuple[Span, ...]:
    """`"mon-fri 08:00-12:00, 13:00-17:00"` → spans; raises ValueError saying what is wrong."""
    match = _ENTRY.match(entry)
    if match is None:
        raise ValueError(f"'{entry}' is not 'DAYS HH:MM-HH:MM' (e.g. 'mon-fri 08:00-18:00')")
    days = _parse_days(match.group(1), entry)
    spans: list[Span] = []
    for part in match.group(2).split(","):
        found = _RANGE.match(part)
        if found is None:
            raise ValueError(f"'{part.strip()}' in '{entry}' is not a time range HH:MM-HH:MM")
        h1, m1, h2, m2 = (int(g) for g in found.groups())
        start, end = _minute(h1, m1, entry), _minute(h2, m2, entry)
        if end <= start:
            raise ValueError(
                f"'{part.strip()}' in '{entry}' ends before it starts; a shift past midnight is two "
                "entries, e.g. 'mon-fri 18:00-24:00' and 'tue-sat 00:00-08:00'"
            )
        spans.extend(Span(d, start, end) for d in days)
    return tuple(spans)


def overlaps(spans: Sequence[Span]) -> list[tuple[Span, Span]]:
    """Pairs of spans on the same weekday that overlap (touching is fine)."""
    out = []
    ordered = sorted(spans)
    for a, b in zip(ordered, ordered[1:], strict=False):
        if a.weekday == b.weekday and b.start < a.end:
            out.append((a, b))
    return out


def _parse_days(text: str, entry: str) -> list[int]:
    days: list[int] = []
    for part in text.replace(" ", "").lower().split(","):
        ends = part.split("-")
        if len(ends) > 2 or any(e not in WEEKDAYS for e in ends):
            raise ValueError(
                f"'{part}' in '{entry}' is not a day or a range of days ({', '.join(WEEKDAYS)}, e.g. mon-fri)"
            )
        first, last = WEEKDAYS.index(ends[0]), WEEKDAYS.index(ends[-1])
        span = (last - first) % 7  # fri-mon wraps over the weekend
        days.extend((first + i) % 7 for i in range(span + 1))
    return sorted(set(days))


def _minute(hour: int, minute: int, entry: str) -> int:
    if minute > 59 or hour > 24 or (hour == 24 and minute):
        raise ValueError(f"'{hour:02d}:{minute:02d}' in '{entry}' is not a time of day (00:00 to 24:00)")
    return hour * 60 + minute


def _hhmm(minute: int) -> str:
    return f"{minute // 60:02d}:{minute % 60:02d}"
