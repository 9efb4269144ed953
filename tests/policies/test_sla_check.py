"""`policy check` on the `sla` section: every problem at its line; warnings load, errors do not."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from connector.cli import main
from connector.model import Priority
from policies import Policy, PolicyError, load_policy
from policies.calendars import Span
from tests.policies.policy_helpers import check, line, only, policy_source, write_policy

SLA = """\
sla:
  calendars:
    emea:
      timezone: Europe/Berlin
      hours: mon-fri 08:00-18:00
      holidays: [DE, DE-BY]
      closed: [2026-12-24, 2026-12-28..2026-12-30]
    apac:
      timezone: Asia/Jakarta
      hours: ["mon-thu 09:00-17:00", "fri 09:00-11:30, 13:00-17:00"]
      holidays: ID
    always: 24x7
  pick_calendar:
    - {when: 'ticket.requester.region == "apac"', use: apac}
    - {use: emea}
  targets:
    P1: {first_response: 15m, update_every: 1h, resolution: 4h, calendar: always}
    P2: {first_response: 1h, next_response: 2h, resolution: {target: 8h, calendar: always}}
    P3: {first_response: 4h, resolution: 20h}
  warn_at: [50%, 75%]
  pause_when: 'ticket.status in ["pending", "on_hold"]'
"""
TIME_RULES = """\
  - {name: breach, on: sla.breached, then: [{escalate: next}, {note: "{{ sla.metric }} {{ sla.target }}"}]}
  - {name: warn, on: sla.warning, when: 'sla.percent >= 75 && !sla.late', then: [{note: "{{ sla.due }}"}]}
  - name: remind
    on: update.due
    then: [{note: "{{ sla.due_local }} {{ sla.calendar }} {{ sla.fired_at }}"}]
"""


def source(sla: str = SLA, rules: str = TIME_RULES) -> str:
    return policy_source(rules) + sla


def test_a_full_sla_section_loads(tmp_path: Path) -> None:
    policy: Policy = load_policy(write_policy(tmp_path, source()))
    sla = policy.sla
    assert sla is not None and policy.warnings == ()
    assert list(sla.calendars) == ["emea", "apac", "always"]
    emea, apac = sla.calendars["emea"], sla.calendars["apac"]
    assert emea.holidays == (("DE", None), ("DE", "BY")) and len(emea.closed) == 4
    assert apac.holidays == (("ID", None),) and Span(4, 13 * 60, 17 * 60) in (apac.hours or ())
    assert sla.calendars["always"].always_open
    assert [c.calendar for c in sla.pick] == ["apac", "emea"] and sla.default_calendar == "emea"
    assert sla.warn_at == (50, 75)
    assert sla.target(Priority.P2, "resolution").calendar == "always"
    assert sla.target(Priority.P2, "first_response").calendar is None
    assert sla.target(Priority.P1, "update_every").duration == timedelta(hours=1)
    assert sla.target(Priority.P4, "resolution") is None
    assert "sla calendars: emea, apac, always" in policy.summary()


def test_one_calendar_needs_no_pick(tmp_path: Path) -> None:
    text = (
        "sla:\n  calendars: {office: {timezone: UTC, hours: mon-fri 09:00-17:00}}\n"
        "  targets: {P1: {resolution: 2h}}\n"
    )
    policy = load_policy(write_policy(tmp_path, source(text, rules="")))
    assert policy.sla is not None and policy.sla.default_calendar == "office" and policy.sla.warn_at == ()


# --- calendars ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("old", "new", "marker", "message"),
    [
        ("timezone: Europe/Berlin", "timezone: Europe/Berlinn", "Berlinn",
         "sla.calendars.emea.timezone: unknown time zone 'Europe/Berlinn' (did you mean Europe/Berlin? "
         "an IANA name such as Europe/Berlin, Asia/Jakarta, America/Los_Angeles)"),
        ("hours: mon-fri 08:00-18:00", 'hours: "mon-fri 18:00-08:00"', "18:00-08:00",
         "sla.calendars.emea.hours: '18:00-08:00' in 'mon-fri 18:00-08:00' ends before it starts; a shift "
         "past midnight is two entries, e.g. 'mon-fri 18:00-24:00' and 'tue-sat 00:00-08:00'"),
        ("hours: mon-fri 08:00-18:00", "hours: mon-fry 08:00-18:00", "mon-fry",
         "sla.calendars.emea.hours: 'mon-fry' in 'mon-fry 08:00-18:00' is not a day or a range of days "
         "(mon, tue, wed, thu, fri, sat, sun, e.g. mon-fri)"),
        ("hours: mon-fri 08:00-18:00", "hours: mon-fri 08:00-25:00", "25:00",
         "sla.calendars.emea.hours: '25:00' in 'mon-fri 08:00-25:00' is not a time of day (00:00 to 24:00)"),
        ("hours: mon-fri 08:00-18:00", "hours: weekdays", "weekdays",
         "sla.calendars.emea.hours: 'weekdays' is not 'DAYS HH:MM-HH:MM' (e.g. 'mon-fri 08:00-18:00')"),
        ("hours: mon-fri 08:00-18:00", 'hours: ["mon-fri 08:00-18:00", "fri 17:00-20:00"]', "fri 17:00",
         "sla.calendars.emea.hours: 'fri 08:00-18:00' and 'fri 17:00-20:00' overlap"),
        ("holidays: [DE, DE-BY]", "holidays: XX", "holidays: XX",
         "sla.calendars.emea.holidays: unknown holiday country 'XX' (an ISO 3166 code the holidays library "
         "knows, e.g. DE, ID, US, GB)"),
        ("holidays: [DE, DE-BY]", "holidays: [DE, DE-QQ]", "DE-QQ",
         "sla.calendars.emea.holidays: unknown subdivision 'QQ' of DE (known: BB, BE, BW, BY, HB, HE, HH, "
         "MV, NI, NW, RP, SH, SL, SN, ST, TH)"),
        ("closed: [2026-12-24, 2026-12-28..2026-12-30]", "closed: [2026-12-24, 2026-12-32]", "2026-12-32",
         "sla.calendars.emea.closed: '2026-12-32' is not a date (YYYY-MM-DD) or a range "
         "(YYYY-MM-DD..YYYY-MM-DD)"),
        ("    always: 24x7", "    always: 24/7", "24/7",
         "sla.calendars.always: a calendar is a mapping (timezone, hours, …) or '24x7' (got '24/7')"),
        ("timezone: Europe/Berlin", "timezone: Europe/Berlin\n      colour: red", "colour",
         "sla.calendars.emea: unknown key 'colour' (known: closed, holidays, hours, timezone)"),
    ],
)  # fmt: skip
def test_calendar_problems(tmp_path: Path, old: str, new: str, marker: str, message: str) -> None:
    text = source(SLA.replace(old, new, 1))
    p = only(tmp_path, text)
    assert (p.line, p.message, p.severity) == (line(text, marker), message, "error")


def test_hours_around_the_clock_with_holidays(tmp_path: Path) -> None:
    text = source(SLA.replace("hours: mon-fri 08:00-18:00", "hours: 24x7"))
    emea = load_policy(write_policy(tmp_path, text)).sla.calendars["emea"]  # type: ignore[union-attr]
    assert emea.hours is None and not emea.always_open


# --- pick_calendar and targets ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("old", "new", "marker", "message"),
    [
        ("- {use: emea}", "- {use: europe}", "europe",
         "sla.pick_calendar[1]: unknown calendar 'europe' (calendars: emea, apac, always)"),
        ("- {use: emea}", "- {when: 'true', use: emea}", "{when: 'true', use: emea}",
         "sla.pick_calendar: the last entry must have no 'when' (it is the default when nothing else "
         "matches)"),
        ("ticket.requester.region ==", "event.actor.name ==", "event.actor",
         "sla.pick_calendar[0]: 'event' is not available here: SLA clocks follow the ticket's state, not one "
         "event"),
        ("ticket.requester.region ==", "ticket.tier ==", "ticket.tier",
         "sla.pick_calendar[0]: ticket has no field 'tier' (known: assignee, created, fields, group, id, "
         "key, labels, platform, priority, requester, status, title, url)"),
        ("    P3: {first_response: 4h", "    P5: {first_response: 4h", "P5",
         "sla.targets: unknown priority 'P5' (P1, P2, P3, P4)"),
        ("first_response: 15m", "first_response: 15 minutes", "15 minutes",
         "sla.targets.P1.first_response: must be a duration such as 15m, 1h, 4h, 2d or 1h 30m "
         "(got '15 minutes')"),
        ("first_response: 15m", "first_response: 15", "first_response: 15,",
         "sla.targets.P1.first_response: must be a duration such as 15m, 1h, 4h, 2d or 1h 30m (got 15)"),
        ("first_response: 15m", "first_response: 0m", "0m",
         "sla.targets.P1.first_response: must be longer than zero (got '0m')"),
        ("resolution: 20h", "resolution: 400d", "400d",
         "sla.targets.P3.resolution: at most 365d (got '400d')"),
        ("resolution: 4h, calendar: always", "resolution: 4h, calendar: allways", "allways",
         "sla.targets.P1: unknown calendar 'allways' (calendars: emea, apac, always)"),
        ("{target: 8h, calendar: always}", "{target: 8h, calendar: nope}", "nope",
         "sla.targets.P2.resolution: unknown calendar 'nope' (calendars: emea, apac, always)"),
        ("first_response: 4h, resolution: 20h", "resolve: 20h", "resolve",
         "sla.targets.P3: unknown key 'resolve' (known: calendar, first_response, next_response, resolution, "
         "update_every)"),
        ("P3: {first_response: 4h, resolution: 20h}", "P3: {calendar: emea}", "P3: {calendar",
         "sla.targets.P3: no target (set at least one of first_response, next_response, update_every, "
         "resolution)"),
        ("warn_at: [50%, 75%]", "warn_at: [50%, 150%]", "150%",
         "sla.warn_at: must be between 1% and 99% (got '150%'; 100% is the breach itself)"),
        ("ticket.status in", "ticket.statuz in", "statuz",
         "sla.pause_when: ticket has no field 'statuz' (known: assignee, created, fields, group, id, key, "
         "labels, platform, priority, requester, status, title, url)"),
    ],
)  # fmt: skip
def test_pick_and_target_problems(tmp_path: Path, old: str, new: str, marker: str, message: str) -> None:
    assert old in SLA
    text = source(SLA.replace(old, new, 1))
    p = only(tmp_path, text)
    assert (p.line, p.message) == (line(text, marker), message)


def test_several_calendars_need_a_pick(tmp_path: Path) -> None:
    pick = (
        "  pick_calendar:\n    - {when: 'ticket.requester.region == \"apac\"', use: apac}\n"
        "    - {use: emea}\n"
    )
    assert pick in SLA
    text = source(SLA.replace(pick, ""))
    p = only(tmp_path, text)
    assert (p.line, p.message) == (
        line(text, "sla:"),
        "sla: pick_calendar is needed when there are several calendars (emea, apac, always): "
        "which one does a ticket's clock use?",
    )


# --- warnings -----------------------------------------------------------------------------------------


EVERY_STATUS = (
    "sla.pause_when holds whatever the ticket's status (tried new, open, in_progress, pending, on_hold): "
    "a paused clock would never resume"
)


@pytest.mark.parametrize(
    ("pause", "message"),
    [
        ("'true'", EVERY_STATUS),
        ("'ticket.status != \"closed\"'", EVERY_STATUS),
        ("'ticket.requester.tier == \"free\"'",
         "sla.pause_when reads only ticket.requester.tier, which does not change during a ticket's life: "
         "a paused clock would never resume"),
    ],
)  # fmt: skip
def test_a_pause_that_can_never_end_is_a_warning(tmp_path: Path, pause: str, message: str) -> None:
    text = source(SLA.replace("""'ticket.status in ["pending", "on_hold"]'""", pause))
    p = only(tmp_path, text)
    assert (p.line, p.severity, p.message) == (line(text, "pause_when"), "warning", message)
    assert load_policy(tmp_path / "policy.yaml").warnings == (p,)


def test_pauses_that_can_end_are_fine(tmp_path: Path) -> None:
    for pause in (
        "'\"waiting\" in ticket.labels'",
        '\'ticket.status == "pending" && ticket.requester.tier != "x"\'',
    ):
        assert (
            check(tmp_path, source(SLA.replace("""'ticket.status in ["pending", "on_hold"]'""", pause))) == []
        )


def test_days_on_a_business_calendar_are_a_warning(tmp_path: Path) -> None:
    text = source(SLA.replace("resolution: 20h", "resolution: 2d"))
    p = only(tmp_path, text)
    assert (p.line, p.severity) == (line(text, "2d"), "warning")
    assert p.message == (
        "sla.targets.P3.resolution: '2d' means 48h of open time on calendar 'apac', 'emea' (a day in a "
        "target is 24 hours, not a working day); write hours for working days"
    )
    emea_only = source(SLA.replace("resolution: 20h}", "resolution: 1d 2h, calendar: emea}"))
    assert [p.message for p in check(tmp_path, emea_only)] == [
        "sla.targets.P3.resolution: '1d 2h' means 26h of open time on calendar 'emea' (a day in a target is "
        "24 hours, not a working day); write hours for working days; e.g. 20h for two working days"
    ]
    assert check(tmp_path, source(SLA.replace("resolution: 4h, calendar", "resolution: 2d, calendar"))) == []


def test_time_rules_that_can_never_fire_are_warnings(tmp_path: Path) -> None:
    text = policy_source(TIME_RULES)  # no sla section
    problems = check(tmp_path, text)
    assert [(p.line, p.severity, p.message) for p in problems] == [
        (line(text, "name: breach"), "warning", "rule 'breach': 'sla.breached' never happens: the policy has "
         "no 'sla' section"),
        (line(text, "name: warn"), "warning", "rule 'warn': 'sla.warning' never happens: the policy has no "
         "'sla' section"),
        (line(text, "on: update.due"), "warning", "rule 'remind': 'update.due' never happens: the policy "
         "has no 'sla' section"),
    ]  # fmt: skip
    no_update = source(SLA.replace("update_every: 1h, ", "").replace("  warn_at: [50%, 75%]\n", ""))
    assert [p.message for p in check(tmp_path, no_update)] == [
        "rule 'warn': 'sla.warning' never happens: sla.warn_at is not set",
        "rule 'remind': 'update.due' never happens: no sla target sets update_every",
    ]


def test_labels_on_servicenow_without_a_labels_field_are_a_warning(tmp_path: Path) -> None:
    snow = (
        "  servicenow:\n    priorities: {P1: {impact: 1, urgency: 1}, P2: {impact: 1, urgency: 2}, "
        "P3: {impact: 2, urgency: 2}, P4: {impact: 3, urgency: 2}}\n    tiers:\n"
        + "".join(
            f'      {t}: {{group: "{i:032x}"}}\n' for i, t in enumerate(["L1", "L2", "L3", "management"])
        )
    )
    text = policy_source() + snow
    p = only(tmp_path, text)
    assert (p.line, p.severity) == (line(text, "servicenow:"), "warning")
    assert p.message.startswith(
        "platforms.servicenow: rules add or remove labels, but incidents have no labels"
    )


# --- all at once, and the CLI -------------------------------------------------------------------------


def test_every_sla_problem_is_reported_at_once(tmp_path: Path) -> None:
    text = source(
        SLA.replace("Europe/Berlin", "Mars/Olympus")
        .replace("mon-fri 08:00-18:00", '"mon-fri 18:00-08:00"')
        .replace("- {use: emea}", "- {use: europe}")
        .replace("resolution: 20h", "resolution: soon")
        .replace("""'ticket.status in ["pending", "on_hold"]'""", "'true'")
    )
    problems = check(tmp_path, text)
    assert [(p.line, p.severity) for p in problems] == [
        (line(text, "Mars"), "error"),
        (line(text, "18:00-08:00"), "error"),
        (line(text, "europe"), "error"),
        (line(text, "soon"), "error"),
        (line(text, "pause_when"), "warning"),
    ]
    with pytest.raises(PolicyError) as caught:
        load_policy(tmp_path / "policy.yaml")
    assert caught.value.problems == problems


def test_policy_check_prints_warnings_and_passes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write_policy(tmp_path, source(SLA.replace("resolution: 20h", "resolution: 2d")))
    assert main(["policy", "check", str(path)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith(f"{path}:") and ": warning: sla.targets.P3.resolution: '2d' means 48h" in out[0]
    assert out[1].startswith(f"{path}: OK (1 warning) — policy test-policy v7:")


def test_policy_check_fails_on_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write_policy(tmp_path, source(SLA.replace("Europe/Berlin", "Europe/Berlinn")))
    assert main(["policy", "check", str(path)]) == 1
    assert "unknown time zone 'Europe/Berlinn'" in capsys.readouterr().out
