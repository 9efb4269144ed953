"""Follow the sun: a tier worked by several regional teams, each on its own calendar. Pure; `at` is passed in.

An escalation to such a tier goes to the team whose calendar is open at that instant (the first one listed
when several are); when none is, to the named `fallback`, else to the team that opens first. When the
holding team's calendar closes, its tickets are handed to the team chosen at the close instant
(`handover_due` says when that is for one ticket).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

from connector.model import Ticket

from .calendars import WEEKDAYS, Calendar, zone
from .mapping import TierTarget

# Instants a ticket's holder may keep it through before we stop looking for its handover (a rota whose
# holder is always chosen again at its own close, e.g. the only team with a calendar): a year of closes.
_MAX_CLOSES = 400


@dataclass(frozen=True)
class Team:
    """One regional team of a rota: who it is on one platform, and when it works."""

    name: str  # the team's name in the policy (its calendar's name unless `name:` says otherwise)
    calendar: Calendar
    target: TierTarget


@dataclass(frozen=True)
class Choice:
    """The team a ticket goes to at one instant, and why (for the audit record and the note)."""

    team: Team
    why: str


@dataclass(frozen=True)
class Rota:
    """The teams of one follow-the-sun tier on one platform, in the policy's order."""

    teams: tuple[Team, ...]
    fallback: str | None = None  # a team's name: it takes tickets while no team is open

    def team(self, name: str) -> Team | None:
        return next((t for t in self.teams if t.name == name), None)

    def holder(self, ticket: Ticket) -> Team | None:
        """The team the ticket sits with (its assignee or group); None when a person moved it elsewhere."""
        return next((t for t in self.teams if t.target.matches(ticket)), None)

    def choose(self, at: datetime) -> Choice:
        """The team that should work a ticket of this tier at `at`."""
        # One decision asks twice at the same instant (the reason, then the plan): remember the last answer.
        last = getattr(self, "_last", None)
        if last is not None and last[0] == at:
            return last[1]
        choice = self._choose(at)
        object.__setattr__(self, "_last", (at, choice))
        return choice

    def _choose(self, at: datetime) -> Choice:
        for team in self.teams:
            if team.calendar.is_open(at):
                return Choice(team, f"{team.name} is open ({_local(team.calendar, at)})")
        fallback = self.team(self.fallback) if self.fallback else None
        if fallback is not None:
            return Choice(fallback, f"no team is open at {_utc(at)}; {fallback.name} is the fallback")
        opening = [(team.calendar.next_open(at), i, team) for i, team in enumerate(self.teams)]
        known = [(when, i, team) for when, i, team in opening if when is not None]
        if not known:
            first = self.teams[0]
            return Choice(first, f"no team opens within a year of {_utc(at)}; {first.name} is listed first")
        when, _, team = min(known, key=lambda item: (item[0], item[1]))
        opens = _local(team.calendar, when)
        return Choice(team, f"no team is open at {_utc(at)}; {team.name} opens first ({opens})")


def handover_due(rota: Rota, holder: Team, now: datetime) -> datetime | None:
    """When a ticket held by `holder` is next handed over: the first close of the holder from `now` on at
    which `choose` picks another team. When the holder is closed at `now` already and another team is
    chosen (the ticket was paused over the close), the holder's last close: past due, so it fires at once,
    and the same instant however often it is asked (a dry run does not re-arm it forever). None when the
    holder keeps it for good."""
    at = now
    for _ in range(_MAX_CLOSES):
        if not holder.calendar.is_open(at):
            if rota.choose(at).team != holder:
                return holder.calendar.last_close(at) or at
            opens = holder.calendar.next_open(at)
            if opens is None:
                return None
            at = opens
        closes = holder.calendar.next_close(at)
        if closes is None:
            return None
        at = closes
    return None


# --- coverage: the hours of a week no team works --------------------------------------------------------

# Two reference weeks, one in each half of the year, so daylight saving time on either side shows.
_REFERENCE_WEEKS = (datetime(2026, 1, 12, tzinfo=UTC), datetime(2026, 7, 13, tzinfo=UTC))  # Mondays
_WEEK = 7 * 24 * 60


def uncovered(calendars: Sequence[Calendar]) -> list[tuple[int, int]]:
    """The minutes of the week (UTC, from Monday 00:00) in which none of `calendars` is open, as
    [start, end) runs, in a week without holidays in January or in July."""
    free = [False] * _WEEK
    for monday in _REFERENCE_WEEKS:
        covered = [False] * _WEEK
        for calendar in calendars:
            working = replace(calendar, holidays=(), closed=frozenset())
            if working.hours is None:
                covered = [True] * _WEEK
                break
            for opens, closes in working.open_periods(monday - timedelta(days=1), days=9):
                first = max(0, int((opens - monday).total_seconds() // 60))
                last = min(_WEEK, int((closes - monday).total_seconds() // 60))
                for minute in range(first, last):
                    covered[minute] = True
        # a minute counts as uncovered when it is uncovered in either reference week
        free = [f or not c for f, c in zip(free, covered, strict=True)]
    runs: list[tuple[int, int]] = []
    for minute, gap in enumerate(free):
        if not gap:
            continue
        if runs and runs[-1][1] == minute:
            runs[-1] = (runs[-1][0], minute + 1)
        else:
            runs.append((minute, minute + 1))
    if len(runs) > 1 and runs[0][0] == 0 and runs[-1][1] == _WEEK:  # Sunday night runs into Monday
        runs = [(runs[-1][0], runs[0][1] + _WEEK), *runs[1:-1]]
    return runs


def describe_runs(runs: Sequence[tuple[int, int]]) -> str:
    """`[(1320, 1560)]` → "mon 22:00-tue 02:00" (UTC minutes of the week)."""
    return ", ".join(f"{_week_minute(a)}-{_week_minute(b, end=True)}" for a, b in runs)


def _week_minute(minute: int, *, end: bool = False) -> str:
    minute %= _WEEK
    if end and minute == 0:
        minute = _WEEK
    day, rest = divmod(minute, 24 * 60)
    if end and rest == 0:
        return f"{WEEKDAYS[(day - 1) % 7]} 24:00"
    return f"{WEEKDAYS[day % 7]} {rest // 60:02d}:{rest % 60:02d}"


def _local(calendar: Calendar, at: datetime) -> str:
    local = at.astimezone(zone(calendar.timezone))
    return f"{local:%a %H:%M} {calendar.timezone}"


def _utc(at: datetime) -> str:
    return f"{at.astimezone(UTC):%a %Y-%m-%d %H:%M} UTC"
