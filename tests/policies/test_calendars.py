"""Business-hours clock arithmetic: hand-checked instants in several time zones, and properties."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import holidays
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from policies.calendars import Calendar, due_at, elapsed, parse_hours, twenty_four_seven
from policies.durations import format_duration, parse_duration, parse_percent

EMEA = Calendar(
    "emea",
    "Europe/Berlin",
    parse_hours("mon-fri 08:00-18:00"),
    (("DE", None),),
    frozenset({date(2026, 12, 24), date(2026, 12, 31)}),
)
APAC = Calendar("apac", "Asia/Jakarta", parse_hours("mon-fri 09:00-17:00"), (("ID", None),))
US_WEST = Calendar("us-west", "America/Los_Angeles", parse_hours("mon-fri 09:00-17:00"), (("US", "CA"),))
ALWAYS = twenty_four_seven("always")
BERLIN_ROUND_THE_CLOCK = Calendar("berlin-24h", "Europe/Berlin", None, (("DE", None),))
SPLIT = Calendar(
    "split", "Europe/Berlin", parse_hours("mon-thu 08:00-12:00, 13:00-17:00") + parse_hours("fri 08:00-14:00")
)


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


H = timedelta(hours=1)


# --- hand-checked due instants ------------------------------------------------------------------------


def test_berlin_across_the_october_dst_change() -> None:
    # Fri 23 Oct 2026 15:00 CEST (13:00Z): 3h left that day; clocks go back on Sun 25 Oct; the last hour
    # runs Mon 26 Oct 08:00-09:00 CET = 07:00-08:00Z (before the change 08:00 local was 06:00Z).
    assert date(2026, 10, 23).weekday() == 4
    assert EMEA.add(utc(2026, 10, 23, 13), 4 * H) == utc(2026, 10, 26, 8)
    assert EMEA.between(utc(2026, 10, 23, 13), utc(2026, 10, 26, 8)) == 4 * H


def test_round_the_clock_counts_real_hours_across_dst() -> None:
    # Sat 24 Oct 12:00 CEST + 24h of open time = Sun 25 Oct 11:00 CET (the wall clock went back an hour)
    assert BERLIN_ROUND_THE_CLOCK.add(utc(2026, 10, 24, 10), 24 * H) == utc(2026, 10, 25, 10)
    day = BERLIN_ROUND_THE_CLOCK.between(utc(2026, 10, 24, 22), utc(2026, 10, 25, 23))
    assert day == 25 * H  # the local day of the change has 25 hours


def test_los_angeles_across_the_march_dst_change() -> None:
    # Fri 6 Mar 2026 16:00 PST (Sat 00:00Z): 1h left; clocks go forward Sun 8 Mar; Mon 9 Mar 09:00 PDT is
    # 16:00Z, so the second hour ends 17:00Z (a week earlier 09:00 local was 17:00Z).
    assert US_WEST.add(utc(2026, 3, 7, 0), 2 * H) == utc(2026, 3, 9, 17)
    assert US_WEST.add(utc(2026, 3, 2, 17), 8 * H) == utc(2026, 3, 3, 1)  # Mon 09:00-17:00 PST


def test_spans_in_a_dst_gap() -> None:
    sunday = Calendar("s", "America/Los_Angeles", parse_hours("sun 00:00-24:00"))
    assert sunday.between(utc(2026, 3, 8, 0), utc(2026, 3, 9, 12)) == 23 * H  # 8 Mar has 23 hours
    gap = Calendar("g", "America/Los_Angeles", parse_hours("sun 02:00-03:00, 03:00-04:00"))
    # 02:00-03:00 does not exist that night; 03:00-04:00 PDT is 10:00-11:00Z
    assert gap.between(utc(2026, 3, 8), utc(2026, 3, 9)) == H
    assert gap.add(utc(2026, 3, 8), 30 * timedelta(minutes=1)) == utc(2026, 3, 8, 10, 30)


def test_jakarta_has_no_dst() -> None:
    # Mon 10 Aug 2026 16:00 WIB (09:00Z): 1h left; Tue 09:00 + 7h = 16:00 WIB = 09:00Z
    assert APAC.add(utc(2026, 8, 10, 9), 8 * H) == utc(2026, 8, 11, 9)
    assert APAC.add(utc(2026, 1, 5, 2), 8 * H) == utc(2026, 1, 5, 10)  # a whole winter day, same offsets


def test_indonesian_independence_day_is_closed() -> None:
    assert "Independence Day" in holidays.country_holidays("ID", years=2026).get(date(2026, 8, 17), "")
    assert date(2026, 8, 17).weekday() == 0
    # Fri 14 Aug 16:00 WIB: 1h; weekend; Mon 17 Aug is a holiday; Tue 18 Aug 09:00 + 3h = 12:00 WIB = 05:00Z
    assert APAC.add(utc(2026, 8, 14, 9), 4 * H) == utc(2026, 8, 18, 5)
    assert not APAC.is_open(utc(2026, 8, 17, 5)) and APAC.is_open(utc(2026, 8, 18, 5))


def test_weekend_and_a_target_of_several_days() -> None:
    # Thu 7 May 2026 10:00 CEST: Thu 8h, Fri 10h, Mon 10h, Tue 10h = 38h; Wed 13 May 08:00 + 2h = 08:00Z
    assert EMEA.add(utc(2026, 5, 7, 8), 40 * H) == utc(2026, 5, 13, 8)


def test_german_holiday_is_closed() -> None:
    # Wed 13 May 17:00 CEST: 1h; Thu 14 May is Ascension Day; Fri 15 May 08:00 + 1h = 07:00Z
    assert EMEA.add(utc(2026, 5, 13, 15), 2 * H) == utc(2026, 5, 15, 7)


def test_extra_closed_dates() -> None:
    # Wed 23 Dec 17:00 CET: 1h; 24 Dec closed (extra); 25-26 Dec holidays; Mon 28 Dec 08:00 + 1h = 08:00Z
    assert EMEA.add(utc(2026, 12, 23, 16), 2 * H) == utc(2026, 12, 28, 8)
    assert EMEA.is_closed_day(date(2026, 12, 24)) and not EMEA.is_closed_day(date(2026, 12, 23))


def test_split_days_and_a_short_friday() -> None:
    # Fri 8 May 2026 13:00 CEST: 1h to 14:00; Mon 11 May 08:00-12:00 (4h), lunch, 13:00 + 1h = 14:00 CEST
    assert SPLIT.add(utc(2026, 5, 8, 11), 6 * H) == utc(2026, 5, 11, 12)
    assert not SPLIT.is_open(utc(2026, 5, 11, 10, 30)) and SPLIT.is_open(utc(2026, 5, 11, 11))


def test_start_outside_hours_and_exact_boundaries() -> None:
    assert EMEA.add(utc(2026, 5, 9, 12), H) == utc(2026, 5, 11, 7)  # Saturday → Monday 09:00 CEST
    assert EMEA.add(utc(2026, 5, 11, 15), H) == utc(2026, 5, 11, 16)  # ends at closing time, not next day
    assert EMEA.is_open(utc(2026, 5, 11, 6)) and not EMEA.is_open(utc(2026, 5, 11, 16))


def test_twenty_four_seven_is_plain_addition() -> None:
    start = utc(2026, 10, 25, 0, 30)
    assert ALWAYS.add(start, 50 * H) == start + 50 * H
    assert ALWAYS.between(start, start + 50 * H) == 50 * H and ALWAYS.is_open(start)


def test_aware_input_in_any_zone_naive_refused() -> None:
    from zoneinfo import ZoneInfo

    berlin = datetime(2026, 10, 23, 15, tzinfo=ZoneInfo("Europe/Berlin"))
    assert EMEA.add(berlin, 4 * H) == utc(2026, 10, 26, 8) and EMEA.add(berlin, 4 * H).tzinfo is UTC
    with pytest.raises(ValueError, match="time zone aware"):
        EMEA.add(datetime(2026, 10, 23, 15), H)
    with pytest.raises(ValueError, match="negative"):
        EMEA.add(berlin, -H)


# --- pauses -------------------------------------------------------------------------------------------


def test_pause_and_resume_keep_the_remaining_time() -> None:
    start = utc(2026, 5, 4, 6)  # Mon 08:00 CEST
    assert due_at(EMEA, start, 4 * H) == utc(2026, 5, 4, 10)
    # paused Mon 09:00 → Tue 10:00 CEST after 1h: 3h left from Tue 10:00 → 13:00 CEST = 11:00Z
    pauses = [(utc(2026, 5, 4, 7), utc(2026, 5, 5, 8))]
    assert due_at(EMEA, start, 4 * H, pauses) == utc(2026, 5, 5, 11)
    assert elapsed(EMEA, start, utc(2026, 5, 5, 9), pauses) == 2 * H
    assert due_at(EMEA, start, 4 * H, [(utc(2026, 5, 4, 7), None)]) is None  # paused now: no due instant


def test_a_due_before_the_pause_stays() -> None:
    start = utc(2026, 5, 4, 6)
    assert due_at(EMEA, start, H, [(utc(2026, 5, 4, 9), None)]) == utc(2026, 5, 4, 7)


def test_pauses_before_the_start_and_several_pauses() -> None:
    start = utc(2026, 5, 4, 6)
    pauses = [
        (utc(2026, 5, 1), utc(2026, 5, 4, 7)),  # began before the clock: only its tail counts
        (utc(2026, 5, 4, 8), utc(2026, 5, 4, 9)),
    ]
    # runs 07:00-08:00Z (1h), 09:00Z + 1h = 10:00Z
    assert due_at(EMEA, start, 2 * H, pauses) == utc(2026, 5, 4, 10)


# --- durations ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [("15m", timedelta(minutes=15)), ("1h", H), ("4h", 4 * H), ("2d", 48 * H), ("1h 30m", 1.5 * H),
     ("2d4h", 52 * H), (" 90M ", 1.5 * H)],
)  # fmt: skip
def test_parse_duration(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["", "15", "15 minutes", "1h 2d", "1h 1h", "0m", "-1h", "h"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)


def test_format_duration() -> None:
    assert [format_duration(d) for d in (timedelta(minutes=15), H, 52 * H, timedelta(seconds=30))] == [
        "15m",
        "1h",
        "2d 4h",
        "0m",
    ]


def test_parse_percent() -> None:
    assert parse_percent("75%") == 75 and parse_percent(50) == 50 and parse_percent(" 5 % ") == 5
    for bad in ("100%", "0%", "0.75", 75.0, True, "75"):
        with pytest.raises(ValueError):
            parse_percent(bad)


# --- properties ---------------------------------------------------------------------------------------

CALENDARS = st.sampled_from([EMEA, APAC, US_WEST, BERLIN_ROUND_THE_CLOCK, SPLIT])
STARTS = st.datetimes(
    min_value=datetime(2025, 1, 1), max_value=datetime(2027, 12, 31), timezones=st.just(UTC)
)
DURATIONS = st.integers(min_value=0, max_value=60 * 24 * 6).map(lambda m: timedelta(minutes=m))
TINY = timedelta(microseconds=1)


@settings(max_examples=60, deadline=None)
@given(calendar=CALENDARS, start=STARTS, duration=DURATIONS)
def test_between_undoes_add(calendar: Calendar, start: datetime, duration: timedelta) -> None:
    due = calendar.add(start, duration)
    assert due >= start and calendar.between(start, due) == duration
    if duration:
        assert calendar.is_open(due - TINY)  # the last moment counted was open time
        assert calendar.between(start, due - TINY) < duration  # and `due` is the first such instant


@settings(max_examples=40, deadline=None)
@given(calendar=CALENDARS, start=STARTS, a=DURATIONS, b=DURATIONS)
def test_add_is_monotonic_and_composes(
    calendar: Calendar, start: datetime, a: timedelta, b: timedelta
) -> None:
    short, long = sorted((a, b))
    assert calendar.add(start, short) <= calendar.add(start, long)
    assert calendar.add(start, a + b) == calendar.add(calendar.add(start, a), b)


@settings(max_examples=40, deadline=None)
@given(calendar=CALENDARS, start=STARTS, gaps=st.lists(DURATIONS, min_size=2, max_size=2))
def test_between_is_additive(calendar: Calendar, start: datetime, gaps: list[timedelta]) -> None:
    middle, end = start + gaps[0], start + gaps[0] + gaps[1]
    assert calendar.between(start, end) == calendar.between(start, middle) + calendar.between(middle, end)
    assert calendar.between(start, end) <= end - start


@settings(max_examples=40, deadline=None)
@given(start=STARTS, duration=DURATIONS)
def test_twenty_four_seven_is_plain_addition_property(start: datetime, duration: timedelta) -> None:
    assert ALWAYS.add(start, duration) == start + duration
    assert ALWAYS.between(start, start + duration) == duration


@settings(max_examples=40, deadline=None)
@given(
    calendar=CALENDARS,
    start=STARTS,
    target=DURATIONS.filter(bool),
    pause=st.tuples(DURATIONS, DURATIONS),
)
def test_a_pause_never_shortens_and_keeps_the_running_time(
    calendar: Calendar, start: datetime, target: timedelta, pause: tuple[timedelta, timedelta]
) -> None:
    pauses = [(start + pause[0], start + pause[0] + pause[1])]
    plain, paused = due_at(calendar, start, target), due_at(calendar, start, target, pauses)
    assert plain is not None and paused is not None and paused >= plain
    assert elapsed(calendar, start, paused, pauses) == target


def test_a_calendar_hashes_once_as_its_fields_and_travels_without_its_hash():
    import pickle

    def berlin() -> Calendar:
        return Calendar("berlin", "Europe/Berlin", parse_hours("mon-fri 09:00-17:00"), (("DE", "BE"),),
                        frozenset({date(2026, 12, 24)}))  # fmt: skip

    first, second = berlin(), berlin()
    assert first == second and hash(first) == hash(second)  # equal calendars share cached intervals
    assert hash(first) != hash(Calendar("berlin", "Europe/Berlin"))
    copy = pickle.loads(pickle.dumps(first))
    assert "_hash" not in copy.__dict__ and copy == first and hash(copy) == hash(first)
