"""The `sla` section: calendars, the calendar rule, targets, warnings and pauses, each problem at its line."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import date, timedelta
from types import MappingProxyType
from typing import Any

from connector.model import EventKind, Priority, Status

from .build import Builder
from .calendars import (
    ALWAYS,
    Calendar,
    Span,
    holiday_problem,
    overlaps,
    parse_hours,
    twenty_four_seven,
    zone_problem,
)
from .conditions import CEL_RUNTIME_ERRORS, Condition, compile_condition, scan_expression
from .durations import parse_duration, parse_percent
from .policy import METRICS, CalendarChoice, SlaPolicy, SlaTarget
from .schema import CalendarChoiceSpec, CalendarSpec, MetricTargetSpec, SlaSpec, TargetsSpec
from .source import Loc
from .variables import ROOTS_FOR_CLOCKS, clock_schema, zero_sample

_LONGEST = timedelta(days=365)
_HOLIDAY = re.compile(r"([A-Za-z]{2,3})(?:-(.+))?\Z")
_DATE_RANGE = re.compile(r"(\d{4}-\d{2}-\d{2})(?:\s*\.\.\s*(\d{4}-\d{2}-\d{2}))?\Z")
# Ticket variables that stay the same for a ticket's whole life: a pause reading only these never ends.
_FIXED = frozenset({"id", "key", "platform", "url", "requester"})
_FINAL = (Status.RESOLVED, Status.CLOSED)
_TIME_EVENTS = {k.value for k in EventKind if k.is_timer}


def build_sla(b: Builder, raw: Any) -> SlaPolicy | None:
    """The compiled `sla` section, or None when it is broken (its problems are in `b.problems`)."""
    spec: SlaSpec | None = b.section(SlaSpec, raw, ("sla",))
    if spec is None:
        return None
    calendars = _calendars(b, spec.calendars)
    names = [str(n) for n in spec.calendars]  # references are checked even when a calendar is broken
    pick = _pick(b, spec.pick_calendar, names)
    targets = _targets(b, spec.targets, names)
    warn_at = _warn_at(b, spec.warn_at)
    pause_when = None
    if spec.pause_when is not None:
        pause_when = _clock_condition(b, spec.pause_when, ("sla", "pause_when"), "sla.pause_when")
        if pause_when is not None:
            _warn_if_never_resumes(b, pause_when)
    if calendars is None or pick is None or targets is None or warn_at is None:
        return None
    _warn_days_on_business_calendars(b, spec.targets, targets, calendars, pick)
    return SlaPolicy(
        calendars=MappingProxyType(calendars),
        pick=pick,
        targets=MappingProxyType(targets),
        warn_at=warn_at,
        pause_when=pause_when,
        start=spec.start,
    )


def warn_unreachable_time_rules(b: Builder, raw_rules: Any, sla: SlaPolicy | None) -> None:
    """A rule `on:` a time event that this policy's clocks can never raise is a warning at that entry."""
    if not isinstance(raw_rules, list):
        return
    has_update = sla is not None and any("update_every" in t for t in sla.targets.values())
    for i, data in enumerate(raw_rules):
        on = data.get("on") if isinstance(data, dict) else None
        kinds = [on] if isinstance(on, str) else on if isinstance(on, list) else []
        name = data.get("name") if isinstance(data, dict) else None
        label = f"rule '{name}'" if isinstance(name, str) and name else f"rules[{i}]"
        for j, kind in enumerate(kinds):
            if kind not in _TIME_EVENTS:
                continue
            why = None
            if sla is None:
                why = "the policy has no 'sla' section"
            elif kind == EventKind.SLA_WARNING and not sla.warn_at:
                why = "sla.warn_at is not set"
            elif kind == EventKind.UPDATE_DUE and not has_update:
                why = "no sla target sets update_every"
            if why:
                loc: Loc = ("rules", i, "on", j) if isinstance(on, list) else ("rules", i, "on")
                b.warning(loc, f"{label}: '{kind}' never happens: {why}")


# --- calendars ----------------------------------------------------------------------------------------


def _calendars(b: Builder, raw: Mapping[str, Any]) -> dict[str, Calendar] | None:
    out: dict[str, Calendar] = {}
    broken = False
    for name, data in raw.items():
        loc: Loc = ("sla", "calendars", name)
        where = f"sla.calendars.{name}"
        if data == ALWAYS:
            out[name] = twenty_four_seven(name)
            continue
        if isinstance(data, str):
            b.problem(
                loc, f"{where}: a calendar is a mapping (timezone, hours, …) or '{ALWAYS}' (got {data!r})"
            )
            broken = True
            continue
        spec: CalendarSpec | None = b.section(CalendarSpec, data, loc, where)
        if spec is None:
            broken = True
            continue
        calendar = _calendar(b, name, spec, loc, where)
        if calendar is None:
            broken = True
        else:
            out[name] = calendar
    return None if broken else out


def _calendar(b: Builder, name: str, spec: CalendarSpec, loc: Loc, where: str) -> Calendar | None:
    ok = True
    problem = zone_problem(spec.timezone)
    if problem:
        b.problem(loc + ("timezone",), f"{where}.timezone: {problem}")
        ok = False
    hours: tuple[Span, ...] | None
    if spec.hours == [ALWAYS]:
        hours = None
    else:
        spans: list[Span] = []
        for i, entry in enumerate(spec.hours):
            try:
                spans.extend(parse_hours(entry))
            except ValueError as exc:
                b.problem(loc + ("hours", i), f"{where}.hours: {exc}")
                ok = False
        for first, second in overlaps(spans):
            b.problem(loc + ("hours",), f"{where}.hours: '{first}' and '{second}' overlap")
            ok = False
        hours = tuple(sorted(set(spans)))
    sources: list[tuple[str, str | None]] = []
    for i, text in enumerate(spec.holidays):
        match = _HOLIDAY.match(text.strip())
        country, subdivision = (match.group(1).upper(), match.group(2)) if match else (text, None)
        problem = holiday_problem(country, subdivision) if match else None
        if match is None:
            problem = (
                f"'{text}' is not a holiday country such as DE, or a country and subdivision such as DE-BY"
            )
        if problem:
            b.problem(loc + ("holidays", i), f"{where}.holidays: {problem}")
            ok = False
        else:
            sources.append((country, subdivision))
    closed: set[date] = set()
    for i, text in enumerate(spec.closed):
        days = _dates(text)
        if days is None:
            b.problem(
                loc + ("closed", i),
                f"{where}.closed: '{text}' is not a date (YYYY-MM-DD) or a range (YYYY-MM-DD..YYYY-MM-DD)",
            )
            ok = False
        else:
            closed.update(days)
    if not ok:
        return None
    return Calendar(name, spec.timezone, hours, tuple(sources), frozenset(closed))


def _dates(text: str) -> list[date] | None:
    match = _DATE_RANGE.match(text.strip())
    if match is None:
        return None
    try:
        first = date.fromisoformat(match.group(1))
        last = date.fromisoformat(match.group(2) or match.group(1))
    except ValueError:
        return None
    if last < first or (last - first).days > 366:
        return None
    return [first + timedelta(days=i) for i in range((last - first).days + 1)]


# --- pick_calendar ------------------------------------------------------------------------------------


def _pick(b: Builder, raw: Any, names: list[str]) -> tuple[CalendarChoice, ...] | None:
    if raw is None:
        if len(names) == 1:
            return (CalendarChoice(names[0]),)
        b.problem(
            ("sla",),
            "sla: pick_calendar is needed when there are several calendars "
            f"({', '.join(names)}): which one does a ticket's clock use?",
        )
        return None
    if not isinstance(raw, list) or not raw:
        b.problem(
            ("sla", "pick_calendar"), "sla.pick_calendar: a calendar name, or a list of {when, use} entries"
        )
        return None
    out: list[CalendarChoice] = []
    broken = False
    for i, data in enumerate(raw):
        loc: Loc = ("sla", "pick_calendar", i)
        where = f"sla.pick_calendar[{i}]"
        entry: CalendarChoiceSpec | None = b.section(CalendarChoiceSpec, data, loc, where)
        if entry is None:
            broken = True
            continue
        last = i == len(raw) - 1
        if last and entry.when is not None:
            b.problem(
                loc + ("when",),
                "sla.pick_calendar: the last entry must have no 'when' "
                "(it is the default when nothing else matches)",
            )
            broken = True
        elif not last and entry.when is None:
            b.problem(
                loc, f"{where}: only the last entry may omit 'when' (the entries after it could never match)"
            )
            broken = True
        if entry.use not in names:
            b.problem(
                loc + ("use",), f"{where}: unknown calendar '{entry.use}' (calendars: {', '.join(names)})"
            )
            broken = True
        when = _clock_condition(b, entry.when, loc + ("when",), where) if entry.when is not None else None
        if entry.when is not None and when is None:
            broken = True
        out.append(CalendarChoice(entry.use, when))
    return None if broken else tuple(out)


# --- targets ------------------------------------------------------------------------------------------


def _targets(
    b: Builder, raw: Mapping[str, Any], names: list[str]
) -> dict[Priority, Mapping[str, SlaTarget]] | None:
    out: dict[Priority, Mapping[str, SlaTarget]] = {}
    broken = False
    for key, data in raw.items():
        loc: Loc = ("sla", "targets", key)
        if key not in {p.value for p in Priority}:
            b.problem(loc, f"sla.targets: unknown priority '{key}' (P1, P2, P3, P4)")
            broken = True
            continue
        where = f"sla.targets.{key}"
        spec: TargetsSpec | None = b.section(TargetsSpec, data, loc, where)
        if spec is None:
            broken = True
            continue
        if spec.calendar is not None and spec.calendar not in names:
            b.problem(
                loc + ("calendar",),
                f"{where}: unknown calendar '{spec.calendar}' (calendars: {', '.join(names)})",
            )
            broken = True
        metrics: dict[str, SlaTarget] = {}
        for metric in METRICS:
            value = getattr(spec, metric)
            if value is None:
                continue
            target = _target(b, metric, value, spec.calendar, names, loc + (metric,), f"{where}.{metric}")
            if target is None:
                broken = True
            else:
                metrics[metric] = target
        if all(getattr(spec, m) is None for m in METRICS):
            b.problem(loc, f"{where}: no target (set at least one of {', '.join(METRICS)})")
            broken = True
        out[Priority(key)] = MappingProxyType(metrics)
    return None if broken else dict(sorted(out.items()))


def _target(
    b: Builder, metric: str, value: Any, default: str | None, names: list[str], loc: Loc, where: str
) -> SlaTarget | None:
    calendar = default
    if isinstance(value, dict):
        spec: MetricTargetSpec | None = b.section(MetricTargetSpec, value, loc, where)
        if spec is None:
            return None
        value, calendar = spec.target, spec.calendar or default
        loc = loc + ("target",)
        if spec.calendar is not None and spec.calendar not in names:
            b.problem(
                loc[:-1] + ("calendar",),
                f"{where}: unknown calendar '{spec.calendar}' (calendars: {', '.join(names)})",
            )
            return None
    try:
        duration = parse_duration(value)
    except ValueError as exc:
        b.problem(loc, f"{where}: {exc}")
        return None
    if duration > _LONGEST:
        b.problem(loc, f"{where}: at most 365d (got {value!r})")
        return None
    return SlaTarget(metric, duration, calendar)


def _warn_at(b: Builder, raw: Any) -> tuple[int, ...] | None:
    if raw is None:
        return ()
    out: list[int] = []
    broken = False
    for i, value in enumerate(raw):
        try:
            out.append(parse_percent(value))
        except ValueError as exc:
            b.problem(("sla", "warn_at", i), f"sla.warn_at: {exc}")
            broken = True
    return None if broken else tuple(sorted(set(out)))


def _warn_days_on_business_calendars(
    b: Builder,
    raw: Mapping[str, Any],
    targets: Mapping[Priority, Mapping[str, SlaTarget]],
    calendars: Mapping[str, Calendar],
    pick: Sequence[CalendarChoice],
) -> None:
    """`2d` is 48 hours of open time: on a business-hours calendar that is not two working days."""
    for priority, metrics in targets.items():
        for metric, target in metrics.items():
            value = raw[priority.value][metric]
            text = value.get("target") if isinstance(value, dict) else value
            if not isinstance(text, str) or "d" not in text.lower():
                continue
            used = [target.calendar] if target.calendar else list(dict.fromkeys(c.calendar for c in pick))
            business = [calendars[n] for n in used if calendars[n].hours is not None]
            if not business:
                continue
            lengths = {m for c in business for m in c.weekly_minutes().values() if m}
            example = f"; e.g. {_hours(2 * lengths.pop())} for two working days" if len(lengths) == 1 else ""
            minutes = int(target.duration.total_seconds() // 60)
            shown = ", ".join(f"'{c.name}'" for c in business)
            b.warning(
                ("sla", "targets", priority.value, metric),
                f"sla.targets.{priority.value}.{metric}: '{text}' means {_hours(minutes)} of open time on "
                f"calendar {shown} (a day in a target is 24 hours, not a working day); "
                f"write hours for working days{example}",
            )


def _hours(minutes: int) -> str:
    hours, rest = divmod(minutes, 60)
    return f"{hours}h" + (f" {rest}m" if rest else "")


# --- clock conditions ---------------------------------------------------------------------------------


def ticket_condition(b: Builder, source: str, loc: Loc, where: str) -> Condition | None:
    """A condition on the ticket alone (its state, not one event): SLA clock conditions and `scope`."""
    return _clock_condition(b, source, loc, where)


def _clock_condition(b: Builder, source: str, loc: Loc, where: str) -> Condition | None:
    sample = {"ticket": _clock_ticket(zero_sample(b.fields)["ticket"])}
    schema = clock_schema(b.fields)
    compiled, errors = compile_condition(source, where, ROOTS_FOR_CLOCKS, schema, sample, b.closed_sets)
    for message in errors:
        b.problem(loc, message)
    return compiled


def _clock_ticket(ticket: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in ticket.items() if k != "tier"}


def _warn_if_never_resumes(b: Builder, pause_when: Condition) -> None:
    """A pause that nothing during a ticket's life can end is almost certainly a mistake."""
    loc: Loc = ("sla", "pause_when")
    paths = [p for p in scan_expression(pause_when.source).paths if p[0] == "ticket"]
    if paths and all(len(p) > 1 and p[1] in _FIXED for p in paths):
        read = ", ".join(sorted({".".join(p) for p in paths}))
        b.warning(
            loc,
            f"sla.pause_when reads only {read}, which does not change during a ticket's life: "
            "a paused clock would never resume",
        )
        return
    base = _clock_ticket(zero_sample(b.fields)["ticket"])
    holds = []
    for status in Status:
        if status in _FINAL:
            continue
        try:
            result = pause_when.program.execute({"ticket": {**base, "status": status.value}})
        except CEL_RUNTIME_ERRORS:
            result = False
        holds.append(result is True)
    if all(holds):
        b.warning(
            loc,
            "sla.pause_when holds whatever the ticket's status (tried "
            f"{', '.join(s.value for s in Status if s not in _FINAL)}): a paused clock would never resume",
        )
